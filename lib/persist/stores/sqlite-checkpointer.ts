/**
 * SqliteStore's `checkpoint: 'thread'`: starting and stopping the worker thread that runs the
 * WAL checkpoints (what it runs is sqlite-checkpoint-thread.ts), so the event loop's connection
 * never checkpoints. Apart from the store because the thread loads its own copy of the modules
 * it needs, from this directory: compiled JavaScript in the package (dist/lib/persist/stores),
 * the TypeScript sources when they are run directly (jest; test/persist/fixtures/register-ts.js).
 */
import { extname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { SqliteBackendName } from './sqlite-backends';
import type { CheckpointThreadData } from './sqlite-checkpoint-thread';

export interface CheckpointThreadOptions {
  path: string;
  backend: SqliteBackendName;
  intervalMs: number;
  busyTimeoutMs: number;
  synchronous: 'off' | 'normal';
}

/** A running checkpoint thread. */
export interface CheckpointThread {
  /** Ends the thread (onFailed is not called for this). */
  stop(): Promise<void>;
}

/**
 * The thread's entry point: loads sqlite-checkpoint-thread (compiled or, with `loader`, the
 * sources) and runs it. Plain JavaScript, so it runs the same from either.
 */
const THREAD_ENTRY = `
const { workerData } = require('node:worker_threads');
if (workerData.loader) require(workerData.loader);
require(workerData.module).runCheckpointThread(workerData.thread);
`;

/** '.js' in the package, '.ts' when the sources run (the thread then needs the same loader). */
const OWN_EXTENSION = extname(__filename);
const RUNNING_SOURCES = OWN_EXTENSION === '.ts';
const THREAD_MODULE = join(__dirname, `sqlite-checkpoint-thread${OWN_EXTENSION}`);
/** The repository's require hook for the TypeScript sources (only used when they run; never in the package). */
const SOURCES_LOADER = join(__dirname, '..', '..', '..', 'test', 'persist', 'fixtures', 'register-ts.js');

/**
 * Starts the checkpoint thread: every interval it opens the file (so a file recreated under
 * the store is followed), runs `PRAGMA wal_checkpoint(PASSIVE)` and closes it again. Errors
 * there (a locked or missing file) are skipped until the next interval. Undefined if the thread
 * cannot start; `onFailed` runs (once) if it dies later, e.g. its SQLite library does not load:
 * the store then turns auto-checkpoints back on for the event loop's connection.
 */
export function startCheckpointThread(options: CheckpointThreadOptions, onFailed: () => void): CheckpointThread | undefined {
  const thread: CheckpointThreadData = {
    path: options.path,
    backend: options.backend,
    intervalMs: options.intervalMs,
    busyTimeoutMs: options.busyTimeoutMs,
    synchronous: options.synchronous === 'off' ? 'OFF' : 'NORMAL',
  };
  let worker: Worker;
  try {
    worker = new Worker(THREAD_ENTRY, {
      eval: true,
      workerData: { module: THREAD_MODULE, loader: RUNNING_SOURCES ? SOURCES_LOADER : undefined, thread },
      // A small thread: it only runs one statement per interval. Not when the sources run: the
      // loader compiles them with the TypeScript compiler, which does not fit in 16 MB.
      resourceLimits: RUNNING_SOURCES ? undefined : { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 },
      stdout: true,
      stderr: true,
    });
  } catch {
    return undefined;
  }
  worker.unref();
  let ended = false;
  const fail = (): void => {
    if (ended) return;
    ended = true;
    onFailed();
  };
  worker.on('error', fail);
  worker.on('exit', fail);
  return {
    async stop() {
      ended = true;
      await worker.terminate();
    },
  };
}
