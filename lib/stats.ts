/** Counters a greeting server keeps; plain numbers, cheap on the hot path. */
export interface ServerStats {
  /** Connections accepted. */
  accepted: number;
  /** Connections that received the whole greeting. */
  greeted: number;
  /** Connections open right now. */
  active: number;
  /** Clients that reset or closed before the greeting was written. */
  reset: number;
  /** Connections cut short by shutdown after the drain timeout. */
  aborted: number;
  /** Writes that failed for another reason. */
  writeErrors: number;
  /** Failed accepts (the server backed off and went on). */
  acceptErrors: number;
  /** Times accepting paused because the connection cap was reached. */
  pausedAtLimit: number;
  /** Greeting bytes written, in total. */
  bytesWritten: number;
}

/** Creates a zeroed set of counters. */
export function createServerStats(): ServerStats {
  return {
    accepted: 0,
    greeted: 0,
    active: 0,
    reset: 0,
    aborted: 0,
    writeErrors: 0,
    acceptErrors: 0,
    pausedAtLimit: 0,
    bytesWritten: 0,
  };
}
