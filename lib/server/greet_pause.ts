/**
 * The greeting pause's waits (`greetPause`): each connection waits up to the
 * same pause before it is greeted, so a queue in arrival order is also in
 * deadline order, and the connection table's one sweep ends the waits that
 * are due (no timer per connection). Only a server with a pause has one.
 *
 * @module
 */

/** One connection's wait; see {@linkcode PauseQueue}. */
export interface PauseEntry {
  /** When the wait ends, on the table's monotonic clock. */
  deadline: number;
  /** Called once when the wait ends (not when it is cancelled). */
  wake: () => void;
  /** Whether it is still waiting. */
  queued: boolean;
  prev: PauseEntry | undefined;
  next: PauseEntry | undefined;
}

/** The waiting connections, earliest deadline first. */
export interface PauseQueue {
  /** How many wait. */
  readonly size: number;
  /** Starts a wait of the queue's pause from `now`. */
  add(now: number, wake: () => void): PauseEntry;
  /** Ends a wait early without waking it (the client talked first). */
  cancel(entry: PauseEntry): void;
  /** Wakes every wait due at `now`. */
  sweep(now: number): void;
}

/** Creates the queue of a pause of `pause` ms. */
export function createPauseQueue(pause: number): PauseQueue {
  let head: PauseEntry | undefined;
  let tail: PauseEntry | undefined;
  let size = 0;
  function unlink(entry: PauseEntry) {
    if (!entry.queued) return;
    entry.queued = false;
    if (entry.prev) entry.prev.next = entry.next;
    else head = entry.next;
    if (entry.next) entry.next.prev = entry.prev;
    else tail = entry.prev;
    entry.prev = entry.next = undefined;
    size--;
  }
  return {
    get size() {
      return size;
    },
    add(now, wake) {
      const entry: PauseEntry = {
        deadline: now + pause,
        wake,
        queued: true,
        prev: tail,
        next: undefined,
      };
      if (tail) tail.next = entry;
      else head = entry;
      tail = entry;
      size++;
      return entry;
    },
    cancel: unlink,
    sweep(now) {
      while (head && head.deadline <= now) {
        const entry = head;
        unlink(entry);
        entry.wake();
      }
    },
  };
}
