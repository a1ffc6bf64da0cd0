/**
 * RedisStore({ client }) with every client kind an application may hold (helpers/redis-clients.ts):
 * ioredis 5 (and another module instance of it), ioredis 6, iovalkey, node-redis v4/v5/v6, on a
 * real redis-server. Each kind keeps the SessionStore contract, lists entries(), leaves the
 * client open on close(), meets the command budget, counts connection errors, and a TLS 1.2
 * session / TLS 1.3 ticket from member A (one kind) resumes on member B (another kind).
 * Clients the store cannot use are typed errors naming what is missing.
 */
import { inspect } from 'node:util';
import { Redis as Ioredis6 } from 'ioredis6';
import { createClient as createNodeRedis } from 'redis';
import { makePki, Pki } from '../helpers/pki';
import { RedisStore } from '../../lib/persist/stores/redis';
import type { SessionStore } from '../../lib/persist/stores/contract';
import { CLIENT_KINDS, ClientKind, ConnectedClient, connectClient } from './helpers/redis-clients';
import { RedisServer, startRedis } from './helpers/redis-server';
import { describeStoreContract } from './helpers/store-contract';
import { waitFor } from './helpers/rotation';
import { tls12FleetResumes, tls13FleetResumes } from './helpers/redis-fleet';

let redis: RedisServer;
let pki: Pki;
const opened: SessionStore[] = [];
const clients = new Map<ClientKind, ConnectedClient>();
let prefixCounter = 0;

beforeAll(async () => {
  pki = makePki();
  redis = await startRedis();
  for (const kind of CLIENT_KINDS) clients.set(kind, await connectClient(kind, redis.url));
}, 60_000);

afterAll(async () => {
  for (const store of opened) await store.close();
  for (const client of clients.values()) await client.close();
  await redis?.stop();
});

const clientOf = (kind: ClientKind): ConnectedClient => clients.get(kind)!;

for (const kind of CLIENT_KINDS) {
  describeStoreContract(
    `RedisStore({ client: ${kind} })`,
    async () => {
      const store = new RedisStore({ client: clientOf(kind).client, keyPrefix: `contract-${kind}-${prefixCounter++}:`, budgetMs: 10_000 });
      await store.ready();
      return store;
    },
    opened,
  );

  describe(`RedisStore({ client: ${kind} })`, () => {
    test('entries() lists what was stored, with expiry; close() leaves the caller’s client open', async () => {
      const { client, get, isOpen } = clientOf(kind);
      const store = new RedisStore({ client, keyPrefix: `entries-${kind}:`, budgetMs: 10_000 });
      await store.ready();
      expect(store.status).toBe('ready');
      await store.set('a', Buffer.from([0, 1, 255]), 120);
      await store.set('b', Buffer.from('b'), 60);
      const listed = [];
      for await (const entry of store.entries()) listed.push(entry);
      listed.sort((x, y) => x.key.localeCompare(y.key));
      expect(listed.map(({ key, value }) => [key, value])).toEqual([
        ['a', Buffer.from([0, 1, 255])],
        ['b', Buffer.from('b')],
      ]);
      for (const entry of listed) expect(entry.expiresAt!.getTime()).toBeGreaterThan(Date.now());
      await store.close();
      await expect(store.get('a')).rejects.toMatchObject({ code: 'ERR_TLS_SESSION_STORE_CLOSED' });
      expect(isOpen()).toBe(true);
      expect(await get(`entries-${kind}:b`)).toBe('b');
    });
  });
}

test('a client from another copy of ioredis 5 (same version, another module instance) is accepted (issue 26)', async () => {
  const { client } = clientOf('ioredis5-copy');
  const store = new RedisStore({ client, keyPrefix: 'issue-26:', budgetMs: 10_000 });
  try {
    await store.set('k', Buffer.from('v'), 60);
    expect((await store.get('k'))!.toString()).toBe('v');
  } finally {
    await store.close();
  }
});

describe('fleet members holding different client kinds share sessions', () => {
  const pairs: Array<[ClientKind, ClientKind]> = [
    ['ioredis6', 'node-redis5'],
    ['node-redis6', 'iovalkey'],
    ['node-redis4', 'ioredis5-copy'],
  ];

  test.each(pairs)('TLS 1.2: a session from A (%s) resumes on B (%s) through attachSessionStore', async (kindA, kindB) => {
    const keyPrefix = `fleet12-${kindA}-${kindB}:`;
    const storeA = new RedisStore({ client: clientOf(kindA).client, keyPrefix, budgetMs: 10_000 });
    const storeB = new RedisStore({ client: clientOf(kindB).client, keyPrefix, budgetMs: 10_000 });
    await tls12FleetResumes(pki, storeA, storeB, 1);
  });

  test.each(pairs)('TLS 1.3: a ticket from A (%s) resumes on B (%s) through TicketKeyRing', async (kindA, kindB) => {
    const keyPrefix = `fleet13-${kindA}-${kindB}:`;
    const storeA = new RedisStore({ client: clientOf(kindA).client, keyPrefix, budgetMs: 10_000 });
    const storeB = new RedisStore({ client: clientOf(kindB).client, keyPrefix, budgetMs: 10_000 });
    await tls13FleetResumes(pki, storeA, storeB);
  });
});

