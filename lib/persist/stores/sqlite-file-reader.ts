/**
 * The read-only reader of a SqliteStore file (openSqliteStoreFile), for tools that look at a
 * store: `tls-session store` (lib/cli/store.ts) lists, verifies and cleans a file that live
 * servers may have open. Apart from SqliteStore (sqlite.ts) because it does none of what a store
 * does when it opens a file (create, chmod, WAL, migrate, recover, checkpoint): it shares only
 * the backends, the schema check (sqlite-schema.ts) and the statements and error classes of
 * sqlite-files.ts.
 */
import { existsSync } from 'node:fs';
import { TlsSessionError } from '../../errors';
import { clockOption, type Clock } from '../clock';
import { StoreClosedError, StoreError } from '../errors';
import { loadSqliteBackend, SqliteBackendName, SqliteBackendOption, SqliteDatabase, sqliteErrorCode } from './sqlite-backends';
import { checkSqliteSchema, readSqliteSchema, SQLITE_SCHEMA_ERROR_CODE } from './sqlite-schema';
import { closeQuietly, DELETE_SQL, ENTRIES_SQL, isDamaged, isLocked, SQLITE_BUSY_CODE, SWEEP_SQL } from './sqlite-files';
import { StoredEntry, validateKeyToDelete } from './contract';

/** What `tls-session store` needs of a SqliteStore file: see openSqliteStoreFile. */
export interface SqliteStoreFile {
  readonly path: string;
  /** The SQLite library it was opened with. */
  readonly backend: SqliteBackendName;
  /** The file's schema version (PRAGMA user_version; 0: written before the version existed). */
  readonly schemaVersion: number;
  /** Every row, expired ones not yet swept included, in key order (as SqliteStore#entries). */
  entries(): AsyncGenerator<StoredEntry>;
  /** Deletes one record. The first write reopens the file read-write. */
  delete(key: string): Promise<void>;
  /** Deletes expired records; resolves with how many went. The first write reopens the file read-write. */
  sweep(): Promise<number>;
  close(): Promise<void>;
}

export interface SqliteStoreFileOptions {
  /** As SqliteStoreOptions.backend (default 'auto'). */
  backend?: SqliteBackendOption;
  /** How long a statement waits for another process's lock (default 5000 ms: a tool may wait, a handshake may not). */
  busyTimeoutMs?: number;
  /** The clock sweep() deletes expired records by (default Date.now), as SqliteStoreOptions.now. */
  now?: Clock;
}

/**
 * Opens an existing SqliteStore file for a tool that looks at it (`tls-session store`), never as
 * SqliteStore does: no file created, no chmod, no switch to WAL, no table created, no migration,
 * no recovery (a damaged file is reported, never deleted), no checkpoint thread. Reads go
 * through a read-only connection; a file that no process has open (no -wal) is read as it is on
 * disk, so not even a -wal or -shm appears next to it (a read-only directory or a 0444 file
 * works). Only delete() and sweep() write: the first one closes the read-only connection and
 * opens the file read-write (still none of the above).
 *
 * Throws a StoreError naming the file and the problem: ERR_TLS_SESSION_STORE_SCHEMA for a file
 * that is not a tls-session store (another application's database, an empty one) or has a schema
 * this version cannot read (sqlite-schema.ts: every older version is read as it is);
 * ERR_TLS_SESSION_STORE for a file that is damaged (PRAGMA quick_check) or not a database;
 * ERR_TLS_SESSION_STORE_BUSY for one locked past busyTimeoutMs.
 */
export function openSqliteStoreFile(path: string, options: SqliteStoreFileOptions = {}): SqliteStoreFile {
  const sqlite = loadSqliteBackend(options.backend ?? 'auto');
  const busyTimeoutMs = options.busyTimeoutMs ?? 5000;
  const now = clockOption(options.now);
  // No -wal: no process has the file open in WAL mode and everything is in the file itself. A
  // -journal (a rollback-journal database mid-write, or a crashed writer) needs SQLite's locks.
  const snapshot = !existsSync(`${path}-wal`) && !existsSync(`${path}-journal`);
  let reader: SqliteDatabase | undefined;
  let writer: SqliteDatabase | undefined;
  let schemaVersion: number;
  try {
    reader = sqlite.open(path, { busyTimeoutMs, readOnly: true, snapshot });
    const check = reader.pragma('quick_check');
    if (check !== 'ok') {
      const found = String(check).replace(/\s*\n\s*/g, ' ');
      throw new StoreError(`SQLite session store ${path} is damaged (quick_check: ${found}); the file was left as it is`);
    }
    const state = readSqliteSchema(reader);
    if (checkSqliteSchema(state, path) === 'create') {
      throw new StoreError(`SQLite file ${path} is not a tls-session store: it is an empty database`, SQLITE_SCHEMA_ERROR_CODE);
    }
    schemaVersion = state.version;
  } catch (err) {
    closeQuietly(reader);
    throw storeFileError(path, err);
  }
  const writable = (): SqliteDatabase => {
    if (writer) return writer;
    closeQuietly(reader);
    reader = undefined;
    let db: SqliteDatabase | undefined;
    try {
      db = sqlite.open(path, { busyTimeoutMs, fileMustExist: true });
      // Rows only: an older version is written as it is (migrating is SqliteStore's).
      checkSqliteSchema(readSqliteSchema(db), path);
    } catch (err) {
      closeQuietly(db);
      throw storeFileError(path, err);
    }
    writer = db;
    return db;
  };
  const run = <T>(operation: (db: SqliteDatabase) => T, db: () => SqliteDatabase): T => {
    const connection = db();
    try {
      return operation(connection);
    } catch (err) {
      throw storeFileError(path, err);
    }
  };
  const readable = (): SqliteDatabase => {
    const db = writer ?? reader;
    if (!db) throw new StoreClosedError();
    return db;
  };
  return {
    path,
    backend: sqlite.name,
    schemaVersion,
    async *entries() {
      const rows = run((db) => db.prepare(ENTRIES_SQL).all() as { key: string; value: Buffer; expires_at: number }[], readable);
      for (const row of rows) yield { key: row.key, value: row.value, expiresAt: new Date(Number(row.expires_at)) };
    },
    async delete(key) {
      validateKeyToDelete(key);
      run((db) => db.prepare(DELETE_SQL).run(key), writable);
    },
    async sweep() {
      return run((db) => db.prepare(SWEEP_SQL).run(now()), writable).changes;
    },
    async close() {
      closeQuietly(reader);
      closeQuietly(writer);
      reader = undefined;
      writer = undefined;
    },
  };
}

/** A SqliteStoreFile's failure, naming the file: schema and store errors as they are, SQLite's own named. */
function storeFileError(path: string, err: unknown): Error {
  if (err instanceof TlsSessionError) return err;
  const code = sqliteErrorCode(err);
  const message = `${(err as Error).message}${code.startsWith('SQLITE_') ? ` (${code})` : ''}`;
  if (isLocked(err)) return new StoreError(`SQLite session store ${path} stayed locked by another process: ${message}`, SQLITE_BUSY_CODE);
  if (isDamaged(err))
    return new StoreError(`SQLite session store ${path} is damaged or not a SQLite database: ${message}; the file was left as it is`);
  return new StoreError(`SQLite session store ${path} cannot be read: ${message}`);
}
