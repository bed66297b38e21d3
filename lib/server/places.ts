/**
 * The places for open connections: a counting semaphore. An accept loop
 * takes a place *before* it calls `accept()`, and the connection gives it
 * back when it ends, so the cap holds exactly across any number of
 * listeners. A freed place is handed to one waiting loop, never to all.
 */
export type Places = ReturnType<typeof createPlaces>;

/** Creates `capacity` places. */
export function createPlaces(capacity: number) {
  let free = capacity;
  // Resolvers of the loops waiting for a place; only used at the cap.
  const waiting: (() => void)[] = [];
  return {
    /** Places neither held nor handed over. */
    get free(): number {
      return free;
    },
    /**
     * Takes a place: undefined when one was free (the common case costs no
     * promise), else a promise that settles when one is handed over, or when
     * `close` is called (then no place is held).
     */
    take(): Promise<void> | undefined {
      if (free > 0) return void free--;
      const { promise, resolve } = Promise.withResolvers<void>();
      waiting.push(resolve);
      return promise;
    },
    /** Gives a place back, or hands it to the loop that has waited longest. */
    release() {
      const next = waiting.shift();
      if (next) next();
      else free++;
    },
    /** Wakes every waiting loop, at shutdown. */
    close() {
      for (const wake of waiting.splice(0)) wake();
    },
  };
}
