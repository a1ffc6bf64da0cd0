/**
 * The two SQLite libraries SqliteStore runs on, behind one small interface: Node's built-in
 * `node:sqlite` (Node 22.13+, without an ExperimentalWarning from Node 24) and better-sqlite3 (an
 * optional peer dependency, for Node 20). Both open the same file format; SqliteStore talks only
 * to the interface below, so schema, pragmas and error handling are written once.
 *
 * Neither library is loaded until a SqliteStore is constructed (loadSqliteBackend): requiring
 * this package loads neither. The differences this file absorbs, measured on Node 22.23, 24.21
 * and 26.10 against better-sqlite3 12.11:
 *  - BLOBs: node:sqlite returns Uint8Array, better-sqlite3 Buffer. Rows get Buffers (same memory).
 *  - Busy timeout: better-sqlite3's `timeout` option; node:sqlite's `timeout` option is missing
 *    before Node 22.16, so `PRAGMA busy_timeout` there (the same sqlite3_busy_timeout).
 *  - Open without create: better-sqlite3's `fileMustExist`; node:sqlite opens URIs, so
 *    `file:…?mode=rw` (SQLITE_OPEN_READWRITE without SQLITE_OPEN_CREATE, as fileMustExist does).
 *  - Read-only: better-sqlite3's `readonly`, node:sqlite `file:…?mode=ro`. A read-only
 *    connection to a WAL-mode file still creates (and leaves) its -wal and -shm, so `snapshot`
 *    reads a file no connection has open without any: node:sqlite `?mode=ro&immutable=1`;
 *    better-sqlite3 opens no URIs (SQLITE_USE_URI=0), so it reads the file into memory and opens
 *    that image (sqlite3_deserialize), marked as a rollback-journal database (header bytes 18
 *    and 19: an in-memory database cannot be in WAL mode; the content is the same).
 *  - Pragmas: better-sqlite3's `.pragma(…, { simple: true })`; node:sqlite has none, so
 *    `PRAGMA …` through a statement.
 *  - Errors: better-sqlite3 throws SqliteError with `code` 'SQLITE_BUSY', 'SQLITE_NOTADB', …;
 *    node:sqlite an Error with `code` 'ERR_SQLITE_ERROR' and the extended result code as number
 *    in `errcode`. sqliteErrorCode gives the SQLite name for both.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { isNativeError } from 'node:util/types';
import { PersistConfigError } from '../errors';

/** The SQLite library a SqliteStore runs on. */
export type SqliteBackendName = 'node:sqlite' | 'better-sqlite3';

/** `SqliteStoreOptions.backend`: a library, or 'auto' (see loadSqliteBackend). */
export type SqliteBackendOption = 'auto' | SqliteBackendName;

export const SQLITE_BACKEND_OPTIONS: readonly SqliteBackendOption[] = ['auto', 'node:sqlite', 'better-sqlite3'];

/** What a statement binds. */
export type SqliteValue = string | number | bigint | Buffer | null;

/** One result row, by column name; BLOB columns are Buffers whichever backend read them. */
export type SqliteRow = Record<string, unknown>;

export interface SqliteStatement {
  get(...params: SqliteValue[]): SqliteRow | undefined;
  all(...params: SqliteValue[]): SqliteRow[];
  run(...params: SqliteValue[]): { changes: number };
}

export interface SqliteDatabase {
  exec(sql: string): void;
  prepare(sql: string): SqliteStatement;
  /** Runs `PRAGMA <statement>`; returns the first column of its first row (undefined if none), e.g. 'ok' for quick_check. */
  pragma(statement: string): unknown;
  close(): void;
}