describe('every client kind: the budget, connection errors and recovery, on a Redis that stops and dies', () => {
  test.each(CLIENT_KINDS)('%s', async (kind) => {
    const server = await startRedis();
    const connected = await connectClient(kind, server.url);
    const store = new RedisStore({ client: connected.client, keyPrefix: 'faults:', budgetMs: 50 });
    try {
      await store.ready();
      await store.set('k', Buffer.from('v'), 60);
      // A server that does not answer (SIGSTOP): the call gives up after the budget, typed.
      process.kill(server.pid, 'SIGSTOP');
      try {
        await expect(store.get('k')).rejects.toMatchObject({ code: 'ERR_TLS_SESSION_STORE_TIMEOUT' });
      } finally {
        process.kill(server.pid, 'SIGCONT');
      }
      // A dead server: the client reports errors, the store counts them (and never throws them).
      await server.kill();
      await waitFor(() => store.connectionErrors > 0, `${kind}: a connection error to be counted`);
      await expect(store.get('k')).rejects.toMatchObject({ code: expect.stringMatching(/^ERR_TLS_SESSION_STORE/) });
      await server.restart();
      // Back (empty: no persistence): commands work again through the same client.
      await waitFor(async () => store.status === 'ready', `${kind}: the client to reconnect`);
      await waitFor(
        () =>
          store.set('k2', Buffer.from('again'), 60).then(
            () => true,
            () => false,
          ),
        `${kind}: a write to succeed after the restart`,
      );
      expect((await store.get('k2'))!.toString()).toBe('again');
    } finally {
      await store.close();
      await connected.close();
      await server.stop();
    }
  });
});

describe('clients the store cannot use are typed errors naming the problem', () => {
  test('not a client at all: ERR_INVALID_ARG_TYPE naming options.client and the kinds accepted', () => {
    for (const client of [{}, { status: 'ready' }, 42, null]) {
      expect(() => new RedisStore({ client: client as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    }
    expect(() => new RedisStore({ client: {} as never })).toThrow(
      /"options\.client" argument must be a Redis client \(ioredis 5\/6.*node-redis/,
    );
  });

  test('an ioredis-style client without getdelBuffer (GETDEL): PersistConfigError naming it', () => {
    const real = clientOf('ioredis6').client;
    const lacking = Object.create(real, { getdelBuffer: { value: undefined } }) as typeof real;
    expect(() => new RedisStore({ client: lacking })).toThrow(
      expect.objectContaining({
        code: 'ERR_TLS_SESSION_PERSIST_CONFIG',
        message: expect.stringMatching(/^options\.client lacks getdelBuffer\(\) \(ioredis-style client; GETDEL .*Redis 6\.2\+\)$/),
      }),
    );
  });

  test('a node-redis client without removeListener: PersistConfigError naming it', () => {
    const real = clientOf('node-redis5').client;
    const lacking = Object.create(real, { removeListener: { value: undefined } }) as typeof real;
    expect(() => new RedisStore({ client: lacking })).toThrow(
      expect.objectContaining({
        code: 'ERR_TLS_SESSION_PERSIST_CONFIG',
        message: expect.stringContaining('options.client lacks removeListener() (node-redis client;'),
      }),
    );
  });

  test('a node-redis client never connected: ready() rejects after the start-up budget, naming connect()', async () => {
    const client = createNodeRedis({ url: redis.url });
    const store = new RedisStore({ client, startupBudgetMs: 100 });
    try {
      await expect(store.ready()).rejects.toMatchObject({
        code: 'ERR_TLS_SESSION_STORE_TIMEOUT',
        message: expect.stringContaining('node-redis: call connect()'),
      });
      await expect(store.get('k')).rejects.toMatchObject({ code: 'ERR_TLS_SESSION_STORE' });
    } finally {
      await store.close();
    }
  });
});

describe('passwords in a passed client never reach inspect, JSON or errors', () => {
  const password = 'hunter2-in-a-url';
  let secured: RedisServer;
  beforeAll(async () => {
    secured = await startRedis({ password });
  });
  afterAll(async () => {
    await secured.stop();
  });

  test.each(['ioredis6', 'node-redis6'] as const)('%s with redis://:PASSWORD@…', async (kind) => {
    const connected = await connectClient(kind, secured.url);
    const store = new RedisStore({ client: connected.client, budgetMs: 50 });
    try {
      await store.set('k', Buffer.from('v'), 60);
      await secured.kill();
      const failure = await store.get('k').then(
        () => undefined,
        (error: Error) => error,
      );
      expect(failure).toBeInstanceOf(Error);
      const shown = [
        inspect(store, { showHidden: true, depth: 5 }),
        JSON.stringify(store),
        inspect(failure),
        String(failure!.message),
      ].join('\n');
      expect(shown).not.toContain(password);
      expect(shown).not.toContain(encodeURIComponent(password));
    } finally {
      await store.close();
      await connected.close();
      await secured.restart();
    }
  });

  test('the store’s own client from a URL with a password (ioredis)', async () => {
    const store = new RedisStore({ url: secured.url, budgetMs: 10_000 });
    try {
      await store.ready();
      expect(inspect(store, { showHidden: true, depth: 5 }) + JSON.stringify(store)).not.toContain(password);
    } finally {
      await store.close();
    }
  });

  test('an ioredis 6 client made by the application with its own password option', async () => {
    const client = new Ioredis6({ port: secured.port, host: '127.0.0.1', password });
    const store = new RedisStore({ client, budgetMs: 10_000 });
    try {
      await store.ready();
      await store.set('own', Buffer.from('x'), 60);
      expect(inspect(store, { showHidden: true, depth: 5 }) + JSON.stringify(store)).not.toContain(password);
    } finally {
      await store.close();
      client.disconnect();
    }
  });
});
