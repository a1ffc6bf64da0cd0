/**
 * Waiting for a Worker that posts a message and then exits by itself.
 *
 * `await once(worker, 'message'); await once(worker, 'exit');` can wait for ever: when the main
 * thread reaches its event loop only after the worker thread has gone (CPU load, valgrind on the
 * other core), Node handles the worker's end first, and its exit handler (lib/internal/worker.js,
 * [kOnExit]) drains the message port, emitting 'message', then emits 'exit', in one synchronous
 * run. The first `once` resolves, but the code after its `await` runs as a microtask, after
 * 'exit' was emitted to nobody. So both events are subscribed to as soon as the worker exists.
 */
import { existsSync } from 'node:fs';
import type { Worker } from 'node:worker_threads';

export interface WorkerOutcome<T> {
  /** The first message; rejects if the worker fails or exits before posting one. */
  message: Promise<T>;
  /** The exit code. */
  exit: Promise<number>;
}

/** Call right after `new Worker(...)`, before any await. */
export function workerOutcome<T>(worker: Worker): WorkerOutcome<T> {
  const message = new Promise<T>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the worker exited (code ${code}) before posting a message`)));
  });
  const exit = new Promise<number>((resolve) => worker.once('exit', resolve));
  message.catch(() => {}); // a test that only awaits `exit` must not see an unhandled rejection
  return { message, exit };
}

/**
 * A slot the worker writes its kernel thread id into (`Atomics.store(slot, 0, tid)` with the id
 * from /proc/thread-self, then `Atomics.notify`), so that the main thread can tell when the
 * worker thread is gone without running its event loop.
 */
export function threadIdSlot(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(4));
}

/**
 * Blocks the calling thread (its event loop does not run) until the worker thread that
 * published its id into `slot` has exited: its message and its end are then both pending when
 * the event loop runs again, the order that CPU load produces by chance. Throws after `timeoutMs`.
 */
export function blockUntilWorkerThreadGone(slot: Int32Array, timeoutMs: number): void {
  const deadline = Date.now() + timeoutMs;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  while (Atomics.load(slot, 0) === 0) {
    if (Date.now() > deadline) throw new Error('the worker never published its thread id');
    Atomics.wait(slot, 0, 0, 10);
  }
  const task = `/proc/self/task/${Atomics.load(slot, 0)}`;
  while (existsSync(task)) {
    if (Date.now() > deadline) throw new Error(`the worker thread (${task}) did not exit within ${timeoutMs} ms`);
    Atomics.wait(nap, 0, 0, 1);
  }
}
