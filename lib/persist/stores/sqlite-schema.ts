/**
 * The SQLite store's schema and its version: the one place that says what a SqliteStore file
 * holds and which files this version may read and write. Used by SqliteStore (which creates a
 * file, or migrates an older one, when it opens it read-write) and by the read-only reader of
 * the `tls-session store` command (openSqliteStoreFile), which accepts every version it can read
 * and writes nothing.
 *
 * The version is SQLite's `PRAGMA user_version` (a 32-bit integer in the file header; 0 in a new
 * file). Versions:
 *  - 0: files written before the version existed (the table below, user_version never set).
 *    Readable as they are; SqliteStore migrates them to 1 in place when it opens them read-write.
 *  - 1: the table below, user_version 1. Written at creation.
 * A file with a higher version was written by a newer tls-session: refused with a StoreError
 * (code ERR_TLS_SESSION_STORE_SCHEMA) naming the file, the version found and the versions
 * supported, before anything is written to it. So is a table this version cannot write (a
 * column missing, or an extra NOT NULL column without a default: every insert would fail).
 */
import { StoreError } from '../errors';
import type { SqliteDatabase } from './sqlite-backends';

/** The version this tls-session writes (PRAGMA user_version). */
export const SQLITE_SCHEMA_VERSION = 1;

/** The oldest version this tls-session reads (and migrates when it opens the file read-write). */
export const SQLITE_OLDEST_SCHEMA_VERSION = 0;

/** Code of the StoreError for a file whose schema this version cannot use. */
export const SQLITE_SCHEMA_ERROR_CODE = 'ERR_TLS_SESSION_STORE_SCHEMA';

export const SESSIONS_TABLE = 'tls_sessions';

/** The columns this version reads and writes (all NOT NULL). */
const COLUMNS = ['key', 'value', 'expires_at'] as const;

/** Version 1's table and index (the same as version 0's). */
export const CREATE_SCHEMA_SQL = `
      CREATE TABLE IF NOT EXISTS tls_sessions (
        key TEXT PRIMARY KEY,
        value BLOB NOT NULL,
        expires_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS tls_sessions_expires_at ON tls_sessions (expires_at);
    `;

/**
 * Migrations, each from version `from` to `from + 1`, run in one write transaction with the
 * version update. 0 -> 1 only starts recording the version: the table is unchanged.
 */
const MIGRATIONS: ReadonlyArray<{ from: number; sql: string }> = [{ from: 0, sql: CREATE_SCHEMA_SQL }];

/** What a file holds, read without writing anything. */
export interface SqliteSchemaState {
  /** PRAGMA user_version. */
  version: number;
  /** Whether the tls_sessions table exists. */
  hasTable: boolean;
  /** Whether the database holds any table, index or view at all (false: a new, empty file). */
  empty: boolean;
  /** Why this version cannot read or write the table's rows (a missing or an extra NOT NULL column); undefined if it can. */
  tableProblem: string | undefined;
}

/** Reads the schema version and the table's shape. Writes nothing; locked or damaged files throw SQLite's error. */
export function readSqliteSchema(db: SqliteDatabase): SqliteSchemaState {
  const version = Number(db.pragma('user_version'));
  const objects = Number(db.prepare('SELECT count(*) AS n FROM sqlite_master').get()!.n);
  const hasTable = db.prepare("SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = ?").get(SESSIONS_TABLE) !== undefined;
  let tableProblem: string | undefined;
  if (hasTable) {
    const columns = db
      .prepare(`SELECT name, "notnull" AS not_null, dflt_value FROM pragma_table_info('${SESSIONS_TABLE}')`)
      .all() as Array<{
      name: string;
      not_null: number;
      dflt_value: unknown;
    }>;
    const names = columns.map((c) => c.name);
    const missing = COLUMNS.filter((name) => !names.includes(name));
    const extra = columns.filter(
      (c) => !(COLUMNS as readonly string[]).includes(c.name) && Number(c.not_null) === 1 && c.dflt_value === null,
    );
    if (missing.length > 0) tableProblem = `its ${SESSIONS_TABLE} table has no column ${missing.join(', ')}`;
    else if (extra.length > 0)
      tableProblem = `its ${SESSIONS_TABLE} table has NOT NULL column(s) this version does not write: ${extra.map((c) => c.name).join(', ')}`;
  }
  return { version, hasTable, empty: objects === 0, tableProblem };
}

