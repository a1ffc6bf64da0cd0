/**
 * RedisStore's fleet-wide filter of written keys, on a real redis-server (free loopback port),
 * with attachSessionStore's default lookup ('written'): members are servers with stores of their
 * own (their own connections); Redis counts the GETs itself (INFO commandstats).
 */
import { constants, randomBytes } from 'node:crypto';
import * as tls from 'node:tls';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { attachSessionStore, RedisStore, type SessionStoreHandle } from '../../lib/persist';
import { makePki, Pki } from '../helpers/pki';
import { commandCalls, RedisServer, startRedis } from './helpers/redis-server';
import { close, handshake, listen, tls13Server } from './helpers/tls-peers';

let pki: Pki;
let redis: RedisServer;
let admin: Redis;
const secret = randomBytes(32);
const TLS12 = { maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET } as const;

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

/** A connection as a TLS 1.2-only client (tickets off) or, without options, one that offers TLS 1.3. */
const connect = (port: number, options: tls.ConnectionOptions = {}, session?: Buffer) => handshake(pki, port, session, options);

/** Waits for something the network does (a message, a reconnect): polled, bounded by Jest's timeout. */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5));
}

interface Member {
  store: RedisStore;
  server: tls.Server;
  handle: SessionStoreHandle;
  port: number;
}

async function member(): Promise<Member> {
  const store = new RedisStore({ url: redis.url });
  await store.ready();
  const server = tls13Server(pki);
  const handle = attachSessionStore(server, { store, secret });
  const port = await listen(server);
  await until(() => store.writtenKeyStats()['session:']?.complete === true);
  return { store, server, handle, port };
}

async function stop(...members: Member[]): Promise<void> {
  for (const { handle, server, store } of members) {
    handle.detach();
    await close(server);
    await store.close();
  }
}

const stats = (m: Member) => m.store.writtenKeyStats()['session:']!;

test('a fleet looks up only the session IDs a member issued: TLS 1.3 sends no GET, TLS 1.2 resumes on another member and on a late one', async () => {
  await admin.flushall();
  const a = await member();
  const b = await member();
  let c: Member | undefined;
  try {
    await admin.config('RESETSTAT');
    for (const m of [a, b]) for (let i = 0; i < 4; i++) expect((await connect(m.port)).protocol).toBe('TLSv1.3');
    expect(await redisGets()).toBe(0);
    expect(a.handle.stats().filtered + b.handle.stats().filtered).toBe(8);

    // A TLS 1.2 session issued by A: B learns its ID from A's message and resumes it.
    const first = await connect(a.port, TLS12);
    expect(first.reused).toBe(false);
    await until(() => a.handle.stats().stored === 1);
    await until(() => stats(b).received >= 1);
    const onB = await connect(b.port, TLS12, first.session);
    expect(onB.reused).toBe(true);
    expect(await redisGets()).toBe(1);

    // A member started after it loads the live IDs (SCAN) and resumes it too.
    c = await member();
    expect(stats(c).loaded).toBe(1);
    const onC = await connect(c.port, TLS12, first.session);
    expect(onC.reused).toBe(true);
    expect(await redisGets()).toBe(2);
    for (let i = 0; i < 3; i++) await connect(c.port);
    expect(await redisGets()).toBe(2);
    expect(stats(a).published).toBe(1);
  } finally {
    await stop(a, b, ...(c ? [c] : []));
  }
});

test('a lost subscription sends every lookup to Redis until the reload, which learns what was missed', async () => {
  await admin.flushall();
  const store = new RedisStore({ url: redis.url });
  const keys = store.trackWrittenKeys('session:');
  try {
    await until(() => keys.complete);
    // Written without a message (as if published while this member was disconnected).
    await admin.set('tls-session:session:aa', 'x', 'EX', 300);
    expect(keys.mayHold('session:aa')).toBe(false);
    await store.set('session:bb', Buffer.from('y'), 300);
    expect(keys.mayHold('session:bb')).toBe(true);

    await admin.client('KILL', 'TYPE', 'pubsub');
    await until(() => !keys.complete);
    expect(keys.mayHold('session:never-written')).toBe(true);
    await until(() => keys.complete);
    expect(store.writtenKeyStats()['session:']!.loads).toBe(2);
    expect(keys.mayHold('session:aa')).toBe(true);
    expect(keys.mayHold('session:never-written')).toBe(false);
    // Keys outside the tracked prefix are never ruled out.
    expect(keys.mayHold('ticket:zz')).toBe(true);
  } finally {
    keys.release();
    await store.close();
  }
});

test('a writer that does not announce (an older release) is found by the check, and the filter is put aside', async () => {
  await admin.flushall();
  const store = new RedisStore({ url: redis.url, writtenKeyFilter: { verifyEveryMs: 100 } });
  const keys = store.trackWrittenKeys('session:');
  try {
    await until(() => keys.complete);
    await store.set('session:announced', Buffer.from('a'), 300);
    expect(keys.mayHold('session:elsewhere')).toBe(false);
    // Checks that find only announced keys change nothing.
    await until(() => store.writtenKeyStats()['session:']!.loads === 1);
    await admin.set('tls-session:session:unannounced', 'x', 'EX', 300);
    await until(() => store.writtenKeyStats()['session:']!.unannounced === 1);
    expect(keys.complete).toBe(false);
    expect(keys.mayHold('session:elsewhere')).toBe(true);
    expect(keys.mayHold('session:unannounced')).toBe(true);
  } finally {
    keys.release();
    await store.close();
  }
});

