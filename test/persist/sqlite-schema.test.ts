/**
 * The SQLite store's schema version (lib/persist/stores/sqlite-schema.ts), on each backend: written at
 * creation (PRAGMA user_version), an older file (version 0: written before the version existed)
 * migrated in place by SqliteStore and read as it is by the command's read-only reader
 * (openSqliteStoreFile), and a file SqliteStore cannot write (a newer version, an extra NOT NULL
 * column, another application's database) refused at open with ERR_TLS_SESSION_STORE_SCHEMA and
 * left unchanged, instead of opening and then failing every set().
 */
import { chmodSync, existsSync, readFileSync, statSync } from 'node:fs';
import { StoreError } from '../../lib/persist/errors';
import { loadSqliteBackend, SqliteBackendName, SqliteDatabase } from '../../lib/persist/stores/sqlite-backends';
import { SqliteStore } from '../../lib/persist/stores/sqlite';
import { openSqliteStoreFile } from '../../lib/persist/stores/sqlite-file-reader';
import { describeEachBackend, openRaw, scratchDatabases, thrownBy } from './helpers/sqlite-backends';

const scratch = scratchDatabases('tls-session-sqlite-schema-');
const freshPath = scratch.fresh;

/** The version this tls-session writes (sqlite-schema.ts SQLITE_SCHEMA_VERSION), spelled out: the file format is the contract. */
const CURRENT_VERSION = 1;

/** Everything about a file a reader must not change. */
function fileState(path: string): { bytes: string; mode: number; sideFiles: string[] } {
  return {
    bytes: readFileSync(path).toString('base64'),
    mode: statSync(path).mode & 0o777,
    sideFiles: ['-wal', '-shm', '-journal'].filter((suffix) => existsSync(`${path}${suffix}`)),
  };
}

/**
 * A file as the SqliteStore before schema versions wrote it: WAL, the same table and index,
 * user_version never set (0). Extra SQL (a newer schema) runs after.
 */
function writeLegacyStore(path: string, backend: SqliteBackendName, rows: number, extraSql = ''): void {
  const db = createRaw(path, backend);
  try {
    db.pragma('journal_mode = WAL');
    db.exec(`
      CREATE TABLE IF NOT EXISTS tls_sessions (
        key TEXT PRIMARY KEY,
        value BLOB NOT NULL,
        expires_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS tls_sessions_expires_at ON tls_sessions (expires_at);
    `);
    const insert = db.prepare('INSERT INTO tls_sessions (key, value, expires_at) VALUES (?, ?, ?)');
    for (let i = 0; i < rows; i += 1) insert.run(`session:${i}`, Buffer.from(`value ${i}`), Date.now() + 3_600_000);
    if (extraSql) db.exec(extraSql);
  } finally {
    db.close();
  }
}

/** A new database file through the backend alone (openRaw opens existing files only). */
function createRaw(path: string, backend: SqliteBackendName): SqliteDatabase {
  return loadSqliteBackend(backend).open(path, { busyTimeoutMs: 1000 });
}

function userVersion(path: string, backend: SqliteBackendName): number {
  const db = openRaw(path, backend);
  try {
    return Number(db.pragma('user_version'));
  } finally {
    db.close();
  }
}

