/**
 * SqliteStore's two SQLite backends (lib/persist/stores/sqlite-backends.ts): which one 'auto' picks on
 * the running Node, the typed error when one is forced or needed and does not load, loading
 * neither before a store is constructed, the adapter differences (busy timeout, open without
 * create, BLOBs as Buffers, one set of error names), the store's lock and damage handling on
 * each, and one file written by one backend and read by the other (in turn, and at once from two
 * processes). Tests for a backend that does not load on this Node are skipped (Node 20 has no
 * node:sqlite; better-sqlite3 loads only where it was built for this Node's ABI:
 * scripts/node-lines.sh rebuilds it per line, so CI runs both on 22, 24 and 26).
 * The store contract per backend: stores.test.ts.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { isNativeError } from 'node:util/types';
import { PersistConfigError } from '../../lib/persist/errors';
import { loadSqliteBackend, SqliteBackendName, sqliteErrorCode } from '../../lib/persist/stores/sqlite-backends';
import { SqliteStore } from '../../lib/persist/stores/sqlite';
import { inChild, requireLib } from '../helpers/child';
import { manualClock } from './helpers/clock';
import {
  availableBackends,
  describeEachBackend,
  nodeMajor,
  openRaw,
  SQLITE_BACKENDS,
  unavailableBackends,
  scratchDatabases,
  thrownBy,
} from './helpers/sqlite-backends';

const scratch = scratchDatabases('tls-session-sqlite-backends-');
const freshPath = scratch.fresh;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What 'auto' must pick on this Node: node:sqlite from 24, better-sqlite3 on 20, on 22 better-sqlite3 if it loads. */
const expectedAuto: SqliteBackendName =
  nodeMajor >= 24 ? 'node:sqlite' : nodeMajor < 22 || !unavailableBackends.has('better-sqlite3') ? 'better-sqlite3' : 'node:sqlite';

describe('choosing the backend', () => {
  test(`'auto' (the default) picks node:sqlite on Node 24+ and better-sqlite3 on Node 20 (here ${process.version}: ${expectedAuto})`, async () => {
    for (const options of [{}, { backend: 'auto' as const }]) {
      const store = new SqliteStore({ path: freshPath('auto'), sweepIntervalMs: 0, ...options });
      try {
        expect(store.backend).toBe(expectedAuto);
        expect(store.stats().backend).toBe(expectedAuto);
      } finally {
        await store.close();
      }
    }
  });

  test(`node:sqlite is there exactly from Node 22 (here ${process.version}); where it is not, forcing it is a PersistConfigError naming the fix`, async () => {
    if (nodeMajor >= 22) {
      const store = new SqliteStore({ path: freshPath('forced-node-sqlite'), sweepIntervalMs: 0, backend: 'node:sqlite' });
      expect(store.backend).toBe('node:sqlite');
      await store.close();
      return;
    }
    // Node 20: a real check: require('node:sqlite') fails there.
    const error = thrownBy(() => new SqliteStore({ path: freshPath('forced-node-sqlite'), backend: 'node:sqlite' }));
    expect(error).toBeInstanceOf(PersistConfigError);
    expect(error.code).toBe('ERR_TLS_SESSION_PERSIST_CONFIG');
    // The parenthesis holds require's own error (Node's, or jest's resolver's here).
    expect(error.message).toMatch(
      new RegExp(
        `^SqliteStore backend 'node:sqlite' is not available on Node ${process.version.replace(/\./g, '\\.')}: ` +
          "node:sqlite is built into Node 22\\.13 and later \\(.*node:sqlite.*\\); use backend 'better-sqlite3' here$",
      ),
    );
  });

  test.each(SQLITE_BACKENDS)('forcing %s: used when it loads here, else a PersistConfigError saying what to do', async (backend) => {
    const path = freshPath(`forced-${backend}`);
    if (availableBackends.includes(backend)) {
      const store = new SqliteStore({ path, sweepIntervalMs: 0, backend });
      expect(store.backend).toBe(backend);
      expect(store.stats().backend).toBe(backend);
      await store.close();
      return;
    }
    const error = thrownBy(() => new SqliteStore({ path, backend }));
    expect(error).toBeInstanceOf(PersistConfigError);
    expect(error.code).toBe('ERR_TLS_SESSION_PERSIST_CONFIG');
    expect(error.message).toMatch(
      backend === 'node:sqlite'
        ? /^SqliteStore backend 'node:sqlite' is not available on Node v[\d.]+: node:sqlite is built into Node 22\.13 and later/
        : /^SqliteStore backend 'better-sqlite3' is not available on Node v[\d.]+: (it is not installed: npm install better-sqlite3|it is installed but failed to load \(.+\): npm rebuild better-sqlite3)$/,
    );
    // The cause: require's own error (from jest's realm here, so not instanceof this realm's Error).
    expect(isNativeError((error as { cause?: unknown }).cause)).toBe(true);
    expect(existsSync(path)).toBe(false); // nothing was opened
  });

  test('an unknown backend is ERR_INVALID_ARG_VALUE, naming the choices', () => {
    const error = thrownBy(() => new SqliteStore({ path: freshPath('unknown'), backend: 'sqlite3' as 'auto' }));
    expect(error.code).toBe('ERR_INVALID_ARG_VALUE');
    expect(error.message).toContain("'auto', 'node:sqlite' or 'better-sqlite3'");
  });
});

