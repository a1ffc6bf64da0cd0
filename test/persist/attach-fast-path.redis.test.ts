/**
 * lookup 'issued' with a RedisStore on a real redis-server (free loopback port): a TLS 1.3
 * handshake on a server with the store attached sends no GET to Redis (counted by Redis itself,
 * INFO commandstats), while the default lookup sends one per handshake; a TLS 1.2 session the
 * server issued still resumes through Redis.
 */
import { constants, randomBytes } from 'node:crypto';
import * as tls from 'node:tls';
import { Redis } from 'ioredis';
import { attachSessionStore, RedisStore } from '../../lib/persist';
import { makePki, Pki } from '../helpers/pki';
import { commandCalls, RedisServer, startRedis } from './helpers/redis-server';
import { close, handshake, listen, tls13Server } from './helpers/tls-peers';

let pki: Pki;
let redis: RedisServer;
let admin: Redis;
const secret = randomBytes(32);

beforeAll(async () => {
  pki = makePki();
  redis = await startRedis();
  admin = new Redis(redis.url);
});

afterAll(async () => {
  admin.disconnect();
  await redis.stop();
});

const redisGets = (): Promise<number> => commandCalls(admin, 'get');

/** One connection through the shared TLS peer (`session` is DER, as handshake() hands it back). */
const connect = (port: number, options: tls.ConnectionOptions = {}, session?: Buffer) => handshake(pki, port, session, options);

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5));
}

test("lookup 'issued': TLS 1.3 handshakes send no GET to Redis; lookup 'all' sends one each", async () => {
  const store = new RedisStore({ url: redis.url });
  await store.ready();
  const filtered = tls13Server(pki);
  const plain = tls13Server(pki);
  const withFilter = attachSessionStore(filtered, { store, secret, lookup: 'issued' });
  const withoutFilter = attachSessionStore(plain, { store, secret, lookup: 'all' });
  const [filteredPort, plainPort] = [await listen(filtered), await listen(plain)];
  try {
    await admin.config('RESETSTAT');
    for (let i = 0; i < 5; i++) expect((await connect(filteredPort)).protocol).toBe('TLSv1.3');
    expect(await redisGets()).toBe(0);
    expect(withFilter.stats().filtered).toBe(5);

    for (let i = 0; i < 3; i++) await connect(plainPort);
    expect(await redisGets()).toBe(3);

    // A TLS 1.2 client of the filtered server: its own session resumes through Redis.
    const tls12 = { maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET } as const;
    const first = await connect(filteredPort, tls12);
    await until(() => withFilter.stats().stored === 1);
    const again = await connect(filteredPort, tls12, first.session);
    expect(again.reused).toBe(true);
    expect(await redisGets()).toBe(4);
  } finally {
    withFilter.detach();
    withoutFilter.detach();
    await close(filtered);
    await close(plain);
    await store.close();
  }
});
