/**
 * RedisStore({ client }) on a real three-master Redis Cluster with every cluster client kind:
 * ioredis 5 (and another module instance of it), ioredis 6 and iovalkey `Cluster`, node-redis
 * v4/v5/v6 `createCluster`. Each keeps the SessionStore contract, lists entries() from every
 * master, and fleet members holding different kinds share TLS 1.2 sessions and TLS 1.3 ticket keys.
 */
import { randomBytes } from 'node:crypto';
import { makePki, Pki } from '../helpers/pki';
import { attachSessionStore, TicketKeyRing } from '../../lib/persist';
import { RedisStore } from '../../lib/persist/redis-store';
import type { SessionStore } from '../../lib/persist/store';
import { CLIENT_KINDS, ClientKind, ConnectedClient, connectClusterClient } from './helpers/redis-clients';
import { RedisCluster, startRedisCluster } from './helpers/redis-cluster';
import { describeStoreContract } from './helpers/store-contract';
import { waitFor } from './helpers/rotation';
import { close, handshake, listen, tls12Server, tls13Server } from './helpers/tls-peers';

let cluster: RedisCluster;
let pki: Pki;
const opened: SessionStore[] = [];
const clients = new Map<ClientKind, ConnectedClient>();
let prefixCounter = 0;

beforeAll(async () => {
  pki = makePki();
  cluster = await startRedisCluster();
  for (const kind of CLIENT_KINDS) clients.set(kind, await connectClusterClient(kind, cluster.nodes));
}, 90_000);

afterAll(async () => {
  for (const store of opened) await store.close();
  for (const client of clients.values()) await client.close();
  await cluster?.stop();
});

const clientOf = (kind: ClientKind): ConnectedClient => clients.get(kind)!;

for (const kind of CLIENT_KINDS) {
  describeStoreContract(
    `RedisStore({ client: ${kind} cluster })`,
    async () => {
      // Generous budgets: this file is about Cluster behaviour, not about the time budget.
      const store = new RedisStore({ client: clientOf(kind).client, keyPrefix: `contract-${kind}-${prefixCounter++}:`, budgetMs: 10_000 });
      await store.ready();
      return store;
    },
    opened,
  );

  test(`${kind} cluster: entries() lists keys from every master; close() leaves the cluster client open`, async () => {
    const { client, get, isOpen } = clientOf(kind);
    const store = new RedisStore({ client, keyPrefix: `entries-${kind}:`, budgetMs: 10_000 });
    await store.ready();
    expect(store.status).toBe('ready');
    const names = Array.from({ length: 12 }, (_, i) => `key-${i}`);
    for (const name of names) await store.set(name, Buffer.from(name), 60);
    const listed: string[] = [];
    for await (const entry of store.entries()) {
      expect(entry.value.toString()).toBe(entry.key);
      listed.push(entry.key);
    }
    expect(listed.sort()).toEqual([...names].sort());
    await store.close();
    expect(isOpen()).toBe(true);
    expect(await get(`entries-${kind}:key-3`)).toBe('key-3');
  });
}

describe('fleet members holding different cluster client kinds share sessions', () => {
  const pairs: Array<[ClientKind, ClientKind]> = [
    ['node-redis5', 'ioredis6'],
    ['iovalkey', 'node-redis6'],
    ['ioredis5-copy', 'node-redis4'],
  ];

  test.each(pairs)('TLS 1.2: sessions from A (%s) resume on B (%s), spread over masters', async (kindA, kindB) => {
    const keyPrefix = `fleet12-${kindA}-${kindB}:`;
    const storeA = new RedisStore({ client: clientOf(kindA).client, keyPrefix, budgetMs: 10_000 });
    const storeB = new RedisStore({ client: clientOf(kindB).client, keyPrefix, budgetMs: 10_000 });
    const secret = randomBytes(32);
    const a = tls12Server(pki);
    const b = tls12Server(pki, { sessionIdContext: 'different-argv' });
    const handleA = attachSessionStore(a, { store: storeA, secret, budgetMs: 10_000 });
    const handleB = attachSessionStore(b, { store: storeB, secret, budgetMs: 10_000 });
    const [portA, portB] = [await listen(a), await listen(b)];
    try {
      let resumed = 0;
      for (let i = 0; i < 4; i++) {
        const first = await handshake(pki, portA);
        if ((await handshake(pki, portB, first.session)).reused) resumed++;
      }
      expect(resumed).toBe(4);
      expect(handleA.stats().stored).toBe(4);
      expect(handleB.stats().hits).toBe(4);
    } finally {
      handleA.detach();
      handleB.detach();
      await close(a);
      await close(b);
      await storeA.close();
      await storeB.close();
    }
  });

  test.each(pairs)('TLS 1.3: a ticket from A (%s) resumes on B (%s) through TicketKeyRing', async (kindA, kindB) => {
    const keyPrefix = `fleet13-${kindA}-${kindB}:`;
    const storeA = new RedisStore({ client: clientOf(kindA).client, keyPrefix, budgetMs: 10_000 });
    const storeB = new RedisStore({ client: clientOf(kindB).client, keyPrefix, budgetMs: 10_000 });
    const secret = randomBytes(32);
    const a = tls13Server(pki);
    const b = tls13Server(pki);
    const [ringA, ringB] = [new TicketKeyRing({ store: storeA, secret }), new TicketKeyRing({ store: storeB, secret })];
    await Promise.all([ringA.attach(a), ringB.attach(b)]);
    const [portA, portB] = [await listen(a), await listen(b)];
    try {
      const first = await handshake(pki, portA);
      expect(first).toMatchObject({ protocol: 'TLSv1.3', reused: false });
      expect((await handshake(pki, portB, first.session)).reused).toBe(true);
      // Each epoch key in the cluster was created by exactly one of the two rings (SET NX).
      const stored = async () => {
        let count = 0;
        for await (const entry of storeB.entries()) if (entry.key.startsWith('ticket-key:')) count++;
        return count;
      };
      await waitFor(
        async () => ringA.stats().created + ringB.stats().created === (await stored()),
        'the created keys to match the stored ones',
      );
      expect(ringA.stats().created + ringB.stats().created).toBeGreaterThanOrEqual(1);
    } finally {
      ringA.close();
      ringB.close();
      await close(a);
      await close(b);
      await storeA.close();
      await storeB.close();
    }
  });
});
