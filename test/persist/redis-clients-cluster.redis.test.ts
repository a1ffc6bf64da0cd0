/**
 * RedisStore({ client }) on a real three-master Redis Cluster with every cluster client kind:
 * ioredis 5 (and another module instance of it), ioredis 6 and iovalkey `Cluster`, node-redis
 * v4/v5/v6 `createCluster`. Each keeps the SessionStore contract, lists entries() from every
 * master, and fleet members holding different kinds share TLS 1.2 sessions and TLS 1.3 ticket keys.
 */
import { makePki, Pki } from '../helpers/pki';
import { RedisStore } from '../../lib/persist/stores/redis';
import type { SessionStore } from '../../lib/persist/stores/contract';
import { CLIENT_KINDS, ClientKind, ConnectedClient, connectClusterClient } from './helpers/redis-clients';
import { RedisCluster, startRedisCluster } from './helpers/redis-cluster';
import { describeStoreContract } from './helpers/store-contract';
import { tls12FleetResumes, tls13FleetResumes } from './helpers/redis-fleet';

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
    await tls12FleetResumes(pki, storeA, storeB, 4);
  });

  test.each(pairs)('TLS 1.3: a ticket from A (%s) resumes on B (%s) through TicketKeyRing', async (kindA, kindB) => {
    const keyPrefix = `fleet13-${kindA}-${kindB}:`;
    const storeA = new RedisStore({ client: clientOf(kindA).client, keyPrefix, budgetMs: 10_000 });
    const storeB = new RedisStore({ client: clientOf(kindB).client, keyPrefix, budgetMs: 10_000 });
    await tls13FleetResumes(pki, storeA, storeB);
  });
});
