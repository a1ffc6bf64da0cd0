/**
 * The SessionStore contract, run against all three real stores (MemoryStore, SqliteStore on a
 * temporary file, RedisStore on a redis-server spawned for this file), plus each store's own
 * guarantees (bounds, file mode, WAL, sweep, key prefix and SET … EX).
 */
import { statSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { MemoryStore } from '../../lib/persist/memory-store';
import { RedisStore } from '../../lib/persist/redis-store';
import { SqliteStore } from '../../lib/persist/sqlite-store';
import type { SessionStore } from '../../lib/persist/store';
import { RedisServer, startRedis } from './helpers/redis-server';

let redis: RedisServer;
let dir: string;
const opened: SessionStore[] = [];

beforeAll(async () => {
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), 'tls-session-stores-'));
});

afterAll(async () => {
  for (const store of opened) await store.close();
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
let fileCounter = 0;

const factories: Array<[string, () => Promise<SessionStore>]> = [
  ['MemoryStore', async () => new MemoryStore()],
  ['SqliteStore', async () => new SqliteStore({ path: join(dir, `contract-${fileCounter++}.db`) })],
  ['RedisStore', async () => {
    const store = new RedisStore({ url: redis.url, keyPrefix: `contract-${fileCounter++}:`, budgetMs: 10_000 });
    await store.ready();
    return store;
  }],
];

describe.each(factories)('%s contract', (_name, make) => {
  let store: SessionStore;
  beforeEach(async () => {
    store = await make();
    opened.push(store);
  });

  test('get/set/delete round trip with binary values', async () => {
    const value = Buffer.from([0, 1, 2, 255, 0, 128]);
    expect(await store.get('k')).toBeUndefined();
    await store.set('k', value, 60);
    expect(await store.get('k')).toEqual(value);
    await store.set('k', Buffer.from('replaced'), 60);
    expect((await store.get('k'))!.toString()).toBe('replaced');
    await store.delete('k');
    expect(await store.get('k')).toBeUndefined();
    await store.delete('never-there');
  });

  test('entries expire after their TTL', async () => {
    await store.set('short', Buffer.from('x'), 1);
    await store.set('long', Buffer.from('y'), 60);
    await sleep(2100);
    expect(await store.get('short')).toBeUndefined();
    expect((await store.get('long'))!.toString()).toBe('y');
  });

  test('setIfAbsent writes once', async () => {
    expect(await store.setIfAbsent!('once', Buffer.from('first'), 60)).toBe(true);
    expect(await store.setIfAbsent!('once', Buffer.from('second'), 60)).toBe(false);
    expect((await store.get('once'))!.toString()).toBe('first');
  });

  test('bad arguments are typed errors', async () => {
    await expect(store.get(42 as unknown as string)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(store.get('')).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    await expect(store.set('k', 'text' as unknown as Buffer, 60)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(store.set('k', Buffer.from('v'), 0)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    await expect(store.set('k', Buffer.from('v'), 1.5)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
  });

  test('calls after close reject with ERR_TLS_SESSION_STORE_CLOSED', async () => {
    await store.close();
    await expect(store.get('k')).rejects.toMatchObject({ code: 'ERR_TLS_SESSION_STORE_CLOSED' });
  });
});

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
  });
});

describe('SqliteStore', () => {
  test('creates the file with mode 0600, uses WAL and an expiry index, and persists across reopen', async () => {
    const path = join(dir, 'private.db');
    const store = new SqliteStore({ path });
    await store.set('persisted', Buffer.from('value'), 60);
    // While open, WAL mode has the -wal and -shm files; SQLite gives them the database's mode.
    for (const file of [path, `${path}-wal`, `${path}-shm`]) expect(statSync(file).mode & 0o777).toBe(0o600);
    await store.close();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const raw = new Database(path, { readonly: true });
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    const indexes = raw.prepare("SELECT name FROM sqlite_master WHERE type = 'index'").all() as Array<{ name: string }>;
    expect(indexes.map((i) => i.name)).toContain('tls_sessions_expires_at');
    raw.close();
    const reopened = new SqliteStore({ path });
    expect((await reopened.get('persisted'))!.toString()).toBe('value');
    await reopened.close();
  });

  test('the periodic sweep deletes expired rows', async () => {
    const path = join(dir, 'sweep.db');
    const store = new SqliteStore({ path, sweepIntervalMs: 200 });
    await store.set('gone', Buffer.from('x'), 1);
    await store.set('kept', Buffer.from('y'), 60);
    await sleep(2500);
    const raw = new Database(path, { readonly: true });
    const keys = (raw.prepare('SELECT key FROM tls_sessions').all() as Array<{ key: string }>).map((r) => r.key);
    raw.close();
    await store.close();
    expect(keys).toEqual(['kept']);
  });

  test('bad options are typed errors naming the problem', () => {
    expect(() => new SqliteStore({} as { path: string })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => new SqliteStore({ path: join(dir, 'no', 'such', 'dir.db') }))
      .toThrow(expect.objectContaining({ code: 'ERR_TLS_SESSION_PERSIST_CONFIG' }));
  });
});

describe('RedisStore', () => {
  test('uses the key prefix and SET … EX', async () => {
    const store = new RedisStore({ url: redis.url, keyPrefix: 'prefix-test:', budgetMs: 10_000 });
    await store.ready();
    await store.set('abc', Buffer.from('v'), 120);
    const raw = new Redis(redis.url);
    try {
      expect(await raw.get('prefix-test:abc')).toBe('v');
      const ttl = await raw.ttl('prefix-test:abc');
      expect(ttl).toBeGreaterThan(60);
      expect(ttl).toBeLessThanOrEqual(120);
    } finally {
      raw.disconnect();
      await store.close();
    }
  });

  test('accepts a caller-owned client and leaves it open on close', async () => {
    const client = new Redis(redis.url);
    const store = new RedisStore({ client, budgetMs: 10_000 });
    await store.set('owned', Buffer.from('1'), 60);
    await store.close();
    expect(await client.get('tls-session:owned')).toBe('1');
    client.disconnect();
  });

  test('never shows the URL password in inspect or JSON', async () => {
    const store = new RedisStore({ url: `redis://:hunter2-secret@127.0.0.1:${redis.port}`, budgetMs: 10_000 });
    try {
      const shown = inspect(store, { showHidden: true, depth: 5 }) + JSON.stringify(store);
      expect(shown).not.toContain('hunter2-secret');
    } finally {
      await store.close();
    }
  });

  test('needs a url or a client', () => {
    expect(() => new RedisStore({} as { url: string })).toThrow(expect.objectContaining({ code: 'ERR_TLS_SESSION_PERSIST_CONFIG' }));
  });
});
