/**
 * What runs inside SqliteStore's WAL checkpoint thread (sqlite-checkpointer.ts starts it): every
 * interval it opens the store file through the one open path of sqlite-backends.ts (the library
 * the store runs on), runs a PASSIVE checkpoint and closes the file again. A module of its own so
 * that the thread, which runs with a small heap, loads only this, the backends and
 * sqlite-files.ts, never the store.
 */
import { loadSqliteBackend, SqliteBackendName, SqliteDatabase } from './sqlite-backends';
import { closeQuietly } from './sqlite-files';

/** The thread's workerData (see startCheckpointThread). */
export interface CheckpointThreadData {
  path: string;
  backend: SqliteBackendName;
  intervalMs: number;
  busyTimeoutMs: number;
  /** The store's `synchronous` setting, as the pragma takes it. */
  synchronous: 'OFF' | 'NORMAL';
}

/**
 * Runs in the thread until it is terminated. A library that does not load throws (the thread
 * dies and the store goes back to inline checkpoints); a locked, missing or recreated file is
 * skipped until the next interval. Opening the file every time follows a file recreated under
 * the store.
 */
export function runCheckpointThread({ path, backend, intervalMs, busyTimeoutMs, synchronous }: CheckpointThreadData): void {
  const sqlite = loadSqliteBackend(backend);
  const checkpoint = (): void => {
    let db: SqliteDatabase | undefined;
    try {
      db = sqlite.open(path, { busyTimeoutMs, fileMustExist: true });
      db.pragma(`synchronous = ${synchronous}`);
      db.pragma('wal_checkpoint(PASSIVE)');
    } catch {
      /* locked, missing or being recreated: the next interval tries again */
    } finally {
      closeQuietly(db);
    }
  };
  setInterval(checkpoint, intervalMs);
}
