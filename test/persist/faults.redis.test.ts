/**
 * Faults: Redis is killed (SIGKILL) in the middle of traffic and restarted. Handshakes never
 * fail (they become full handshakes), nothing is thrown or left unhandled, failures are
 * counted, and resumption comes back once ioredis has reconnected on its own. The same for the
 * ticket key ring while keys rotate (SIGKILL and SIGSTOP across two boundaries). Records altered
 * in a real SQLite file or Redis (tampered, other scope, expired, random bytes) are refused.
 * (Jest fails a test on an unhandled rejection by itself; a listener on the test's `process`
 * does not see them: Jest gives each test file its own copy of `process`.)
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makePki, Pki } from '../helpers/pki';
import { attachSessionStore, RedisStore, Sealer, SessionStore, SqliteStore, TicketKeyRing } from '../../lib/persist';
import { RedisServer, startRedis } from './helpers/redis-server';
import { close, handshake, listen, tls12Server, tls13Server } from './helpers/tls-peers';
import { epochEndMs, untilRotatedPast, waitFor } from './helpers/rotation';

let pki: Pki;
let redis: RedisServer;
beforeAll(async () => {
  pki = makePki();
  redis = await startRedis();
});
afterAll(async () => {
  await redis.stop();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('Redis killed mid-traffic and restarted: no crash, full handshakes meanwhile, resumption comes back', async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  process.on('uncaughtException', onUnhandled);

  // Generous budgets so a loaded machine cannot fail the healthy phases; while Redis is down,
  // commands fail at once anyway (no offline queue).
  const store = new RedisStore({ url: redis.url, budgetMs: 10_000 });
  await store.ready();
  const server = tls12Server(pki);
  const reported: Error[] = [];
  const handle = attachSessionStore(server, { store, secret: randomBytes(32), budgetMs: 10_000, onError: (e) => reported.push(e) });
  const port = await listen(server);

  /** One issue + resume pair; returns whether the resume was a resumption. */
  const pairResumes = async (): Promise<boolean> => {
    const first = await handshake(pki, port);
    return (await handshake(pki, port, first.session)).reused;
  };

  try {
    // Healthy: sessions resume.
    expect(await pairResumes()).toBe(true);

    // Background traffic that keeps going while Redis dies.
    let stop = false;
    let completed = 0;
    const failures: unknown[] = [];
    const traffic = (async () => {
      while (!stop) {
        try {
          await pairResumes();
          completed += 2;
        } catch (error) {
          failures.push(error);
        }
      }
    })();
    await sleep(200);
    await redis.kill();
    const completedAtKill = completed;

    // Redis is gone: every pair still completes, as full handshakes.
    let resumedWhileDown = 0;
    for (let i = 0; i < 10; i++) if (await pairResumes()) resumedWhileDown++;
    expect(resumedWhileDown).toBe(0);
    for (let i = 0; i < 100 && completed < completedAtKill + 10; i++) await sleep(50);
    expect(completed).toBeGreaterThanOrEqual(completedAtKill + 10);
    const duringOutage = handle.stats();
    expect(duringOutage.errors).toBeGreaterThan(0);
    expect(duringOutage.misses).toBeGreaterThan(0);
    expect(reported.every((e) => typeof (e as { code?: unknown }).code === 'string')).toBe(true);

    // Restart on the same port; ioredis reconnects by itself.
    await redis.restart();
    for (let i = 0; i < 200 && store.status !== 'ready'; i++) await sleep(50);
    expect(store.status).toBe('ready');
    let resumedAfter = false;
    for (let i = 0; i < 20 && !resumedAfter; i++) resumedAfter = await pairResumes();
    expect(resumedAfter).toBe(true);

    stop = true;
    await traffic;
    expect(failures).toEqual([]);
    expect(unhandled).toEqual([]);
    expect(store.connectionErrors).toBeGreaterThan(0);
  } finally {
    process.off('unhandledRejection', onUnhandled);
    process.off('uncaughtException', onUnhandled);
    handle.detach();
    await close(server);
    await store.close();
  }
});

