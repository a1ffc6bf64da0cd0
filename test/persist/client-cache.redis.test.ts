/**
 * ClientSessionCache over a real redis-server: clients that share a Redis resume each other's
 * sessions; a stopped (SIGSTOP), killed or never-reachable Redis costs a connection at most the
 * cache's budget, then a full handshake; nothing is thrown into the connection or left unhandled.
 */
import { once } from 'node:events';
import * as tls from 'node:tls';
import { ClientSessionCache, RedisStore } from '../../lib';
import { freePort } from '../helpers/free-port';
import { startNodeTlsServer, TLS_VARIANTS, type NodeTlsServer } from '../helpers/node-tls-server';
import { makePki, type Pki } from '../helpers/pki';
import { startRedis, type RedisServer } from './helpers/redis-server';

let pki: Pki;
let redis: RedisServer;
let server: NodeTlsServer;
beforeAll(async () => {
  pki = makePki();
  redis = await startRedis();
  server = await startNodeTlsServer(pki, TLS_VARIANTS[2]!);
});
afterAll(async () => {
  await server.close();
  await redis.stop();
});

async function visit(cache: ClientSessionCache, options: tls.ConnectionOptions = {}): Promise<boolean> {
  const socket = await cache.connect({ host: '127.0.0.1', port: server.port, servername: 'localhost', ca: pki.ca, ...options });
  const reused = socket.isSessionReused();
  socket.resume();
  await once(socket, 'close');
  await cache.flush();
  return reused;
}

describe.each(TLS_VARIANTS)('clients sharing one Redis, $name', (v) => {
  test('a second client (its own connection to Redis) resumes the first one’s session', async () => {
    const peer = await startNodeTlsServer(pki, v);
    const stores = [new RedisStore({ url: redis.url }), new RedisStore({ url: redis.url })];
    try {
      const [first, second] = stores.map((store) => new ClientSessionCache({ store, secret: Buffer.alloc(32, 7) }));
      expect(await visit(first!, { port: peer.port })).toBe(false);
      expect(await visit(second!, { port: peer.port })).toBe(true);
      expect(peer.reused).toEqual([false, true]);
      expect(second!.stats()).toMatchObject({ offered: 1, resumed: 1, errors: 0 });
    } finally {
      for (const store of stores) await store.close();
      await peer.close();
    }
  });
});

describe('a Redis that does not answer costs at most the budget', () => {
  // RedisStore's own command budget is set far above the cache's: what bounds the wait is the cache.
  const storeOptions = { budgetMs: 10_000, startupBudgetMs: 10_000 };

  test('stopped (SIGSTOP): full handshake after ~budgetMs; resumes again once Redis continues', async () => {
    const store = new RedisStore({ url: redis.url, ...storeOptions });
    const errors: Error[] = [];
    const cache = new ClientSessionCache({ store, secret: Buffer.alloc(32, 7), budgetMs: 50, onError: (error) => errors.push(error) });
    try {
      expect(await visit(cache)).toBe(false);
      process.kill(redis.pid, 'SIGSTOP');
      try {
        expect(await visit(cache, {})).toBe(false);
        const { latencyMs, errors: counted } = cache.stats();
        expect(counted).toBeGreaterThanOrEqual(1);
        expect(errors.map((error) => (error as Error & { code?: string }).code)).toContain('ERR_TLS_SESSION_STORE_TIMEOUT');
        // A generous bound for a loaded machine; without the cache's budget this waits 10 s.
        expect(latencyMs.lookup.max).toBeLessThan(1000);
      } finally {
        process.kill(redis.pid, 'SIGCONT');
      }
      // Sessions from before and during the stop may be gone (taken by the lookup that gave up);
      // the next full handshake stores again and the one after resumes.
      await visit(cache);
      expect(await visit(cache)).toBe(true);
    } finally {
      await cache.close();
      await store.close();
    }
  });

  test('nothing listening from the start: every connection goes ahead within the budget, no unhandled rejection', async () => {
    const port = await freePort();
    const store = new RedisStore({ url: `redis://127.0.0.1:${port}`, ...storeOptions });
    const cache = new ClientSessionCache({ store, secret: Buffer.alloc(32, 7), budgetMs: 50, onError: () => {} });
    try {
      expect(await visit(cache)).toBe(false);
      expect(await visit(cache)).toBe(false);
      const stats = cache.stats();
      expect(stats).toMatchObject({ lookups: 2, offered: 0, misses: 2 });
      expect(stats.errors).toBeGreaterThanOrEqual(2);
      expect(stats.latencyMs.lookup.max).toBeLessThan(1000);
    } finally {
      await cache.close();
      await store.close();
    }
  });

  test('killed (SIGKILL) after sessions were stored: full handshakes, then resumption once it is back', async () => {
    const store = new RedisStore({ url: redis.url, ...storeOptions });
    const cache = new ClientSessionCache({ store, secret: Buffer.alloc(32, 7), budgetMs: 50, onError: () => {} });
    try {
      await visit(cache);
      await redis.kill();
      expect(await visit(cache)).toBe(false);
      expect(cache.stats().latencyMs.lookup.max).toBeLessThan(1000);
      await redis.restart();
      await store.ready();
      await visit(cache); // Redis restarted empty: a full handshake stores again
      expect(await visit(cache)).toBe(true);
    } finally {
      await cache.close();
      await store.close();
    }
  });
});

describe('a shared store needs a secret', () => {
  test('RedisStore without `secret` is refused at construction, saying what to do; with one it works', async () => {
    const store = new RedisStore({ url: redis.url });
    try {
      expect(() => new ClientSessionCache({ store })).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringMatching(/options\.secret/) }),
      );
      const cache = new ClientSessionCache({ store, secret: Buffer.alloc(32, 9) });
      await visit(cache);
      expect(await visit(cache)).toBe(true);
      await cache.close();
    } finally {
      await store.close();
    }
  });
});
