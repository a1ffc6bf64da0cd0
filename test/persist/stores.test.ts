/**
 * The SessionStore contract against MemoryStore and SqliteStore (a temporary file, once per
 * SQLite backend that loads in this Node), plus each store's own guarantees (bounds, file mode,
 * WAL, sweep). RedisStore: stores.redis.test.ts (the Redis lane, `npm run test:redis`). What is
 * particular to the backends (selection, errors, lazy loading, one file read by both):
 * sqlite-backends.test.ts.
 */
import { existsSync, statSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryStore } from '../../lib/persist/stores/memory';
import { SqliteStore, SqliteStoreOptions } from '../../lib/persist/stores/sqlite';
import { openSqliteStoreFile } from '../../lib/persist/stores/sqlite-file-reader';
import type { SessionStore } from '../../lib/persist/stores/contract';
import { describeStoreContract } from './helpers/store-contract';
import { manualClock } from './helpers/clock';
import { describeEachBackend, openRaw } from './helpers/sqlite-backends';

let dir: string;
const opened: SessionStore[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tls-session-stores-'));
});

afterAll(async () => {
  for (const store of opened) await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
let fileCounter = 0;

/** Polls `check` every 10 ms until it holds; false if it still does not after `timeoutMs`. */
async function eventually(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(10);
  }
}

async function keysOf(store: { entries(): AsyncGenerator<{ key: string }> }): Promise<string[]> {
  const keys: string[] = [];
  for await (const entry of store.entries()) keys.push(entry.key);
  return keys;
}

const memoryClock = manualClock();
describeStoreContract('MemoryStore', async () => new MemoryStore({ now: memoryClock.now }), opened, memoryClock);

describe('MemoryStore bounds', () => {
  test('evicts the least recently used entry beyond maxEntries', async () => {
    const store = new MemoryStore({ maxEntries: 2 });
    await store.set('a', Buffer.from('1'), 60);
    await store.set('b', Buffer.from('2'), 60);
    await store.get('a');
    await store.set('c', Buffer.from('3'), 60);
    expect(await store.get('b')).toBeUndefined();
    expect(await store.get('a')).toBeDefined();
    expect(store.size).toBe(2);
  });

  test('keeps keys + values under maxBytes', async () => {
    const store = new MemoryStore({ maxBytes: 1000 });
    for (let i = 0; i < 20; i++) await store.set(`key-${i}`, Buffer.alloc(100), 60);
    expect(store.bytes).toBeLessThanOrEqual(1000);
    expect(await store.get('key-19')).toBeDefined();
    expect(await store.get('key-0')).toBeUndefined();
  });

  test('invalid bounds are typed errors', () => {
    expect(() => new MemoryStore({ maxEntries: 0 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => new MemoryStore({ maxBytes: -1 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => new MemoryStore({ now: 'now' as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });
});

describeEachBackend('SqliteStore', (backend) => {
  const contractClock = manualClock();
  describeStoreContract(
    'SqliteStore',
    async () => new SqliteStore({ path: join(dir, `contract-${fileCounter++}.db`), backend, now: contractClock.now }),
    opened,
    contractClock,
  );

  test('creates the file with mode 0600, uses WAL and an expiry index, and persists across reopen', async () => {
    const path = join(dir, `private-${backend}.db`);
    const store = new SqliteStore({ path, backend });
    await store.set('persisted', Buffer.from('value'), 60);
    // While open, WAL mode has the -wal and -shm files; SQLite gives them the database's mode.
    for (const file of [path, `${path}-wal`, `${path}-shm`]) expect(statSync(file).mode & 0o777).toBe(0o600);
    await store.close();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const raw = openRaw(path, backend);
    expect(raw.pragma('journal_mode')).toBe('wal');
    const indexes = raw.prepare("SELECT name FROM sqlite_master WHERE type = 'index'").all() as Array<{ name: string }>;
    expect(indexes.map((i) => i.name)).toContain('tls_sessions_expires_at');
    raw.close();
    const reopened = new SqliteStore({ path, backend });
    expect((await reopened.get('persisted'))!.toString()).toBe('value');
    await reopened.close();
  });

  test('the periodic sweep deletes expired rows', async () => {
    const path = join(dir, `sweep-${backend}.db`);
    const clock = manualClock();
    const store = new SqliteStore({ path, sweepIntervalMs: 20, backend, now: clock.now });
    // TTLs far longer than the test runs: only the injected clock can expire 'gone'.
    await store.set('gone', Buffer.from('x'), 60);
    await store.set('kept', Buffer.from('y'), 3600);
    await sleep(70); // a few sweeps: nothing expired yet
    expect(await keysOf(store)).toEqual(['gone', 'kept']);
    clock.advance(61_000);
    // The next tick deletes 'gone' (polled: the timer is unref'd and ticks every 20 ms).
    expect(await eventually(async () => (await keysOf(store)).length === 1, 5000)).toBe(true);
    const raw = openRaw(path, backend);
    const keys = (raw.prepare('SELECT key FROM tls_sessions').all() as Array<{ key: string }>).map((r) => r.key);
    raw.close();
    await store.close();
    expect(keys).toEqual(['kept']);
  });

  test('expiry runs on the injected clock: set, get, take, setIfAbsent, sweep(), entries and the file reader', async () => {
    const path = join(dir, `clock-${backend}.db`);
    const clock = manualClock(Date.UTC(2030, 0, 1));
    const store = new SqliteStore({ path, sweepIntervalMs: 0, backend, now: clock.now });
    try {
      await store.set('session', Buffer.from('s'), 60);
      await store.set('ticket', Buffer.from('t'), 60);
      expect(await store.setIfAbsent('lock', Buffer.from('first'), 60)).toBe(true);
      await store.set('kept', Buffer.from('k'), 3600);
      const expiresAt = new Map<string, number>();
      for await (const entry of store.entries()) expiresAt.set(entry.key, entry.expiresAt!.getTime());
      expect(expiresAt.get('session')).toBe(Date.UTC(2030, 0, 1) + 60_000);
      clock.advance(59_999);
      expect((await store.get('session'))!.toString()).toBe('s');
      expect(await store.setIfAbsent('lock', Buffer.from('second'), 60)).toBe(false);
      clock.advance(1);
      expect(await store.get('session')).toBeUndefined();
      expect(await store.take('ticket')).toBeUndefined();
      // An expired row counts as absent: setIfAbsent replaces it.
      expect(await store.setIfAbsent('lock', Buffer.from('second'), 60)).toBe(true);
      expect((await store.get('lock'))!.toString()).toBe('second');
      expect(await store.sweep()).toBe(1); // 'session' ('ticket' went with take)
      expect(await keysOf(store)).toEqual(['kept', 'lock']);
    } finally {
      await store.close();
    }
    // The read-only reader's sweep takes a clock too: by the real one nothing has expired.
    const file = openSqliteStoreFile(path, { backend, now: () => Date.UTC(2030, 0, 1) + 1_800_000 });
    try {
      expect(await file.sweep()).toBe(1); // 'lock' (written at +60 s, for 60 s)
      expect(await keysOf(file)).toEqual(['kept']);
    } finally {
      await file.close();
    }
  });

  test('bad options are typed errors naming the problem', () => {
    expect(() => new SqliteStore({ backend } as unknown as SqliteStoreOptions)).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }),
    );
    expect(() => new SqliteStore({ path: join(dir, 'no', 'such', 'dir.db'), backend })).toThrow(
      expect.objectContaining({ code: 'ERR_TLS_SESSION_PERSIST_CONFIG' }),
    );
    const notCreated = join(dir, `bad-clock-${backend}.db`);
    expect(() => new SqliteStore({ path: notCreated, backend, now: Date.now() as never })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('"options.now"') }),
    );
    expect(existsSync(notCreated)).toBe(false);
  });
});