export interface SqliteOpenOptions {
  /** How long a statement waits for another connection's lock (sqlite3_busy_timeout). */
  busyTimeoutMs: number;
  /** Fail (SQLITE_CANTOPEN) instead of creating the file when it does not exist. */
  fileMustExist?: boolean;
  /**
   * Open read-only (SQLITE_OPEN_READONLY; implies fileMustExist): nothing this connection does
   * writes to the database file. A WAL-mode file's -wal and -shm are still created if missing.
   */
  readOnly?: boolean;
  /**
   * With readOnly: read the file as it is on disk, creating nothing next to it (no -wal, no -shm)
   * and taking no lock. Only sound for a file no connection has open in WAL mode (its -wal does
   * not exist), so everything is in the file itself; a -wal's content would be ignored.
   */
  snapshot?: boolean;
}

export interface SqliteBackend {
  readonly name: SqliteBackendName;
  open(path: string, options: SqliteOpenOptions): SqliteDatabase;
}

// --- better-sqlite3 ---

function loadBetterSqlite3(): SqliteBackend {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Database = require('better-sqlite3') as typeof BetterSqlite3;
  // better-sqlite3 loads its native addon in the first constructor: an addon built for another
  // Node ABI fails here, not at require.
  new Database(':memory:').close();
  return {
    name: 'better-sqlite3',
    open(path, { busyTimeoutMs, fileMustExist = false, readOnly = false, snapshot = false }) {
      const db =
        readOnly && snapshot
          ? openImage(Database, path)
          : new Database(path, { timeout: busyTimeoutMs, fileMustExist: fileMustExist || readOnly, readonly: readOnly });
      return {
        exec: (sql) => void db.exec(sql),
        prepare: (sql) => db.prepare<SqliteValue[], SqliteRow>(sql),
        pragma: (statement) => db.pragma(statement, { simple: true }),
        close: () => void db.close(),
      };
    },
  };
}

/** SQLite's file header: bytes 18 and 19 are the write and read format, 2 for WAL mode. */
const HEADER_FORMAT_OFFSETS = [18, 19];
const WAL_FORMAT = 2;
const ROLLBACK_FORMAT = 1;

/** better-sqlite3's snapshot: the file's bytes as an in-memory read-only database. */
function openImage(Database: typeof BetterSqlite3, path: string): BetterSqlite3.Database {
  const image = readFileSync(path);
  // A new, empty file is an empty database (better-sqlite3 refuses an empty image).
  if (image.length === 0) return new Database(':memory:');
  for (const offset of HEADER_FORMAT_OFFSETS) if (image[offset] === WAL_FORMAT) image[offset] = ROLLBACK_FORMAT;
  return new Database(image, { readonly: true });
}

// --- node:sqlite (typed here: @types/node 20 does not have it) ---

interface NodeStatementSync {
  get(...params: SqliteValue[]): SqliteRow | undefined;
  all(...params: SqliteValue[]): SqliteRow[];
  run(...params: SqliteValue[]): { changes: number | bigint; lastInsertRowid: number | bigint };
}

interface NodeDatabaseSync {
  exec(sql: string): void;
  prepare(sql: string): NodeStatementSync;
  close(): void;
}

interface NodeSqliteModule {
  DatabaseSync: new (path: string) => NodeDatabaseSync;
}

/** node:sqlite returns BLOBs as Uint8Array: the same bytes as Buffers, without copying. */
function withBuffers(row: SqliteRow): SqliteRow {
  for (const column in row) {
    const value = row[column];
    if (value instanceof Uint8Array && !Buffer.isBuffer(value)) row[column] = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  }
  return row;
}

