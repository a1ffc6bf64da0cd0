/**
 * RedisStore on a real Redis Cluster (three masters): sessions spread over hash slots on
 * different nodes, and a session from server A resumes on server B; the ticket key ring
 * agrees through SET NX on the cluster too.
 */
import { randomBytes } from 'node:crypto';
import { Cluster } from 'ioredis';
import { makePki, Pki } from '../helpers/pki';
import { attachSessionStore, RedisStore, TicketKeyRing } from '../../lib/persist';
import { RedisCluster, startRedisCluster } from './helpers/redis-cluster';
import { close, handshake, listen, tls12Server, tls13Server } from './helpers/tls-peers';
import { waitFor } from './helpers/rotation';

let pki: Pki;
let cluster: RedisCluster;
let client: Cluster;

beforeAll(async () => {
  pki = makePki();
  cluster = await startRedisCluster();
  // slotsRefreshInterval 0: ioredis re-arms its periodic slots refresh when a refresh is in
  // flight during disconnect(), which would keep this worker alive after the tests.
  client = new Cluster(cluster.nodes, { enableOfflineQueue: true, slotsRefreshInterval: 0 });
  await new Promise<void>((resolve, reject) => {
    client.once('ready', () => resolve());
    client.once('error', reject);
  });
}, 60_000);

afterAll(async () => {
  client?.disconnect();
  await cluster?.stop();
});

test('TLS 1.2 sessions from server A resume on server B through a Redis Cluster', async () => {
  // Generous budgets: this file is about Cluster behaviour, not about the time budget.
  const store = new RedisStore({ client, budgetMs: 10_000 });
  const secret = randomBytes(32);
  const a = tls12Server(pki);
  const b = tls12Server(pki, { sessionIdContext: 'different-argv' });
  const handleA = attachSessionStore(a, { store, secret, budgetMs: 10_000 });
  const handleB = attachSessionStore(b, { store, secret, budgetMs: 10_000 });
  const [portA, portB] = [await listen(a), await listen(b)];
  try {
    let resumed = 0;
    for (let i = 0; i < 6; i++) {
      const first = await handshake(pki, portA);
      if ((await handshake(pki, portB, first.session)).reused) resumed++;
    }
    expect(resumed).toBe(6);
    expect(handleA.stats().stored).toBe(6);
    expect(handleB.stats().hits).toBe(6);
    // The six keys live on more than one master.
    const perNode = await Promise.all(client.nodes('master').map((node) => node.keys('tls-session:session:*')));
    expect(perNode.flat()).toHaveLength(6);
    expect(perNode.filter((keys) => keys.length > 0).length).toBeGreaterThan(1);
  } finally {
    handleA.detach();
    handleB.detach();
    await close(a);
    await close(b);
    await store.close();
  }
});

test('TicketKeyRing agrees on one key through the cluster; a TLS 1.3 ticket from A resumes on B', async () => {
  const store = new RedisStore({ client, keyPrefix: 'ring-test:', budgetMs: 10_000 });
  const secret = randomBytes(32);
  const a = tls13Server(pki);
  const b = tls13Server(pki);
  const [ringA, ringB] = [new TicketKeyRing({ store, secret }), new TicketKeyRing({ store, secret })];
  await Promise.all([ringA.attach(a), ringB.attach(b)]);
  const [portA, portB] = [await listen(a), await listen(b)];
  try {
    // Each epoch key in the cluster was created by exactly one of the two rings (SET NX).
    const storedKeys = async () =>
      (await Promise.all(client.nodes('master').map((node) => node.keys('ring-test:ticket-key:*')))).flat().length;
    await waitFor(
      async () => ringA.stats().created + ringB.stats().created === (await storedKeys()),
      'the created keys to match the stored ones',
    );
    expect(ringA.stats().created + ringB.stats().created).toBeGreaterThanOrEqual(1);
    const first = await handshake(pki, portA);
    expect((await handshake(pki, portB, first.session)).reused).toBe(true);
  } finally {
    ringA.close();
    ringB.close();
    await close(a);
    await close(b);
  }
});