test('a Redis that never answers (a stopped process): lookups give up after the budget and the client gets a full handshake', async () => {
  // SIGSTOP keeps the TCP port open but nothing answers: the worst case for a handshake.
  const stalled = await startRedis();
  const store = new RedisStore({ url: stalled.url, budgetMs: 50 });
  await store.ready();
  const server = tls12Server(pki);
  const handle = attachSessionStore(server, { store, budgetMs: 50 });
  const port = await listen(server);
  const pid = stalled.pid;
  try {
    while (store.writtenKeyStats()['session:']?.complete !== true) await new Promise((resolve) => setTimeout(resolve, 5));
    const first = await handshake(pki, port);
    await waitFor(() => handle.stats().stored === 1, 'the first session to be stored');
    process.kill(pid, 'SIGSTOP');
    const again = await handshake(pki, port, first.session);
    const fresh = await handshake(pki, port);
    expect(again.reused).toBe(false);
    expect(fresh.protocol).toBe('TLSv1.2');
    // The stored session's lookup went to the stalled Redis and gave up; the random legacy IDs
    // (the client offers TLS 1.3 too) were ruled out by the written-key filter: no wait at all.
    expect(handle.stats().errors).toBeGreaterThanOrEqual(1);
    expect(handle.stats().filtered).toBeGreaterThanOrEqual(2);
  } finally {
    process.kill(pid, 'SIGCONT');
    handle.detach();
    await close(server);
    await store.close();
    await stalled.stop();
  }
});

describe.each(['SIGKILL', 'SIGSTOP'] as const)('Redis %s while ticket keys rotate', (signal) => {
  test("members keep resuming each other's tickets through the outage (the last fleet key stays), then converge; no handshake fails", async () => {
    const rotationSeconds = 4;
    const own = await startRedis();
    const secret = randomBytes(32);
    const members = [0, 1].map(() => {
      // A short command budget: with a stopped Redis every key sync gives up after 200 ms.
      const store = new RedisStore({ url: own.url, budgetMs: 200 });
      const reported: Error[] = [];
      const ring = new TicketKeyRing({
        store,
        secret,
        rotationSeconds,
        retentionSeconds: 20,
        budgetMs: 500,
        onError: (e) => reported.push(e),
      });
      return { store, ring, server: tls13Server(pki), reported };
    });
    const rings = members.map((m) => m.ring);
    let stopped = false;
    try {
      for (const member of members) await member.ring.attach(member.server);
      const [portA, portB] = [await listen(members[0]!.server), await listen(members[1]!.server)];
      const crossResumes = async () => (await handshake(pki, portB, (await handshake(pki, portA)).session)).reused;

      // Traffic across the members the whole time: every handshake must complete.
      let stop = false;
      const failures: unknown[] = [];
      const traffic = (async () => {
        while (!stop) await crossResumes().catch((error: unknown) => failures.push(error));
      })();

      // Both members hold the next epoch's key (fetched halfway through the epoch); then Redis goes.
      await waitFor(() => rings.every((ring) => ring.stats().nextKeyReady), 'both rings to fetch the next key ahead');
      const beforeOutage = await handshake(pki, portA);
      const epoch = rings[0]!.epoch!;
      if (signal === 'SIGKILL') await own.kill();
      else process.kill(own.pid, 'SIGSTOP');
      stopped = signal === 'SIGSTOP';

      // The boundary: both switch to the key they fetched ahead, without the store.
      await untilRotatedPast(rings, epoch);
      expect(await crossResumes()).toBe(true);
      // The next boundary has no key to fetch: both keep the last fleet key (within its retention).
      await waitFor(() => Date.now() > epochEndMs(epoch + 1, rotationSeconds) + 100, 'a boundary during the outage');
      expect(rings.map((ring) => ring.epoch)).toEqual([epoch + 1, epoch + 1]);
      expect(await crossResumes()).toBe(true);
      expect((await handshake(pki, portB, beforeOutage.session)).reused).toBe(true);
      for (const { ring, reported } of members) {
        const stats = ring.stats();
        expect(stats.store.ready).toBe(false);
        expect(stats.store.outages).toBeGreaterThanOrEqual(1);
        expect(stats.usingLocalKey).toBe(false);
        expect(stats.errors).toBeGreaterThan(0);
        expect(reported.every((error) => typeof (error as { code?: unknown }).code === 'string')).toBe(true);
      }

      if (signal === 'SIGKILL') await own.restart();
      else process.kill(own.pid, 'SIGCONT');
      stopped = false;
      const clockEpoch = () => Math.floor(Date.now() / 1000 / rotationSeconds);
      await waitFor(
        () => rings.every((ring) => ring.stats().store.ready && ring.epoch === clockEpoch() && !ring.stats().usingLocalKey),
        'both rings to take the current epoch key from Redis again',
      );
      expect(await crossResumes()).toBe(true);
      stop = true;
      await traffic;
      expect(failures).toEqual([]);
    } finally {
      if (stopped) process.kill(own.pid, 'SIGCONT');
      for (const member of members) {
        member.ring.close();
        await close(member.server);
        await member.store.close();
      }
      await own.stop();
    }
  }, 60_000);
});

