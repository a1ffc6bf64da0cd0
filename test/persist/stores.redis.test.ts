/**
 * The SessionStore contract against RedisStore on a redis-server spawned for this file, and
 * RedisStore's own guarantees (key prefix, SET … EX, caller-owned clients, secrets). The Redis
 * lane: `npm run test:redis` (needs redis-server).
 */
import { inspect } from 'node:util';
import { Redis } from 'ioredis';
import { RedisStore } from '../../lib/persist/stores/redis';
import type { SessionStore } from '../../lib/persist/stores/contract';
import { RedisServer, startRedis } from './helpers/redis-server';
import { describeStoreContract } from './helpers/store-contract';

let redis: RedisServer;
const opened: SessionStore[] = [];
let keyCounter = 0;

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  for (const store of opened) await store.close();
  await redis.stop();
});

describeStoreContract(
  'RedisStore',
  async () => {
    const store = new RedisStore({ url: redis.url, keyPrefix: `contract-${keyCounter++}:`, budgetMs: 10_000 });
    await store.ready();
    return store;
  },
  opened,
);

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
    expect(() => new RedisStore({} as { url: string })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
  });
});