describe('better-sqlite3 not installed (a child process in which resolving it fails, as for a missing package)', () => {
  const preload = join(__dirname, 'fixtures', 'no-better-sqlite3.js');
  let result: {
    resolvable: string;
    auto: { backend?: string; error?: { code: string; message: string; persistConfigError: boolean } };
    forced: { backend?: string; error?: { code: string; message: string; persistConfigError: boolean } };
  };
  let stderr: string;

  beforeAll(() => {
    const path = join(scratch.dir, 'no-better-sqlite3.db');
    const child = inChild(
      `const lib = ${requireLib};
      let resolvable = 'yes';
      try { require.resolve('better-sqlite3'); } catch (e) { resolvable = e.code; }
      const attempt = (options) => {
        try {
          const store = new lib.SqliteStore({ path: ${JSON.stringify(path)}, sweepIntervalMs: 0, ...options });
          store.close();
          return { backend: store.backend };
        } catch (e) {
          return { error: { code: e.code, message: e.message, persistConfigError: e instanceof lib.PersistConfigError } };
        }
      };
      console.log(JSON.stringify({ resolvable, auto: attempt({}), forced: attempt({ backend: 'better-sqlite3' }) }));`,
      { NODE_OPTIONS: `--require ${preload}` },
    );
    expect(child.status).toBe(0);
    result = JSON.parse(child.out);
    stderr = child.err;
  });

  test('the child really cannot resolve better-sqlite3', () => {
    expect(result.resolvable).toBe('MODULE_NOT_FOUND');
  });

  test(`'auto' on ${process.version}: ${nodeMajor < 22 ? 'a PersistConfigError saying to npm install better-sqlite3' : 'node:sqlite'}`, () => {
    if (nodeMajor < 22) {
      expect(result.auto.error).toEqual({
        code: 'ERR_TLS_SESSION_PERSIST_CONFIG',
        message: `SqliteStore on Node v${nodeMajor}.x needs better-sqlite3: npm install better-sqlite3 (Node 24+ uses the built-in node:sqlite)`,
        persistConfigError: true,
      });
    } else {
      expect(result.auto).toEqual({ backend: 'node:sqlite' });
    }
    // Node 22 warns about its experimental node:sqlite; Node 24+ must not.
    if (nodeMajor === 22) expect(stderr).toMatch(/ExperimentalWarning: SQLite is an experimental feature/);
    else expect(stderr).toBe('');
  });

  test("forcing 'better-sqlite3': a PersistConfigError saying it is not installed and how to install it", () => {
    expect(result.forced.error).toEqual({
      code: 'ERR_TLS_SESSION_PERSIST_CONFIG',
      message: `SqliteStore backend 'better-sqlite3' is not available on Node ${process.version}: it is not installed: npm install better-sqlite3`,
      persistConfigError: true,
    });
  });
});

