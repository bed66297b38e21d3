import { startTimer, stopTimer } from "../server/wait.ts";

/** Where a {@linkcode LineWriter} sends its batches. */
export interface ByteSink {
  /** Writes some of `bytes`, resolving to how many were written. */
  write(bytes: Uint8Array): Promise<number>;
}

/** Options for {@linkcode createLineWriter}. */
export interface LineWriterOptions {
  /**
   * The most text held while the sink is slow; past it lines are dropped
   * and counted, so a blocked stdout cannot exhaust memory.
   *
   * @default {4194304}
   */
  maxBuffered?: number;
  /**
   * How long a line may wait for others to join its batch, in ms.
   *
   * @default {10}
   */
  delay?: number;
  /**
   * A batch this large is written at once, without waiting for the delay.
   *
   * @default {65536}
   */
  batchSize?: number;
  /**
   * Told, once, of the first write that fails; the writer goes on, counting
   * what it cannot write in {@linkcode LineWriter.dropped}.
   */
  onError?: (error: unknown) => void;
}

/** Batches log lines into few writes. See {@linkcode createLineWriter}. */
export type LineWriter = ReturnType<typeof createLineWriter>;

const encoder = new TextEncoder();

/**
 * Creates a writer that batches lines: a line waits up to `delay` ms (or
 * until `batchSize` bytes are queued) for others, then they go out in one
 * write; lines queued while a write is in flight join the next batch. Under
 * load that is one write per few hundred connections instead of one per
 * connection, with one timer per batch and none per line, and logging never
 * blocks the event loop.
 */
export function createLineWriter(
  sink: ByteSink,
  options: LineWriterOptions = {},
) {
  const { maxBuffered = 4 * 1024 * 1024, delay = 10, onError } = options;
  const { batchSize = 64 * 1024 } = options;
  let pending = "";
  let dropped = 0;
  let warned = false;
  let reportedDropped = 0;
  let writing: Promise<void> | undefined;
  let timer: AbortSignal | undefined;
  // Lines dropped and not yet told; a drop is told only until a write
  // failed (see drain).
  const unreported = () => dropped > reportedDropped && !warned;

  function schedule() {
    if (writing) return;
    if (pending.length >= batchSize) writing = drain(false);
    // The timer is cleared whenever a drain starts: it fires only when idle,
    // and only with something to write (a drain with nothing would end
    // before it was kept as the one in flight, and block every later one).
    else if (pending !== "" || unreported()) {
      timer ??= startTimer(delay, () => writing = drain(false));
    }
  }

  /**
   * Writes batches; `all` keeps going until nothing is queued. Started only
   * with something to write (a line or the drop notice): with nothing, it
   * would end before its caller keeps it in `writing`, which would then
   * never be cleared.
   */
  async function drain(all: boolean) {
    // A batch written now needs no timer.
    timer = stopTimer(timer);
    // The batch being written, how much of it is out, and whether its last
    // line is our own notice (not counted as lost).
    let bytes = new Uint8Array(0);
    let written = 0;
    let notice = false;
    try {
      do {
        notice = unreported();
        if (notice) {
          pending += `(${dropped - reportedDropped} log lines dropped: ` +
            `output was too slow)\n`;
          reportedDropped = dropped;
        }
        bytes = encoder.encode(pending);
        pending = "";
        for (written = 0; written < bytes.length;) {
          written += await sink.write(bytes.subarray(written));
        }
      } while (pending !== "" && (all || pending.length >= batchSize));
    } catch (error) {
      // The sink is gone (closed pipe, full disk): logging must not stop
      // the server. The lines are counted as lost, and said once.
      // Lines whose end was not written are lost; the notice, the batch's
      // last line, is not one of the server's lines.
      // (UTF-8 has no 0x0a inside a character.)
      const lost = bytes.subarray(written).filter((unit) => unit === 0x0a);
      dropped += lost.length + pending.split("\n").length - 1 -
        (notice && written < bytes.length ? 1 : 0);
      pending = "";
      if (!warned) {
        warned = true;
        try {
          onError?.(error);
        } catch {
          // A failing observer must not stop the server.
        }
      }
    } finally {
      writing = undefined;
    }
    if (pending !== "") schedule();
  }

  return {
    /** Queues one line (without its newline). Never blocks, never throws. */
    line(text: string): void {
      if (pending.length + text.length >= maxBuffered) dropped++;
      else pending += text + "\n";
      schedule();
    },
    /** Writes every queued line now; resolves once they are written. */
    async flush(): Promise<void> {
      while (writing || pending !== "" || unreported()) {
        await (writing ??= drain(true));
      }
      // A drain clears the timer; one may be left after a dropped line.
      timer = stopTimer(timer);
    },
    /**
     * Lines lost: dropped because the sink fell too far behind, or lost in a
     * write that failed (a closed pipe, a full disk).
     */
    get dropped(): number {
      return dropped;
    },
  };
}