function loadNodeSqlite(): SqliteBackend {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { DatabaseSync } = require('node:sqlite') as NodeSqliteModule;
  const statement = (st: NodeStatementSync): SqliteStatement => ({
    get: (...params) => {
      const row = st.get(...params);
      return row && withBuffers(row);
    },
    all: (...params) => st.all(...params).map(withBuffers),
    run: (...params) => ({ changes: Number(st.run(...params).changes) }),
  });
  return {
    name: 'node:sqlite',
    open(path, { busyTimeoutMs, fileMustExist = false, readOnly = false, snapshot = false }) {
      const mode = readOnly ? `?mode=ro${snapshot ? '&immutable=1' : ''}` : fileMustExist ? '?mode=rw' : undefined;
      const db = new DatabaseSync(mode === undefined ? path : `${pathToFileURL(path).href}${mode}`);
      try {
        db.exec(`PRAGMA busy_timeout = ${busyTimeoutMs}`);
      } catch (err) {
        db.close();
        throw err;
      }
      return {
        exec: (sql) => db.exec(sql),
        prepare: (sql) => statement(db.prepare(sql)),
        pragma: (text) => {
          const row = db.prepare(`PRAGMA ${text}`).get();
          return row === undefined ? undefined : Object.values(row)[0];
        },
        close: () => db.close(),
      };
    },
  };
}

// --- choosing one ---

const loaders: Record<SqliteBackendName, () => SqliteBackend> = { 'node:sqlite': loadNodeSqlite, 'better-sqlite3': loadBetterSqlite3 };
const loaded = new Map<SqliteBackendName, SqliteBackend>();

/** Node 24 is the first line whose node:sqlite loads without an ExperimentalWarning. */
const NODE_SQLITE_PREFERRED_FROM_MAJOR = 24;

type Loaded = { backend: SqliteBackend; error?: undefined } | { backend?: undefined; error: Error };

function tryLoad(name: SqliteBackendName): Loaded {
  let backend = loaded.get(name);
  if (backend) return { backend };
  try {
    backend = loaders[name]();
  } catch (err) {
    // isNativeError, not instanceof: under a test runner's sandbox require's error may come from another realm.
    return { error: isNativeError(err) ? err : new Error(String(err)) };
  }
  loaded.set(name, backend);
  return { backend };
}