describe.each(['SqliteStore', 'RedisStore'] as const)('bad records in a real %s are refused, counted and deleted', (kind) => {
  const secret = randomBytes(32);
  let inner: SessionStore;
  let keys: string[];
  let store: SessionStore;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tls-session-faults-'));
    if (kind === 'RedisStore') {
      const redisStore = new RedisStore({ url: redis.url, keyPrefix: 'bad-records:', budgetMs: 10_000 });
      await redisStore.ready();
      inner = redisStore;
    } else {
      inner = new SqliteStore({ path: join(dir, 'bad-records.db') });
    }
    keys = [];
    // Remembers written keys so the test can reach the records, like an attacker with store access.
    store = {
      get: (key) => inner.get(key),
      set: (key, value, ttl) => {
        keys.push(key);
        return inner.set(key, value, ttl);
      },
      delete: (key) => inner.delete(key),
      close: () => inner.close(),
    };
  });
  afterAll(async () => {
    await inner.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Issues a session on a server with `serverOptions`, lets `corrupt` rewrite its record, offers it again. */
  async function offerCorrupted(corrupt: (key: string, record: Buffer) => Promise<void>, serverOptions = {}, waitMs = 0) {
    const server = tls12Server(pki, serverOptions);
    const handle = attachSessionStore(server, { store, secret, budgetMs: 10_000 });
    const port = await listen(server);
    try {
      const written = keys.length;
      const first = await handshake(pki, port);
      expect(keys.length).toBe(written + 1);
      const key = keys[keys.length - 1]!;
      await corrupt(key, (await inner.get(key))!);
      if (waitMs) await sleep(waitMs);
      const again = await handshake(pki, port, first.session);
      return { reused: again.reused, stats: handle.stats(), remaining: await inner.get(key) };
    } finally {
      handle.detach();
      await close(server);
    }
  }

  test('tampered', async () => {
    const result = await offerCorrupted(async (key, record) => {
      record[record.length - 1] ^= 0x01;
      await inner.set(key, record, 300);
    });
    expect(result.reused).toBe(false);
    expect(result.stats.rejected).toBe(1);
    expect(result.remaining).toBeUndefined();
  });

  test('another scope: refused, counted incompatible, kept for its owner', async () => {
    const result = await offerCorrupted(async (key, record) => {
      const sealer = new Sealer(secret, 'session-record');
      const payload = sealer.open(key, record);
      const der = payload.subarray(3 + payload.readUInt16BE(1));
      const scope = Buffer.from('x509:some-other-host');
      await inner.set(key, sealer.seal(key, Buffer.concat([Buffer.from([1, 0, scope.length]), scope, der])), 300);
    });
    expect(result.reused).toBe(false);
    expect(result.stats).toMatchObject({ rejected: 0, incompatible: 1 });
    expect(result.remaining).toBeDefined();
  });

  test('expired (session lifetime over, record still in the store)', async () => {
    const result = await offerCorrupted(async (key, record) => inner.set(key, record, 3600), { sessionTimeout: 3 }, 4100);
    expect(result.reused).toBe(false);
    expect(result.stats.expired).toBe(1);
    expect(result.remaining).toBeUndefined();
  });

  test('random bytes', async () => {
    const result = await offerCorrupted(async (key) => inner.set(key, randomBytes(500), 300));
    expect(result.reused).toBe(false);
    expect(result.stats.rejected).toBe(1);
    expect(result.remaining).toBeUndefined();
  });
});