describe('loading (a fresh child process)', () => {
  let result: { before: Record<SqliteBackendName, boolean>; after: Record<SqliteBackendName, boolean>; backend: SqliteBackendName };
  let stderr: string;

  beforeAll(() => {
    const path = join(scratch.dir, 'lazy.db');
    const child = inChild(
      `const { sep } = require('node:path');
      const loaded = () => ({
        'better-sqlite3': Object.keys(require.cache).some((file) => file.includes(sep + 'node_modules' + sep + 'better-sqlite3' + sep)),
        'node:sqlite': process.moduleLoadList.includes('NativeModule sqlite'),
      });
      const lib = ${requireLib};
      const before = loaded();
      const store = new lib.SqliteStore({ path: ${JSON.stringify(path)}, sweepIntervalMs: 0 });
      console.log(JSON.stringify({ before, after: loaded(), backend: store.backend }));
      store.close();`,
    );
    expect(child.status).toBe(0);
    result = JSON.parse(child.out);
    stderr = child.err;
  });

  test('requiring the package loads neither better-sqlite3 nor node:sqlite; constructing a SqliteStore loads the one it uses', () => {
    expect(result.before).toEqual({ 'better-sqlite3': false, 'node:sqlite': false });
    expect(result.backend).toBe(expectedAuto);
    expect(result.after[result.backend]).toBe(true);
    // From Node 24 'auto' takes node:sqlite without touching better-sqlite3.
    if (nodeMajor >= 24) expect(result.after['better-sqlite3']).toBe(false);
  });

  (nodeMajor >= 24 ? test : test.skip)('Node 24+: constructing a SqliteStore prints nothing (no ExperimentalWarning)', () => {
    expect(result.backend).toBe('node:sqlite');
    expect(stderr).toBe('');
  });
});

describeEachBackend('SQLite backend adapter', (backend) => {
  const sqlite = () => loadSqliteBackend(backend);

  test('applies the busy timeout', () => {
    const db = sqlite().open(freshPath('busy-timeout'), { busyTimeoutMs: 1234 });
    try {
      expect(db.pragma('busy_timeout')).toBe(1234);
    } finally {
      db.close();
    }
  });

  test('fileMustExist: a missing file is SQLITE_CANTOPEN and is not created', () => {
    const path = freshPath('must-exist');
    const error = thrownBy(() => sqlite().open(path, { busyTimeoutMs: 0, fileMustExist: true }));
    expect(sqliteErrorCode(error)).toBe('SQLITE_CANTOPEN');
    expect(existsSync(path)).toBe(false);
    sqlite().open(path, { busyTimeoutMs: 0 }).close();
    expect(existsSync(path)).toBe(true);
  });

  test('returns BLOBs as Buffers, and integers as numbers', () => {
    const db = sqlite().open(freshPath('blobs'), { busyTimeoutMs: 0 });
    try {
      db.exec('CREATE TABLE t (k TEXT PRIMARY KEY, v BLOB, n INTEGER)');
      const value = Buffer.from([0, 1, 2, 255]);
      expect(db.prepare('INSERT INTO t VALUES (?, ?, ?)').run('a', value, 1_700_000_000_000)).toMatchObject({ changes: 1 });
      const row = db.prepare('SELECT v, n FROM t WHERE k = ?').get('a')!;
      expect(Buffer.isBuffer(row.v)).toBe(true);
      expect((row.v as Buffer).equals(value)).toBe(true);
      expect(row.n).toBe(1_700_000_000_000);
      const rows = db.prepare('SELECT v FROM t').all();
      expect(rows.every((r) => Buffer.isBuffer(r.v))).toBe(true);
      expect(db.prepare('SELECT v FROM t WHERE k = ?').get('absent')).toBeUndefined();
    } finally {
      db.close();
    }
  });

  test('errors carry one set of SQLite names: SQLITE_BUSY, SQLITE_NOTADB, SQLITE_ERROR', () => {
    const path = freshPath('errors');
    const holder = sqlite().open(path, { busyTimeoutMs: 0 });
    const waiter = sqlite().open(path, { busyTimeoutMs: 0 });
    try {
      holder.exec('CREATE TABLE t (k)');
      holder.exec('BEGIN IMMEDIATE');
      expect(sqliteErrorCode(thrownBy(() => waiter.exec("INSERT INTO t VALUES ('x')")))).toBe('SQLITE_BUSY');
      holder.exec('ROLLBACK');
      expect(sqliteErrorCode(thrownBy(() => waiter.prepare('SELECT * FROM no_such_table')))).toBe('SQLITE_ERROR');
    } finally {
      holder.close();
      waiter.close();
    }
    const garbage = freshPath('garbage');
    writeFileSync(garbage, randomBytes(8192));
    const error = thrownBy(() => {
      const db = sqlite().open(garbage, { busyTimeoutMs: 0 });
      try {
        db.pragma('journal_mode = WAL');
      } finally {
        db.close();
      }
    });
    expect(sqliteErrorCode(error)).toBe('SQLITE_NOTADB');
  });
});