test('each check reads a bounded part of the keyspace and the next goes on from there', async () => {
  await admin.flushall();
  const store = new RedisStore({ url: redis.url, writtenKeyFilter: { verifyEveryMs: 100 } });
  const keys = store.trackWrittenKeys('session:');
  try {
    await until(() => keys.complete);
    // 25,000 keys nobody announced, written after the load: only the checks can find them.
    const pipeline = admin.pipeline();
    for (let i = 0; i < 25_000; i++) pipeline.set(`tls-session:session:${i.toString(16).padStart(8, '0')}`, 'x', 'EX', 300);
    await pipeline.exec();
    const stats = () => store.writtenKeyStats()['session:']!;
    await until(() => stats().unannounced > 0);
    // The first check: at most 10 SCAN steps of ~1,000 keys (SCAN's COUNT is a hint), not all 25,000.
    expect(stats().unannounced).toBeLessThan(15_000);
    await until(() => stats().unannounced === 25_000);
  } finally {
    keys.release();
    await store.close();
  }
});

test("a member with lookup 'all' announces its writes but keeps no filter (no subscriber connection)", async () => {
  await admin.flushall();
  const writerStore = new RedisStore({ url: redis.url });
  await writerStore.ready();
  const writer = tls13Server(pki);
  const handle = attachSessionStore(writer, { store: writerStore, secret, lookup: 'all' });
  const port = await listen(writer);
  const reader = new RedisStore({ url: redis.url });
  const readerKeys = reader.trackWrittenKeys('session:');
  try {
    await until(() => readerKeys.complete);
    const subscribers = String(await admin.call('CLIENT', 'LIST', 'TYPE', 'pubsub'))
      .trim()
      .split('\n');
    expect(subscribers).toHaveLength(1);
    const first = await connect(port, TLS12);
    await until(() => handle.stats().stored === 1);
    await until(() => reader.writtenKeyStats()['session:']!.received === 1);
    expect(writerStore.writtenKeyStats()['session:']).toMatchObject({ published: 1, complete: false });
    expect(first.session).toBeDefined();
  } finally {
    handle.detach();
    await close(writer);
    readerKeys.release();
    await writerStore.close();
    await reader.close();
  }
});

test('a malformed message on the channel is dropped and counted; the filter keeps working', async () => {
  await admin.flushall();
  const writer = new RedisStore({ url: redis.url });
  const reader = new RedisStore({ url: redis.url });
  const writerKeys = writer.trackWrittenKeys('session:');
  const readerKeys = reader.trackWrittenKeys('session:');
  try {
    await until(() => writerKeys.complete && readerKeys.complete);
    await admin.publish('tls-session:session:written-keys', Buffer.from([0x01, 0x00, 0x40, 0x61]));
    await admin.publish('tls-session:session:written-keys', 'not ours');
    await until(() => reader.writtenKeyStats()['session:']!.malformed === 2);
    await writer.set('session:cc', Buffer.from('z'), 300);
    await until(() => readerKeys.mayHold('session:cc'));
    expect(readerKeys.mayHold('session:dd')).toBe(false);
  } finally {
    writerKeys.release();
    readerKeys.release();
    await writer.close();
    await reader.close();
  }
});

test('stores that cannot subscribe, or whose filter is off, answer "maybe" and say why', async () => {
  const off = new RedisStore({ url: redis.url, writtenKeyFilter: false });
  const client = createClient({ url: redis.url });
  client.on('error', () => undefined);
  await client.connect();
  const nodeRedis = new RedisStore({ client });
  try {
    for (const [store, why] of [
      [off, /writtenKeyFilter is false/],
      [nodeRedis, /node-redis client: no subscriber connection/],
    ] as const) {
      const keys = store.trackWrittenKeys('session:');
      expect(keys.unsupported).toMatch(why);
      expect(keys.complete).toBe(false);
      expect(keys.mayHold('session:anything')).toBe(true);
      keys.release();
    }
    expect(() => new RedisStore({ url: redis.url, writtenKeyFilter: { slots: 1000 } })).toThrow(
      expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('options.writtenKeyFilter.slots') }),
    );
    // Past setInterval's bound a check would run every millisecond.
    expect(() => new RedisStore({ url: redis.url, writtenKeyFilter: { verifyEveryMs: 2 ** 31 } })).toThrow(
      expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('options.writtenKeyFilter.verifyEveryMs') }),
    );
    expect(() => new RedisStore({ url: redis.url, writtenKeyFilter: 'yes' as never })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('options.writtenKeyFilter') }),
    );
  } finally {
    await off.close();
    await nodeRedis.close();
    await client.quit();
  }
});