describeEachBackend('SQLite schema version', (backend) => {
  test('a new file is created with the current schema version (PRAGMA user_version)', async () => {
    const path = freshPath('new');
    const store = new SqliteStore({ path, sweepIntervalMs: 0, backend });
    await store.set('k', Buffer.from('v'), 60);
    await store.close();
    expect(userVersion(path, backend)).toBe(CURRENT_VERSION);
  });

  test('a version-0 file (written before the version existed) is migrated in place when SqliteStore opens it; its rows stay', async () => {
    const path = freshPath('legacy');
    writeLegacyStore(path, backend, 3);
    expect(userVersion(path, backend)).toBe(0);
    const store = new SqliteStore({ path, sweepIntervalMs: 0, backend });
    try {
      expect((await store.get('session:2'))!.toString()).toBe('value 2');
      await store.set('after', Buffer.from('a'), 60);
    } finally {
      await store.close();
    }
    expect(userVersion(path, backend)).toBe(CURRENT_VERSION);
    // Opening it again changes nothing more.
    const again = new SqliteStore({ path, sweepIntervalMs: 0, backend });
    expect((await again.get('after'))!.toString()).toBe('a');
    await again.close();
  });

  test('a file of a newer schema version is refused at open (ERR_TLS_SESSION_STORE_SCHEMA, naming file and versions) and left unchanged', () => {
    const path = freshPath('newer');
    writeLegacyStore(path, backend, 2, `PRAGMA user_version = ${CURRENT_VERSION + 1}`);
    chmodSync(path, 0o600);
    const before = fileState(path);
    const error = thrownBy(() => new SqliteStore({ path, sweepIntervalMs: 0, backend }));
    expect(error).toBeInstanceOf(StoreError);
    expect(error.code).toBe('ERR_TLS_SESSION_STORE_SCHEMA');
    expect(error.message).toContain(path);
    expect(error.message).toContain(`schema version ${CURRENT_VERSION + 1}`);
    expect(error.message).toContain(`supports (0 to ${CURRENT_VERSION})`);
    expect(fileState(path)).toEqual(before);
  });

  test('a table with an extra NOT NULL column (a newer writer) is refused at open, not by every set() after it', () => {
    const path = freshPath('extra-column');
    writeLegacyStore(path, backend, 1, "ALTER TABLE tls_sessions ADD COLUMN scope TEXT NOT NULL DEFAULT ''");
    // Rebuilt without the default: what a newer schema with a required column looks like.
    const db = openRaw(path, backend);
    db.exec(`
      CREATE TABLE t2 (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at INTEGER NOT NULL, scope TEXT NOT NULL) WITHOUT ROWID;
      INSERT INTO t2 SELECT key, value, expires_at, scope FROM tls_sessions;
      DROP TABLE tls_sessions;
      ALTER TABLE t2 RENAME TO tls_sessions;
    `);
    db.close();
    chmodSync(path, 0o600);
    const before = fileState(path);
    const error = thrownBy(() => new SqliteStore({ path, sweepIntervalMs: 0, backend }));
    expect(error).toMatchObject({ code: 'ERR_TLS_SESSION_STORE_SCHEMA' });
    expect(error.message).toContain(path);
    expect(error.message).toContain('NOT NULL column(s) this version does not write: scope');
    expect(error.message).toContain('schema version found 0');
    expect(fileState(path)).toEqual(before);
  });

  test("another application's database is refused, not given a table and a user_version", () => {
    const path = freshPath('foreign');
    const db = createRaw(path, backend);
    db.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users (name) VALUES ('ann')");
    db.close();
    chmodSync(path, 0o600);
    const before = fileState(path);
    const error = thrownBy(() => new SqliteStore({ path, sweepIntervalMs: 0, backend }));
    expect(error).toMatchObject({ code: 'ERR_TLS_SESSION_STORE_SCHEMA' });
    expect(error.message).toMatch(/is not a tls-session store: it has no tls_sessions table/);
    expect(fileState(path)).toEqual(before);
  });

  test('the read-only reader (openSqliteStoreFile) reads a version-0 file as it is: no migration, nothing written', async () => {
    const path = freshPath('legacy-read');
    writeLegacyStore(path, backend, 3);
    const before = fileState(path);
    const file = openSqliteStoreFile(path, { backend });
    const keys: string[] = [];
    try {
      expect(file.schemaVersion).toBe(0);
      for await (const entry of file.entries()) keys.push(entry.key);
    } finally {
      await file.close();
    }
    expect(keys).toEqual(['session:0', 'session:1', 'session:2']);
    expect(fileState(path)).toEqual(before);
    expect(userVersion(path, backend)).toBe(0);
  });

  test('the read-only reader refuses a newer version with the same error, and writes nothing', () => {
    const path = freshPath('newer-read');
    writeLegacyStore(path, backend, 1, `PRAGMA user_version = ${CURRENT_VERSION + 5}`);
    const before = fileState(path);
    const error = thrownBy(() => openSqliteStoreFile(path, { backend }));
    expect(error).toMatchObject({ code: 'ERR_TLS_SESSION_STORE_SCHEMA' });
    expect(error.message).toContain(`schema version ${CURRENT_VERSION + 5}`);
    expect(fileState(path)).toEqual(before);
  });

  test('the reader writes only when asked to delete: sweep and delete keep the version and the mode', async () => {
    const path = freshPath('legacy-sweep');
    writeLegacyStore(path, backend, 2);
    const db = openRaw(path, backend);
    db.prepare('INSERT INTO tls_sessions VALUES (?, ?, ?)').run('expired', Buffer.from('x'), 1);
    db.close();
    chmodSync(path, 0o640);
    const file = openSqliteStoreFile(path, { backend });
    try {
      expect(await file.sweep()).toBe(1);
      await file.delete('session:0');
    } finally {
      await file.close();
    }
    expect(statSync(path).mode & 0o777).toBe(0o640);
    expect(userVersion(path, backend)).toBe(0);
    const raw = openRaw(path, backend);
    try {
      expect(raw.prepare('SELECT key FROM tls_sessions').all()).toEqual([{ key: 'session:1' }]);
    } finally {
      raw.close();
    }
  });
});
