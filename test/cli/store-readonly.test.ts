/**
 * `tls-session store ls|stats|verify --sqlite` only read: they never change the file (bytes,
 * mode, no -wal/-shm appearing, no table added, no WAL switch, no recovery that recreates a
 * damaged file). A damaged file, another application's database and a newer schema are clear
 * errors (exit 1, naming the file and the problem); a 0444 copy of a store in a read-only
 * directory lists its records. Only purge and verify --delete-bad write.
 */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeSync,
  closeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSqliteBackend } from '../../lib/persist/stores/sqlite-backends';
import { SqliteStore } from '../../lib/persist/stores/sqlite';
import { root, runCli, type CliResult } from './cli';

const dir = mkdtempSync(join(tmpdir(), 'tls-session-cli-store-readonly-'));
const ROWS = 1500;
const PAGE_SIZE = 4096;
/** A store of ROWS records, closed (no -wal): the fixture every test copies. */
const storePath = join(dir, 'store.db');

beforeAll(async () => {
  // Reachable by the unprivileged user the read-only-directory test runs the command as.
  chmodSync(dir, 0o755);
  const store = new SqliteStore({ path: storePath, sweepIntervalMs: 0 });
  for (let i = 0; i < ROWS; i += 1) await store.set(`session:${i.toString(16).padStart(4, '0')}`, Buffer.alloc(200, i), 3600);
  await store.close();
});
afterAll(() => {
  chmodSync(join(dir, 'ro'), 0o755);
  rmSync(dir, { recursive: true, force: true });
});

let counter = 0;
function copyOfStore(name: string): string {
  const path = join(dir, `${name}-${counter++}.db`);
  copyFileSync(storePath, path);
  return path;
}

/** Everything a reading command must leave as it found it. */
function fileState(path: string): { bytes: string; mode: number; sideFiles: string[] } {
  return {
    bytes: readFileSync(path).toString('base64'),
    mode: statSync(path).mode & 0o777,
    sideFiles: ['-wal', '-shm', '-journal', '.recovery-lock'].filter((suffix) => existsSync(`${path}${suffix}`)),
  };
}

function rowCount(path: string): number {
  const db = loadSqliteBackend('auto').open(path, { busyTimeoutMs: 1000, fileMustExist: true });
  try {
    return Number(db.prepare('SELECT count(*) AS n FROM tls_sessions').get()!.n);
  } finally {
    db.close();
  }
}

const registerTs = join(root, 'test', 'persist', 'fixtures', 'register-ts.js');

/**
 * Run as an unprivileged user when the tests run as root (root ignores file modes), if that user
 * can run this Node and read the sources (not so for a Node under root's 0700 home): else as is.
 */
const unprivileged = ((): { uid?: number; gid?: number } => {
  if (process.getuid?.() !== 0) return {};
  const nobody = { uid: 65534, gid: 65534 };
  const probe = spawnSync(process.execPath, ['-r', registerTs, '-e', '0'], { cwd: root, timeout: 30_000, ...nobody });
  return probe.status === 0 ? nobody : {};
})();

function runCliUnprivileged(args: string[]): CliResult {
  const result = spawnSync(process.execPath, ['-r', registerTs, join(root, 'lib', 'cli', 'main.ts'), ...args], {
    cwd: root,
    timeout: 60_000,
    ...unprivileged,
  });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, out: result.stdout.toString('utf8'), err: result.stderr.toString('utf8') };
}

test('a store with one damaged page: ls, stats, verify and purge fail naming the file and the damage, and leave every byte (1,500 rows)', () => {
  const path = copyOfStore('damaged');
  const pages = statSync(path).size / PAGE_SIZE;
  // A page in the middle of the table: overwritten with garbage.
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.alloc(PAGE_SIZE, 0x5a), 0, PAGE_SIZE, Math.floor(pages / 2) * PAGE_SIZE);
  closeSync(fd);
  const before = fileState(path);
  for (const command of ['verify', 'ls', 'stats', 'purge']) {
    const result = runCli(['store', command, '--sqlite', path]);
    expect([command, result.status]).toEqual([command, 1]);
    expect(result.err).toMatch(
      new RegExp(`^tls-session: SQLite session store ${path.replace(/[.]/g, '\\.')} is damaged .*; the file was left as it is\\n$`),
    );
    expect(result.out).toBe('');
    expect(fileState(path)).toEqual(before);
  }
  // Still all there for someone to rescue.
  const rescued = join(dir, 'rescued.db');
  copyFileSync(path, rescued);
  expect(readFileSync(rescued).length).toBe(pages * PAGE_SIZE);
});

