// What outputs that talk to a server (Redis, PostgreSQL) share to retry and to
// say, at the end, what could not be delivered.
import { RuntimeError } from '../core/errors.js';

/** Delay before the `attempt`-th retry (0-based): 100 ms doubling up to 5 s, with jitter so that peers do not retry in step. */
export function backoff(attempt: number): number {
  const base = Math.min(100 * 2 ** Math.min(attempt, 10), 5000);
  return Math.round(base * (0.75 + Math.random() * 0.5));
}

/** Waits `ms`, or less when `stopping` aborts. */
export function pause(ms: number, stopping?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      stopping?.removeEventListener('abort', done);
      resolve();
    }
    stopping?.addEventListener('abort', done, { once: true });
  });
}


/**
 * An output gave up on its server: thrown by its writes from then on, and by
 * close(). Its message counts the messages left behind when it is printed, at
 * the end of the run, after the chain has drained into the output.
 */
export class DeliveryFailure extends RuntimeError {
  constructor(describeNow: () => string) {
    super('');
    Object.defineProperty(this, 'message', { get: describeNow });
  }
}

/** A promise and the two functions that settle it. */
export interface Waiter {
  resolve(): void;
  reject(error: Error): void;
}

export function waitFor(waiters: Waiter[]): Promise<void> {
  return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
}