describeEachBackend('SqliteStore locks and damage', (backend) => {
  test('a lock held by another connection: set and delete are dropped and counted, setIfAbsent says "locked", get still reads', async () => {
    const path = freshPath('locked');
    const store = new SqliteStore({ path, sweepIntervalMs: 0, backend });
    const other = openRaw(path, backend);
    let inTransaction = false;
    try {
      await store.set('kept', Buffer.from('before'), 60);
      other.exec('BEGIN IMMEDIATE');
      inTransaction = true;
      await expect(store.set('new', Buffer.from('x'), 60)).resolves.toBeUndefined();
      await expect(store.delete('kept')).resolves.toBeUndefined();
      expect((await store.get('kept'))!.toString()).toBe('before');
      await expect(store.setIfAbsent('ticket', Buffer.from('t'), 60)).rejects.toMatchObject({ code: 'ERR_TLS_SESSION_STORE_BUSY' });
      await expect(store.sweep()).rejects.toMatchObject({ code: 'ERR_TLS_SESSION_STORE_BUSY' });
      expect(store.stats()).toMatchObject({ backend, busyDropped: 2, busyMisses: 0 });
      other.exec('COMMIT');
      inTransaction = false;
      await store.set('new', Buffer.from('x'), 60);
      expect((await store.get('new'))!.toString()).toBe('x');
    } finally {
      if (inTransaction) other.exec('ROLLBACK');
      other.close();
      await store.close();
    }
  });

  test('a file overwritten with garbage under a live store is noticed and recreated (mode 0600)', async () => {
    const path = freshPath('garbage-live');
    const store = new SqliteStore({ path, sweepIntervalMs: 0, backend });
    try {
      await store.set('old', Buffer.from('old'), 60);
      writeFileSync(path, randomBytes(Math.max(statSync(path).size, 4096)));
      writeFileSync(`${path}-wal`, randomBytes(Math.max(statSync(`${path}-wal`).size, 4096)));
      for (let i = 0; i < 25; i += 1) {
        await store.set(`new-${i}`, Buffer.from('new'), 60);
        await sleep(50);
      }
      await store.set('after', Buffer.from('after'), 60);
      expect(store.stats()).toMatchObject({ recreated: 1, busyMisses: 0, busyDropped: 0 });
    } finally {
      await store.close();
    }
    const fresh = new SqliteStore({ path, sweepIntervalMs: 0, backend });
    try {
      expect((await fresh.get('after'))!.toString()).toBe('after');
      expect(await fresh.get('old')).toBeUndefined();
      expect(statSync(path).mode & 0o777).toBe(0o600);
    } finally {
      await fresh.close();
    }
  });

  test('a path that holds something else than a database is a PersistConfigError, and the file is left alone', () => {
    const path = freshPath('not-a-database');
    const content = randomBytes(8192);
    writeFileSync(path, content);
    const error = thrownBy(() => new SqliteStore({ path, sweepIntervalMs: 0, backend }));
    expect(error).toBeInstanceOf(PersistConfigError);
    expect(error.message).toMatch(/file is not a database/);
    expect(readFileSync(path).equals(content)).toBe(true);
  });
});

