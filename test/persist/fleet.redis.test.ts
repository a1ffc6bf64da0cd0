/**
 * Fleet: two server processes (started with different arguments) share a redis-server spawned
 * on a free loopback port. A TLS 1.2 session from A resumes on B through the store; a TLS 1.3
 * ticket from A resumes on B through TicketKeyRing.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { makePki, Pki } from '../helpers/pki';
import { RedisServer, startRedis } from './helpers/redis-server';
import { ServerProcess, ServerProcessConfig, startServerProcess } from './helpers/server-process';
import { handshake } from './helpers/tls-peers';

let pki: Pki;
let redis: RedisServer;
const running: ServerProcess[] = [];

beforeAll(async () => {
  pki = makePki();
  redis = await startRedis();
});

afterAll(async () => {
  for (const server of running.splice(0)) {
    if (server.child.exitCode === null) await server.stop().catch(() => undefined);
  }
  await redis.stop();
});

async function pair(config: ServerProcessConfig): Promise<[ServerProcess, ServerProcess]> {
  const a = await startServerProcess(config, ['--fleet-member=A']);
  running.push(a);
  const b = await startServerProcess(config, ['--fleet-member=B', '--verbose']);
  running.push(b);
  return [a, b];
}

test.each([
  ['sealed', randomBytes(32).toString('hex')],
  ['not sealed', undefined],
])('TLS 1.2: a session issued by server A resumes on server B through Redis (%s)', async (_name, secretHex) => {
  const [a, b] = await pair({
    store: 'redis',
    url: redis.url,
    mode: 'tls12-store',
    secretHex,
    certPath: pki.serverCertPath,
    keyPath: pki.serverKeyPath,
  });
  const first = await handshake(pki, a.port);
  expect(first.protocol).toBe('TLSv1.2');
  expect(first.reused).toBe(false);
  const onB = await handshake(pki, b.port, first.session);
  expect(onB.reused).toBe(true);
  const [statsA, statsB] = [await a.stop(), await b.stop()];
  expect(statsA.stats.stored).toBe(1);
  expect(statsB.stats.hits).toBe(1);
});

test('TLS 1.3: a ticket issued by server A resumes on server B through TicketKeyRing', async () => {
  const [a, b] = await pair({
    store: 'redis',
    url: redis.url,
    mode: 'tls13-ring',
    secretHex: randomBytes(32).toString('hex'),
    certPath: pki.serverCertPath,
    keyPath: pki.serverKeyPath,
  });
  const first = await handshake(pki, a.port);
  expect(first.protocol).toBe('TLSv1.3');
  expect(first.reused).toBe(false);
  const onB = await handshake(pki, b.port, first.session);
  expect(onB.reused).toBe(true);
  const [statsA, statsB] = [await a.stop(), await b.stop()];
  // Each epoch key in Redis was created by one of the two (the other read it).
  const raw = new Redis(redis.url);
  try {
    const stored = await raw.keys('tls-session:ticket-key:*');
    expect(stored.length).toBeGreaterThanOrEqual(1);
    expect(Number(statsA.ring!.created) + Number(statsB.ring!.created)).toBe(stored.length);
  } finally {
    raw.disconnect();
  }
});