const isNotInstalled = (err: Error): boolean =>
  (err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' && err.message.includes("'better-sqlite3'");

/** Why better-sqlite3 did not load, and the command that fixes it. */
function betterSqlite3Fix(err: Error): string {
  if (isNotInstalled(err)) return 'npm install better-sqlite3';
  // E.g. built for another Node ABI after switching Node versions.
  return `it is installed but failed to load (${err.message.replace(/\s*\n\s*/g, ' ')}): npm rebuild better-sqlite3`;
}

/**
 * The backend to use. 'auto': node:sqlite from Node 24 (no ExperimentalWarning there), else
 * (Node 20, 22) better-sqlite3 if it loads, else node:sqlite (on Node 22 Node then prints its
 * ExperimentalWarning); each falls back to the other if it does not load. A named backend that
 * does not load, or 'auto' with neither, is a PersistConfigError saying what to install.
 * Loads the library on first use (never at require time) and keeps it.
 */
export function loadSqliteBackend(choice: SqliteBackendOption): SqliteBackend {
  const version = process.version;
  if (choice !== 'auto') {
    const { backend, error } = tryLoad(choice);
    if (backend) return backend;
    const problem =
      choice === 'node:sqlite'
        ? `node:sqlite is built into Node 22.13 and later (${error.message}); use backend 'better-sqlite3' here`
        : `${isNotInstalled(error) ? 'it is not installed: ' : ''}${betterSqlite3Fix(error)}`;
    throw withCause(new PersistConfigError(`SqliteStore backend '${choice}' is not available on Node ${version}: ${problem}`), error);
  }
  const preferNodeSqlite = Number(process.versions.node.split('.')[0]) >= NODE_SQLITE_PREFERRED_FROM_MAJOR;
  const nodeSqlite = preferNodeSqlite ? tryLoad('node:sqlite') : undefined;
  if (nodeSqlite?.backend) return nodeSqlite.backend;
  const betterSqlite3 = tryLoad('better-sqlite3');
  if (betterSqlite3.backend) return betterSqlite3.backend;
  const fallback = nodeSqlite ?? tryLoad('node:sqlite');
  if (fallback.backend) return fallback.backend;
  const note = preferNodeSqlite
    ? `; the built-in node:sqlite did not load either (${fallback.error.message})`
    : ' (Node 24+ uses the built-in node:sqlite)';
  const line = `${version.slice(0, version.indexOf('.'))}.x`;
  throw withCause(
    new PersistConfigError(`SqliteStore on Node ${line} needs better-sqlite3: ${betterSqlite3Fix(betterSqlite3.error)}${note}`),
    betterSqlite3.error,
  );
}

function withCause<E extends Error>(err: E, cause: Error): E {
  (err as { cause?: unknown }).cause = cause;
  return err;
}

// --- errors ---

/**
 * SQLite result codes by number (https://sqlite.org/rescode.html): every primary code, and the
 * extended codes SqliteStore tells apart. An extended code not listed maps to its primary name.
 */
const RESULT_CODES: Record<number, string> = {
  1: 'SQLITE_ERROR',
  2: 'SQLITE_INTERNAL',
  3: 'SQLITE_PERM',
  4: 'SQLITE_ABORT',
  5: 'SQLITE_BUSY',
  6: 'SQLITE_LOCKED',
  7: 'SQLITE_NOMEM',
  8: 'SQLITE_READONLY',
  9: 'SQLITE_INTERRUPT',
  10: 'SQLITE_IOERR',
  11: 'SQLITE_CORRUPT',
  12: 'SQLITE_NOTFOUND',
  13: 'SQLITE_FULL',
  14: 'SQLITE_CANTOPEN',
  15: 'SQLITE_PROTOCOL',
  16: 'SQLITE_EMPTY',
  17: 'SQLITE_SCHEMA',
  18: 'SQLITE_TOOBIG',
  19: 'SQLITE_CONSTRAINT',
  20: 'SQLITE_MISMATCH',
  21: 'SQLITE_MISUSE',
  22: 'SQLITE_NOLFS',
  23: 'SQLITE_AUTH',
  24: 'SQLITE_FORMAT',
  25: 'SQLITE_RANGE',
  26: 'SQLITE_NOTADB',
  27: 'SQLITE_NOTICE',
  28: 'SQLITE_WARNING',
  261: 'SQLITE_BUSY_RECOVERY',
  517: 'SQLITE_BUSY_SNAPSHOT',
  773: 'SQLITE_BUSY_TIMEOUT',
  262: 'SQLITE_LOCKED_SHAREDCACHE',
  518: 'SQLITE_LOCKED_VTAB',
  267: 'SQLITE_CORRUPT_VTAB',
  523: 'SQLITE_CORRUPT_SEQUENCE',
  779: 'SQLITE_CORRUPT_INDEX',
  522: 'SQLITE_IOERR_SHORT_READ',
  1032: 'SQLITE_READONLY_DBMOVED',
};

/**
 * The SQLite result code name of an error thrown by either backend ('SQLITE_BUSY',
 * 'SQLITE_NOTADB', …, extended where SQLite gave one); for any other error its own string
 * `code`, or ''. The one place the store reads error codes through.
 */
export function sqliteErrorCode(err: unknown): string {
  const { code, errcode } = (err ?? {}) as { code?: unknown; errcode?: unknown };
  const number = resultCodeNumber(code, errcode);
  if (number !== undefined) return RESULT_CODES[number] ?? RESULT_CODES[number & 0xff] ?? `UNKNOWN_SQLITE_ERROR_${number}`;
  return typeof code === 'string' ? code : '';
}

/**
 * node:sqlite gives the number. better-sqlite3 gives the name, or 'UNKNOWN_SQLITE_ERROR_<n>'
 * for a code its own table lacks (SQLITE_BUSY_TIMEOUT among them).
 */
function resultCodeNumber(code: unknown, errcode: unknown): number | undefined {
  if (code === 'ERR_SQLITE_ERROR' && typeof errcode === 'number') return errcode;
  const match = typeof code === 'string' ? /^UNKNOWN_SQLITE_ERROR_(\d+)$/.exec(code) : null;
  return match ? Number(match[1]) : undefined;
}
