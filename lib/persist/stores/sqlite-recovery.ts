/**
 * Recovering a SqliteStore file that is damaged or was replaced while the store is live: the
 * cheap check every operation makes now and then (does the file still start like a SQLite
 * database), the decisive one through a fresh connection (probeDatabase), deleting a damaged
 * database with its -wal and -shm so it can be recreated, and the lock file that lets one
 * process at a time do that. SqliteStore (sqlite.ts) decides when to recover and reopens the
 * file; these are the steps, apart so that the store's file reads as what a store does. The
 * read-only reader (sqlite-file-reader.ts) never recovers: it reports a damaged file.
 * docs/PERSISTENCE.md ("SQLite across processes") has the details.
 */
import { closeSync, openSync, readSync, statSync, unlinkSync } from 'node:fs';
import { SqliteBackend, SqliteDatabase } from './sqlite-backends';
import { closeQuietly, fileIdentity, isDamaged } from './sqlite-files';

/** A recovery lock older than this was left by a process that died while recovering. */
const STALE_RECOVERY_LOCK_MS = 10_000;
const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1');

/**
 * Whether the file starts like a SQLite database. An empty file counts: in WAL mode nothing
 * reaches the main file before the first checkpoint. Unreadable counts too: the next statement
 * will say what is wrong. Only a hint; probeDatabase decides.
 */
export function hasDatabaseHeader(path: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const header = Buffer.alloc(SQLITE_HEADER.length);
    const bytesRead = readSync(fd, header, 0, header.length, 0);
    return bytesRead === 0 || (bytesRead === header.length && header.equals(SQLITE_HEADER));
  } catch {
    return true;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Asks SQLite itself, through a fresh connection (no page cache hiding the file's state). A
 * good database whose main file has a damaged header (its pages are all still in the -wal)
 * is checkpointed, so the header on disk is good again and the next file check passes.
 */
export function probeDatabase(sqlite: SqliteBackend, path: string, busyTimeoutMs: number): 'good' | 'damaged' | 'missing' {
  if (!fileIdentity(path)) return 'missing';
  let db: SqliteDatabase | undefined;
  try {
    db = sqlite.open(path, { busyTimeoutMs, fileMustExist: true });
    if (db.pragma('quick_check') !== 'ok') return 'damaged';
    db.pragma('wal_checkpoint(PASSIVE)');
    return 'good';
  } catch (err) {
    if (isDamaged(err)) return 'damaged';
    throw err;
  } finally {
    closeQuietly(db);
  }
}

/**
 * Deletes the database with its -wal and -shm, the -wal and -shm first: until the main file
 * goes, nobody can open the damaged database, so no process pairs the new file with an old
 * -shm. Unlink, never truncate: other processes map the -shm, and a truncated mapping kills
 * them (SIGBUS); an unlinked one stays valid for them until they reopen.
 */
export function deleteDatabaseFiles(path: string): void {
  for (const file of [`${path}-wal`, `${path}-shm`, `${path}-journal`, path]) {
    try {
      unlinkSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}

const recoveryLockPath = (path: string): string => `${path}.recovery-lock`;

/**
 * One process at a time recreates the file: two would delete each other's new files. Returns
 * the lock's file descriptor (for releaseRecoveryLock); throws EEXIST (isLockTaken) while
 * another process holds it.
 */
export function acquireRecoveryLock(path: string): number {
  const lockPath = recoveryLockPath(path);
  try {
    return openSync(lockPath, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || recoveryInProgress(path)) throw err;
    // Left by a process that died while recovering.
    try {
      unlinkSync(lockPath);
    } catch {
      /* another process removed it first */
    }
    return openSync(lockPath, 'wx', 0o600);
  }
}

export function releaseRecoveryLock(path: string, fd: number): void {
  closeSync(fd);
  try {
    unlinkSync(recoveryLockPath(path));
  } catch {
    /* already gone */
  }
}

/** Whether a live (not stale) recovery lock exists for the file. */
export function recoveryInProgress(path: string): boolean {
  try {
    return Date.now() - statSync(recoveryLockPath(path)).mtimeMs < STALE_RECOVERY_LOCK_MS;
  } catch {
    return false;
  }
}

/** acquireRecoveryLock failed because another process holds the lock (not for another reason). */
export function isLockTaken(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'EEXIST';
}