/**
 * The version rule. What opening `path` must do, given its state:
 *  - 'current': nothing, the file is this version's.
 *  - 'migrate': an older supported version (read it as it is; a read-write open migrates it).
 *  - 'create': a new, empty database (a read-write open creates the table; a reader sees no store).
 * Throws StoreError ERR_TLS_SESSION_STORE_SCHEMA for a newer version, a version this package
 * never wrote, a database without the table that is not empty (another application's: neither
 * SqliteStore nor the command adds a table to it or stamps its user_version) and a table whose
 * rows this version cannot read or write.
 */
export function checkSqliteSchema(state: SqliteSchemaState, path: string): 'current' | 'migrate' | 'create' {
  const { version } = state;
  const supported = `${SQLITE_OLDEST_SCHEMA_VERSION} to ${SQLITE_SCHEMA_VERSION}`;
  // Another application's database is never written to (and its user_version is its own).
  if (!state.hasTable && !state.empty) {
    throw schemaError(
      `SQLite file ${path} is not a tls-session store: it has no ${SESSIONS_TABLE} table ` +
        `(schema version found ${version}, supported ${supported}; another application's database?)`,
    );
  }
  if (version > SQLITE_SCHEMA_VERSION) {
    throw schemaError(
      `SQLite session store ${path} has schema version ${version} (PRAGMA user_version), newer than this tls-session supports ` +
        `(${supported}): it was written by a newer tls-session. Open it with that version, or give this one another file`,
    );
  }
  if (version < SQLITE_OLDEST_SCHEMA_VERSION) {
    throw schemaError(`SQLite session store ${path} has schema version ${version}, which tls-session never wrote (supported ${supported})`);
  }
  if (state.tableProblem !== undefined) {
    throw schemaError(
      `SQLite session store ${path} cannot be used by this tls-session: ${state.tableProblem} ` +
        `(schema version found ${version}, supported ${supported}; written by a newer tls-session?)`,
    );
  }
  // A new file, or one whose table was dropped: nothing of anyone's to lose.
  if (!state.hasTable) return 'create';
  return version === SQLITE_SCHEMA_VERSION ? 'current' : 'migrate';
}

/** Whether `err` is the error checkSqliteSchema throws. */
export function isSchemaError(err: unknown): boolean {
  return err instanceof StoreError && err.code === SQLITE_SCHEMA_ERROR_CODE;
}

/**
 * Brings a read-write connection's file to SQLITE_SCHEMA_VERSION: creates the table in a new
 * file, or migrates an older one in place. One write transaction (BEGIN IMMEDIATE), and the
 * state is read again inside it: several processes may open an old or a new file at once, and
 * only the first one changes it. Returns the state before it changed anything.
 */
export function ensureSqliteSchema(db: SqliteDatabase, path: string): 'current' | 'migrate' | 'create' {
  const before = checkSqliteSchema(readSqliteSchema(db), path);
  if (before === 'current') return before;
  db.exec('BEGIN IMMEDIATE');
  try {
    const state = readSqliteSchema(db);
    const action = checkSqliteSchema(state, path);
    if (action === 'create') db.exec(CREATE_SCHEMA_SQL);
    if (action === 'migrate') {
      for (const migration of MIGRATIONS) if (migration.from >= state.version) db.exec(migration.sql);
    }
    if (action !== 'current') db.exec(`PRAGMA user_version = ${SQLITE_SCHEMA_VERSION}`);
    db.exec('COMMIT');
  } catch (err) {
    try {
      db.exec('ROLLBACK');
    } catch {
      /* no transaction left to roll back */
    }
    throw err;
  }
  return before;
}

function schemaError(message: string): StoreError {
  return new StoreError(message, SQLITE_SCHEMA_ERROR_CODE);
}