test("another application's SQLite file: ls, stats and verify say it is not a tls-session store and change nothing", () => {
  const path = join(dir, 'foreign.db');
  const db = loadSqliteBackend('auto').open(path, { busyTimeoutMs: 1000 });
  db.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users (name) VALUES ('ann'); PRAGMA user_version = 7;");
  db.close();
  chmodSync(path, 0o644);
  const before = fileState(path);
  expect(before.sideFiles).toEqual([]);
  for (const command of ['ls', 'stats', 'verify']) {
    const result = runCli(['store', command, '--sqlite', path]);
    expect([command, result.status]).toEqual([command, 1]);
    expect(result.err).toContain(`tls-session: SQLite file ${path} is not a tls-session store: it has no tls_sessions table`);
    expect(fileState(path)).toEqual(before);
  }
});

test('a 0444 copy of a store in a read-only directory: ls, stats and verify list its records and create nothing', () => {
  const roDir = join(dir, 'ro');
  mkdirSync(roDir);
  const path = join(roDir, 'store.db');
  copyFileSync(storePath, path);
  chmodSync(path, 0o444);
  chmodSync(roDir, 0o555);
  const before = fileState(path);
  const ls = runCliUnprivileged(['store', 'ls', '--sqlite', path, '--json']);
  expect([ls.status, ls.err]).toEqual([0, '']);
  const listed = JSON.parse(ls.out) as Array<{ key: string }>;
  expect(listed).toHaveLength(ROWS);
  expect(listed[0]!.key).toBe('session:0000');
  const stats = runCliUnprivileged(['store', 'stats', '--sqlite', path, '--json']);
  expect([stats.status, stats.err, JSON.parse(stats.out).records]).toEqual([0, '', ROWS]);
  const verify = runCliUnprivileged(['store', 'verify', '--sqlite', path, '--json']);
  expect(verify.err).toBe('');
  expect(JSON.parse(verify.out)).toMatchObject({ checked: ROWS, deleted: 0 });
  expect(fileState(path)).toEqual(before);
});

test("a live store (its -wal open in this process) is read through SQLite's locks: the records still in the -wal are listed", async () => {
  const path = copyOfStore('live');
  const store = new SqliteStore({ path, sweepIntervalMs: 0 });
  try {
    await store.set('session:live', Buffer.from('TS'), 3600);
    expect(existsSync(`${path}-wal`)).toBe(true);
    const bytes = readFileSync(path);
    const ls = runCli(['store', 'ls', '--sqlite', path, '--json']);
    expect([ls.status, ls.err]).toEqual([0, '']);
    expect((JSON.parse(ls.out) as Array<{ key: string }>).map((r) => r.key)).toContain('session:live');
    expect(readFileSync(path).equals(bytes)).toBe(true);
  } finally {
    await store.close();
  }
});

test('a newer schema version: the command names the file and both versions, exits 1 and writes nothing; an old (version 0) file is read as it is', () => {
  const newer = copyOfStore('newer');
  const db = loadSqliteBackend('auto').open(newer, { busyTimeoutMs: 1000, fileMustExist: true });
  db.exec('PRAGMA user_version = 9');
  db.close();
  const before = fileState(newer);
  const result = runCli(['store', 'stats', '--sqlite', newer]);
  expect(result.status).toBe(1);
  expect(result.err).toContain(
    `SQLite session store ${newer} has schema version 9 (PRAGMA user_version), newer than this tls-session supports (0 to 1)`,
  );
  expect(fileState(newer)).toEqual(before);

  const old = copyOfStore('old');
  const raw = loadSqliteBackend('auto').open(old, { busyTimeoutMs: 1000, fileMustExist: true });
  raw.exec('PRAGMA user_version = 0');
  raw.close();
  const oldBefore = fileState(old);
  const stats = runCli(['store', 'stats', '--sqlite', old, '--json']);
  expect([stats.status, stats.err, JSON.parse(stats.out).records]).toEqual([0, '', ROWS]);
  expect(fileState(old)).toEqual(oldBefore);
});

test('purge writes (deletes expired rows) without chmod, a new table or a migration', async () => {
  const path = copyOfStore('purge');
  // Expired by the real clock the command runs on: written by a clock an hour behind, for a minute.
  const store = new SqliteStore({ path, sweepIntervalMs: 0, now: () => Date.now() - 3_600_000 });
  await store.set('session:gone', Buffer.from('TS'), 60);
  await store.close();
  chmodSync(path, 0o640);
  const purged = runCli(['store', 'purge', '--sqlite', path]);
  expect([purged.status, purged.err, purged.out]).toEqual([0, '', `purged 1 expired record(s) from sqlite ${path}\n`]);
  expect(statSync(path).mode & 0o777).toBe(0o640);
  expect(rowCount(path)).toBe(ROWS);
});