describe('one file, both backends', () => {
  const both = availableBackends.length === SQLITE_BACKENDS.length;
  const bothTest = both ? test : test.skip;
  const pairs: Array<[SqliteBackendName, SqliteBackendName]> = [
    ['better-sqlite3', 'node:sqlite'],
    ['node:sqlite', 'better-sqlite3'],
  ];

  // One backend after the other: two SQLite libraries in one process must not have one file open
  // at once (neither sees the other's POSIX locks; closing one drops the other's).
  bothTest.each(pairs)('written by %s, then read, written and swept by %s (same schema, same column types)', async (writer, reader) => {
    const path = freshPath(`cross-${writer}`);
    // One clock for both: 'short' expires when it moves, not after a real second.
    const clock = manualClock();
    const first = new SqliteStore({ path, sweepIntervalMs: 0, backend: writer, now: clock.now });
    const value = randomBytes(300);
    await first.set('session', value, 60);
    await first.set('short', Buffer.from('x'), 1);
    expect(await first.setIfAbsent('ticket', Buffer.from('first'), 60)).toBe(true);
    await first.close();

    const second = new SqliteStore({ path, sweepIntervalMs: 0, backend: reader, now: clock.now });
    try {
      expect(second.backend).toBe(reader);
      expect((await second.get('session'))!.equals(value)).toBe(true);
      expect(await second.setIfAbsent('ticket', Buffer.from('second'), 60)).toBe(false);
      await second.set('from-reader', Buffer.from('r'), 60);
      clock.advance(1100);
      expect(await second.sweep()).toBe(1); // 'short', written by the other backend
    } finally {
      await second.close();
    }

    const raw = openRaw(path, writer);
    try {
      expect(raw.pragma('journal_mode')).toBe('wal');
      const schema = raw.prepare('SELECT type, name, sql FROM sqlite_master ORDER BY name').all();
      expect(schema.map(({ type, name }) => `${type} ${name}`)).toEqual(['table tls_sessions', 'index tls_sessions_expires_at']);
      expect(schema[0]!.sql).toMatch(/key TEXT PRIMARY KEY,\s+value BLOB NOT NULL,\s+expires_at INTEGER NOT NULL\s+\) WITHOUT ROWID$/);
      const types = raw.prepare('SELECT key, typeof(value) AS v, typeof(expires_at) AS e FROM tls_sessions ORDER BY key').all();
      expect(types).toEqual([
        { key: 'from-reader', v: 'blob', e: 'integer' },
        { key: 'session', v: 'blob', e: 'integer' },
        { key: 'ticket', v: 'blob', e: 'integer' },
      ]);
      expect((raw.prepare("SELECT value FROM tls_sessions WHERE key = 'from-reader'").get()!.value as Buffer).toString()).toBe('r');
    } finally {
      raw.close();
    }
  });

  bothTest.each(pairs)('open at once: this process on %s, another process on %s, see each other', async (here, there) => {
    const path = freshPath(`shared-${here}`);
    const store = new SqliteStore({ path, sweepIntervalMs: 0, backend: here });
    try {
      await store.set('from-parent', Buffer.from(`parent on ${here}`), 60);
      const child = inChild(
        `const lib = ${requireLib};
        (async () => {
          const store = new lib.SqliteStore({ path: ${JSON.stringify(path)}, sweepIntervalMs: 0, backend: ${JSON.stringify(there)} });
          const seen = await store.get('from-parent');
          await store.set('from-child', Buffer.from('child on ' + store.backend), 60);
          await store.close();
          console.log(JSON.stringify({ seen: seen ? seen.toString() : null, backend: store.backend }));
        })();`,
      );
      if (nodeMajor === 22 && there === 'node:sqlite') expect(child.err).toMatch(/ExperimentalWarning/);
      else expect(child.err).toBe('');
      expect(JSON.parse(child.out)).toEqual({ seen: `parent on ${here}`, backend: there });
      expect((await store.get('from-child'))!.toString()).toBe(`child on ${there}`);
    } finally {
      await store.close();
    }
  });
});

describe('sqliteErrorCode: one mapping for both backends', () => {
  const nodeSqliteError = (errcode: number) => Object.assign(new Error('x'), { code: 'ERR_SQLITE_ERROR', errcode, errstr: 'x' });

  test("node:sqlite's numeric (extended) result codes", () => {
    expect(sqliteErrorCode(nodeSqliteError(5))).toBe('SQLITE_BUSY');
    expect(sqliteErrorCode(nodeSqliteError(517))).toBe('SQLITE_BUSY_SNAPSHOT');
    expect(sqliteErrorCode(nodeSqliteError(26))).toBe('SQLITE_NOTADB');
    expect(sqliteErrorCode(nodeSqliteError(779))).toBe('SQLITE_CORRUPT_INDEX');
    expect(sqliteErrorCode(nodeSqliteError(522))).toBe('SQLITE_IOERR_SHORT_READ');
    expect(sqliteErrorCode(nodeSqliteError(1032))).toBe('SQLITE_READONLY_DBMOVED');
    // An extended code the store does not tell apart: its primary name.
    expect(sqliteErrorCode(nodeSqliteError(1555))).toBe('SQLITE_CONSTRAINT');
  });

  test("better-sqlite3's names pass through; its names for codes it does not know are mapped", () => {
    expect(sqliteErrorCode(Object.assign(new Error('x'), { code: 'SQLITE_BUSY_SNAPSHOT' }))).toBe('SQLITE_BUSY_SNAPSHOT');
    expect(sqliteErrorCode(Object.assign(new Error('x'), { code: 'UNKNOWN_SQLITE_ERROR_773' }))).toBe('SQLITE_BUSY_TIMEOUT');
  });

  test('other errors keep their own code', () => {
    expect(sqliteErrorCode(Object.assign(new Error('x'), { code: 'ERR_TLS_SESSION_STORE_BUSY' }))).toBe('ERR_TLS_SESSION_STORE_BUSY');
    expect(sqliteErrorCode(new Error('no code'))).toBe('');
    expect(sqliteErrorCode(undefined)).toBe('');
  });
});
