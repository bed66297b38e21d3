/**
 * The places for open connections: a counting semaphore. An accept loop
 * takes a place *before* it calls `accept()`, and the connection gives it
 * back when it ends, so the cap holds exactly across any number of
 * listeners. A freed place is handed to one waiting loop, never to all.
 */
export interface Places {
  /** Places neither held nor handed over. */
  readonly free: number;
  /**
   * Takes a place: undefined when one was free (the common case costs no
   * promise), else a promise that settles when one is handed over, or when
   * {@linkcode Places.close} is called (then no place is held).
   */
  take(): Promise<void> | undefined;
  /** Gives a place back, or hands it to the loop that has waited longest. */
  release(): void;
  /** Wakes every waiting loop, at shutdown. */
  close(): void;
}

/** Creates `capacity` places. */
export function createPlaces(capacity: number): Places {
  let free = capacity;
  // Resolvers of the loops waiting for a place; only used at the cap.
  const waiting: (() => void)[] = [];
  return {
    get free() {
      return free;
    },
    take() {
      if (free > 0) {
        free--;
        return undefined;
      }
      const { promise, resolve } = Promise.withResolvers<void>();
      waiting.push(resolve);
      return promise;
    },
    release() {
      const next = waiting.shift();
      if (next) next();
      else free++;
    },
    close() {
      for (const wake of waiting.splice(0)) wake();
    },
  };
}
