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
}

/** Batches log lines into few writes. See {@linkcode createLineWriter}. */
export interface LineWriter {
  /** Queues one line (without its newline). Never blocks, never throws. */
  line(text: string): void;
  /** Writes every queued line now; resolves once they are written. */
  flush(): Promise<void>;
  /** Lines dropped because the sink fell too far behind. */
  readonly dropped: number;
}

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
): LineWriter {
  const {
    maxBuffered = 4 * 1024 * 1024,
    delay = 10,
    batchSize = 64 * 1024,
  } = options;
  let pending = "";
  let dropped = 0;
  let reportedDropped = 0;
  let writing: Promise<void> | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;

  async function writeAll(bytes: Uint8Array) {
    let written = 0;
    while (written < bytes.length) {
      written += await sink.write(bytes.subarray(written));
    }
  }

  function schedule() {
    if (writing) return;
    if (pending.length >= batchSize) {
      clearTimeout(timer);
      timer = undefined;
      writing = drain(false);
    } else if (timer === undefined) {
      timer = setTimeout(() => {
        timer = undefined;
        writing ??= drain(false);
      }, delay);
    }
  }

  /** Writes batches; `all` keeps going until nothing is queued. */
  async function drain(all: boolean) {
    try {
      do {
        if (dropped > reportedDropped) {
          pending += `(${dropped - reportedDropped} log lines dropped: ` +
            `output was too slow)\n`;
          reportedDropped = dropped;
        }
        const batch = pending;
        pending = "";
        await writeAll(encoder.encode(batch));
      } while (pending !== "" && (all || pending.length >= batchSize));
    } catch {
      // The sink is gone (closed pipe): logging must not stop the server.
      pending = "";
    } finally {
      writing = undefined;
    }
    if (pending !== "") schedule();
  }

  return {
    line(text: string) {
      if (pending.length + text.length >= maxBuffered) {
        dropped++;
      } else {
        pending += text + "\n";
      }
      schedule();
    },
    async flush() {
      while (true) {
        clearTimeout(timer);
        timer = undefined;
        if (writing) {
          await writing;
        } else if (pending !== "" || dropped > reportedDropped) {
          writing = drain(true);
        } else {
          return;
        }
      }
    },
    get dropped() {
      return dropped;
    },
  };
}
