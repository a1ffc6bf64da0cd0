/**
 * A fleet that starts before its Redis: RedisStore.ready() and its start-up budget,
 * attachSessionStore waiting for the connection, TicketKeyRing starting on a local key and
 * converging on the fleet's key once Redis is there, and a Redis that comes back empty getting
 * the members' key back. Real redis-server processes on free loopback ports (started late on
 * purpose: startRedis({ launch: false })). An unhandled rejection fails the test (Jest does so).
 */
import { randomBytes } from 'node:crypto';
import { makePki, Pki } from '../helpers/pki';
import { attachSessionStore, RedisStore, TicketKeyRing } from '../../lib/persist';
import { RedisServer, startRedis } from './helpers/redis-server';
import { close, handshake, listen, tls12Server, tls13Server } from './helpers/tls-peers';
import { sleep, waitFor } from './helpers/rotation';

let pki: Pki;
const redises: RedisServer[] = [];
beforeAll(() => {
  pki = makePki();
});
afterAll(async () => {
  for (const redis of redises) await redis.stop();
});

/** A port reserved for a redis-server that is not running yet. */
async function redisLater(): Promise<RedisServer> {
  const redis = await startRedis({ launch: false });
  redises.push(redis);
  return redis;
}

test('RedisStore.ready(): waits for the first connection within its start-up budget, then answers at once', async () => {
  const later = await redisLater();
  const store = new RedisStore({ url: later.url, startupBudgetMs: 20_000, budgetMs: 10_000 });
  try {
    const ready = store.ready();
    await sleep(300);
    await later.restart();
    await expect(ready).resolves.toBeUndefined();
    await store.set('after-ready', Buffer.from('v'), 60);
    await expect(store.ready()).resolves.toBeUndefined();
  } finally {
    await store.close();
  }

  const nowhere = await redisLater();
  const down = new RedisStore({ url: nowhere.url, startupBudgetMs: 200 });
  try {
    const expected = { code: 'ERR_TLS_SESSION_STORE_TIMEOUT', message: expect.stringContaining('start-up budget') };
    await expect(down.ready()).rejects.toMatchObject(expected);
    await expect(down.ready()).rejects.toMatchObject(expected);
  } finally {
    await down.close();
  }

  const pending = new RedisStore({ url: nowhere.url, startupBudgetMs: 60_000 });
  const waiting = pending.ready();
  await pending.close();
  await expect(waiting).rejects.toMatchObject({ code: 'ERR_TLS_SESSION_STORE_CLOSED' });
  await expect(pending.ready()).rejects.toMatchObject({ code: 'ERR_TLS_SESSION_STORE_CLOSED' });
  expect(() => new RedisStore({ url: nowhere.url, startupBudgetMs: 0 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
});

test('attachSessionStore: sessions of the first handshakes wait for the store to connect instead of being dropped', async () => {
  const later = await redisLater();
  const store = new RedisStore({ url: later.url, startupBudgetMs: 20_000, budgetMs: 10_000 });
  const server = tls12Server(pki);
  const reported: Error[] = [];
  const handle = attachSessionStore(server, { store, secret: randomBytes(32), budgetMs: 10_000, onError: (e) => reported.push(e) });
  const port = await listen(server);
  try {
    const launching = sleep(300).then(() => later.restart());
    const first = await handshake(pki, port);
    await launching;
    expect((await handshake(pki, port, first.session)).reused).toBe(true);
    expect(handle.stats()).toMatchObject({ stored: 1, hits: 1, errors: 0 });
    expect(reported).toEqual([]);
  } finally {
    handle.detach();
    await close(server);
    await store.close();
  }
});

test('Redis down at start: members start on local ticket keys and serve full handshakes; once Redis runs they converge and A→B resumes (TLS 1.3 by ring, TLS 1.2 by store)', async () => {
  const later = await redisLater();
  const secret = randomBytes(32);
  const members = [0, 1].map(() => {
    // One store per member, as in two processes; a short start-up budget keeps the test short.
    const store = new RedisStore({ url: later.url, startupBudgetMs: 500 });
    const reported: Error[] = [];
    const ring = new TicketKeyRing({ store, secret, onError: (e) => reported.push(e) });
    const tls13 = tls13Server(pki);
    const tls12 = tls12Server(pki);
    const sessions = attachSessionStore(tls12, { store, secret, budgetMs: 1000 });
    return { store, ring, tls13, tls12, sessions, reported };
  });
  try {
    for (const member of members) await member.ring.attach(member.tls13);
    const [a13, b13, a12, b12] = [
      await listen(members[0]!.tls13),
      await listen(members[1]!.tls13),
      await listen(members[0]!.tls12),
      await listen(members[1]!.tls12),
    ];
    for (const { ring, reported } of members) {
      const stats = ring.stats();
      expect(stats.usingLocalKey).toBe(true);
      expect(stats.localKeys).toBeGreaterThanOrEqual(1);
      expect(stats.store).toMatchObject({ ready: false, outages: 1, msSinceKeySync: undefined });
      expect(reported.length).toBeGreaterThan(0);
      expect(reported.every((error) => typeof (error as { code?: unknown }).code === 'string')).toBe(true);
    }

    // Meanwhile: full handshakes; a member resumes its own tickets (local key), not the other's.
    const own = await handshake(pki, a13);
    expect(own.reused).toBe(false);
    expect((await handshake(pki, a13, own.session)).reused).toBe(true);
    expect((await handshake(pki, b13, own.session)).reused).toBe(false);
    expect(members[1]!.ring.stats(members[1]!.tls13).tickets.rejected.unknownKey).toBe(1);
    const session12 = await handshake(pki, a12);
    expect(session12.protocol).toBe('TLSv1.2');
    expect((await handshake(pki, b12, session12.session)).reused).toBe(false);

    await later.restart();
    await waitFor(
      () => members.every(({ ring }) => ring.stats().store.ready && !ring.stats().usingLocalKey),
      'both rings to take the fleet key from Redis',
    );
    const fresh = await handshake(pki, a13);
    expect((await handshake(pki, b13, fresh.session)).reused).toBe(true);
    // A's local key is retained: its ticket still opens on A (and is renewed under the fleet key).
    const renewed = await handshake(pki, a13, own.session);
    expect(renewed.reused).toBe(true);
    expect((await handshake(pki, b13, renewed.session)).reused).toBe(true);
    expect(members[0]!.ring.stats().rotations).toBeGreaterThanOrEqual(1);

    await waitFor(async () => {
      const issued = await handshake(pki, a12);
      return (await handshake(pki, b12, issued.session)).reused;
    }, 'a TLS 1.2 session from A to resume on B through Redis');
  } finally {
    for (const member of members) {
      member.ring.close();
      member.sessions.detach();
      await close(member.tls13);
      await close(member.tls12);
      await member.store.close();
    }
  }
});

test('Redis restarted empty: members put back the key they use, and a member started afterwards agrees with them', async () => {
  const redis = await redisLater();
  await redis.restart();
  const secret = randomBytes(32);
  const stores: RedisStore[] = [];
  const member = async () => {
    const store = new RedisStore({ url: redis.url, budgetMs: 10_000 });
    stores.push(store);
    const ring = new TicketKeyRing({ store, secret, budgetMs: 10_000 });
    const server = tls13Server(pki);
    await ring.attach(server);
    return { ring, server, port: await listen(server) };
  };
  const a = await member();
  let c: Awaited<ReturnType<typeof member>> | undefined;
  try {
    await redis.kill();
    await redis.restart();
    // A re-reads its key at least every 10 s (every second while the store fails) and finds it gone.
    await waitFor(() => a.ring.stats().restored >= 1, 'A to restore its key into the empty Redis');
    c = await member();
    expect(c.ring.stats().created).toBe(0);
    const fromC = await handshake(pki, c.port);
    expect((await handshake(pki, a.port, fromC.session)).reused).toBe(true);
    const fromA = await handshake(pki, a.port);
    expect((await handshake(pki, c.port, fromA.session)).reused).toBe(true);
  } finally {
    for (const { ring, server } of [a, ...(c ? [c] : [])]) {
      ring.close();
      await close(server);
    }
    for (const store of stores) await store.close();
  }
});
