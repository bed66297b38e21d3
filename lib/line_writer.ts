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
}

/** Batches log lines into few writes. See {@linkcode createLineWriter}. */
export interface LineWriter {
  /** Queues one line (without its newline). Never blocks, never throws. */
  line(text: string): void;
  /** Resolves once every queued line has been written. */
  flush(): Promise<void>;
  /** Lines dropped because the sink fell too far behind. */
  readonly dropped: number;
}

const encoder = new TextEncoder();

/**
 * Creates a writer that batches lines: the first line of a burst starts one
 * write, and every line queued while a write is in flight joins the next one.
 * Under load that is one write per batch instead of one per connection, and
 * logging never blocks the event loop.
 */
export function createLineWriter(
  sink: ByteSink,
  options: LineWriterOptions = {},
): LineWriter {
  const { maxBuffered = 4 * 1024 * 1024 } = options;
  let pending = "";
  let dropped = 0;
  let reportedDropped = 0;
  let writing: Promise<void> | undefined;

  async function writeAll(bytes: Uint8Array) {
    let written = 0;
    while (written < bytes.length) {
      written += await sink.write(bytes.subarray(written));
    }
  }

  async function drain() {
    try {
      // Let the rest of this turn of the event loop add to the batch.
      await Promise.resolve();
      while (pending !== "" || dropped > reportedDropped) {
        if (dropped > reportedDropped) {
          pending += `(${dropped - reportedDropped} log lines dropped: ` +
            `output was too slow)\n`;
          reportedDropped = dropped;
        }
        const batch = pending;
        pending = "";
        await writeAll(encoder.encode(batch));
      }
    } catch {
      // The sink is gone (closed pipe): logging must not stop the server.
      pending = "";
    } finally {
      writing = undefined;
    }
  }

  return {
    line(text: string) {
      if (pending.length + text.length >= maxBuffered) {
        dropped++;
      } else {
        pending += text + "\n";
      }
      writing ??= drain();
    },
    async flush() {
      while (writing) await writing;
    },
    get dropped() {
      return dropped;
    },
  };
}
