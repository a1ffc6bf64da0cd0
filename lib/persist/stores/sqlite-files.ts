/**
 * What the parts of the SQLite store share about a store file, written once here: what an error
 * from either SQLite library means for the file (locked by another process, or damaged), the
 * statements on its rows that SqliteStore and the read-only reader both run, creating the file
 * with mode 0600 (it holds session secrets), telling one file from another under the same name,
 * and closing a connection whatever state the file is in. Used by sqlite.ts (SqliteStore),
 * sqlite-file-reader.ts, sqlite-recovery.ts and sqlite-checkpoint-thread.ts.
 */
import { chmodSync, closeSync, openSync, statSync } from 'node:fs';
import { PersistConfigError } from '../errors';
import { SqliteDatabase, sqliteErrorCode } from './sqlite-backends';

/** Code of the StoreError thrown when the file stays locked (opening past openTimeoutMs, setIfAbsent, sweep, the reader). */
export const SQLITE_BUSY_CODE = 'ERR_TLS_SESSION_STORE_BUSY';

export const ENTRIES_SQL = 'SELECT key, value, expires_at FROM tls_sessions ORDER BY key';
export const DELETE_SQL = 'DELETE FROM tls_sessions WHERE key = ?';
export const SWEEP_SQL = 'DELETE FROM tls_sessions WHERE expires_at <= ?';
/** SWEEP_SQL for at most `?` rows (the oldest first, through the expiry index): one batch of a store's sweep. */
export const SWEEP_BATCH_SQL =
  'DELETE FROM tls_sessions WHERE key IN (SELECT key FROM tls_sessions WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)';

/** Another connection holds a lock SQLite did not (or could not) wait out, or opening gave up on one. */
export function isLocked(err: unknown): boolean {
  const code = sqliteErrorCode(err);
  return code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED') || code === 'SQLITE_PROTOCOL' || code === SQLITE_BUSY_CODE;
}

/** The file (or its -wal) is not, or no longer, the database this store made. */
export function isDamaged(err: unknown): boolean {
  const code = sqliteErrorCode(err);
  return (
    code === 'SQLITE_NOTADB' ||
    code.startsWith('SQLITE_CORRUPT') ||
    code === 'SQLITE_IOERR_SHORT_READ' ||
    code === 'SQLITE_READONLY_DBMOVED' ||
    // An emptied database: reopening recreates the table (another application's is refused: sqlite-schema.ts).
    (code === 'SQLITE_ERROR' && /no such table: tls_sessions/.test((err as Error).message))
  );
}

/** Creates the file with mode 0600 before SQLite opens it (SQLite gives -wal/-shm the same mode). */
export function createPrivateFile(path: string): void {
  try {
    closeSync(openSync(path, 'a', 0o600));
    chmodSync(path, 0o600);
  } catch (err) {
    throw new PersistConfigError(`cannot create SQLite session store file ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

/** Which file a connection opened: a file replaced under the same name has another inode. */
export interface FileIdentity {
  dev: bigint;
  ino: bigint;
}

/** The identity of the file at `path` now; undefined if there is none (or it cannot be stat'ed). */
export function fileIdentity(path: string): FileIdentity | undefined {
  try {
    const stats = statSync(path, { bigint: true, throwIfNoEntry: false });
    return stats ? { dev: stats.dev, ino: stats.ino } : undefined;
  } catch {
    return undefined;
  }
}

/** Closes a connection, if any; a damaged file may fail its final checkpoint, the handle is released regardless. */
export function closeQuietly(db: SqliteDatabase | undefined): void {
  try {
    db?.close();
  } catch {
    /* released regardless */
  }
}
