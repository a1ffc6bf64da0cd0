/**
 * `tls-session store` on a real password-protected redis-server written by attachSessionStore and
 * TicketKeyRing; the password never shows. Also RedisStore#entries() (SCAN) on its own: several
 * SCAN batches with keys deleted mid-scan, and every master of a Redis Cluster.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { RedisStore } from '../../lib/persist';
import type { StoredEntry } from '../../lib/persist/stores/contract';
import { freePort } from '../helpers/free-port';
import { makePki } from '../helpers/pki';
import { startRedisCluster } from '../persist/helpers/redis-cluster';
import { RedisServer, startRedis } from '../persist/helpers/redis-server';
import { CliResult, runCliKeeping } from './cli';
import { fillStoreByHandshakes } from './fill-store';

const dir = mkdtempSync(join(tmpdir(), 'tls-session-cli-redis-'));
const secret = randomBytes(32);
const secretFile = join(dir, 'secret.hex');
const password = `pw-${randomBytes(12).toString('hex')}`;
const scope = 'cli-redis-scope';
let redis: RedisServer;
/** The URL as the CLI must print it. */
let shownUrl: string;
let admin: Redis;
const sessionKeys: string[] = [];
let tamperedKey = '';
/** Ticket keys the ring stored: the current epoch's, plus the next one's in the second half of an epoch. */
let ticketKeys = 0;

/** Runs the CLI and checks that neither the password nor the secret appears in what it printed. */
const cli = (args: string[]): CliResult => runCliKeeping([password, secret.toString('hex')], args);

beforeAll(async () => {
  writeFileSync(secretFile, `${secret.toString('hex')}\n`);
  redis = await startRedis({ password });
  expect(redis.url).toBe(`redis://:${password}@127.0.0.1:${redis.port}`);
  shownUrl = `redis://:***@127.0.0.1:${redis.port}`;
  admin = new Redis(redis.url);
  const store = new RedisStore({ url: redis.url, budgetMs: 5000 });
  await store.ready();
  await fillStoreByHandshakes(store, makePki(), { secret, scope, budgetMs: 5000 });
  // attachSessionStore stores after the handshake: wait for the three records.
  for (let attempt = 0; (await admin.keys('tls-session:session:*')).length < 3; attempt++) {
    if (attempt > 100) throw new Error('attachSessionStore did not store three sessions in Redis');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await store.close();
  for (const key of await admin.keys('tls-session:session:*')) sessionKeys.push(key.slice('tls-session:'.length));
  ticketKeys = (await admin.keys('tls-session:ticket-key:*')).length;
  expect([1, 2]).toContain(ticketKeys);
  expect(sessionKeys).toHaveLength(3);
  // A tampered record: one ciphertext byte flipped, its TTL kept.
  tamperedKey = sessionKeys[0]!;
  const value = (await admin.getBuffer(`tls-session:${tamperedKey}`))!;
  value[value.length - 20] ^= 0x01;
  expect(await admin.set(`tls-session:${tamperedKey}`, value, 'KEEPTTL')).toBe('OK');
  // A key of another application under another prefix: never listed.
  await admin.set('other-app:key', 'x');
}, 60_000);

afterAll(async () => {
  admin?.disconnect();
  await redis?.stop();
});

/** "session 3, ticket-key 2" → { session: 3, 'ticket-key': 2 } (SCAN order decides the order). */
function countsOf(line: string): Record<string, number> {
  return Object.fromEntries(line.split(', ').map((part) => [part.replace(/ \d+$/, ''), Number(part.replace(/^.* /, ''))]));
}

test('stats counts the records by kind, protocol and expiry and names the store without the password', () => {
  const result = cli(['store', 'stats', '--redis', redis.url, '--secret-file', secretFile]);
  expect([result.status, result.err]).toEqual([0, '']);
  const fields = Object.fromEntries(
    result.out
      .trimEnd()
      .split('\n')
      .map((line) => line.split(/: +/) as [string, string]),
  );
  expect(Object.keys(fields)).toEqual(['store', 'records', 'by kind', 'by protocol', 'by expiry', 'unreadable']);
  expect(fields['store']).toBe(`redis ${shownUrl}`);
  // The tampered record does not open.
  expect(fields['records']).toBe(`${3 + ticketKeys} (${3 + ticketKeys} sealed)`);
  expect(countsOf(fields['by kind']!)).toEqual({ session: 3, 'ticket-key': ticketKeys });
  expect(countsOf(fields['by protocol']!)).toEqual({ 'TLSv1.2': 2, unreadable: 1 });
  // Redis expires records itself: every record has a TTL in the future.
  expect(Object.keys(countsOf(fields['by expiry']!)).filter((bucket) => bucket === 'expired' || bucket === 'no expiry')).toEqual([]);
  expect(fields['unreadable']).toBe('1');
});

test('ls lists the keys under the prefix with metadata, never values', () => {
  const result = cli(['store', 'ls', '--redis', redis.url, '--secret-file', secretFile]);
  expect([result.status, result.err]).toEqual([0, '']);
  const lines = result.out.trimEnd().split('\n');
  expect(lines[0]).toMatch(/^KEY +KIND +BYTES +SEALED +EXPIRES +PROTOCOL +CIPHER$/);
  expect(lines).toHaveLength(1 + 3 + ticketKeys);
  for (const key of sessionKeys.slice(1))
    expect(result.out).toMatch(new RegExp(`^${key} +session +\\d+ +yes +in .+ +TLSv1\\.2 +\\S+`, 'm'));
  expect(result.out).toMatch(new RegExp(`^${tamperedKey} +session +\\d+ +yes +in .+ +unreadable$`, 'm')); // fails to open even with the secret
  expect(result.out).toMatch(/^ticket-key:3600:\d+ +ticket-key +\d+ +yes +in /m);
  expect(result.out).not.toContain('other-app');
});

test('purge on Redis deletes nothing and says that Redis expires records itself', () => {
  const result = cli(['store', 'purge', '--redis', redis.url]);
  expect([result.status, result.out, result.err]).toEqual([0, `purged 0: Redis deletes expired records itself (redis ${shownUrl})\n`, '']);
  const json = cli(['store', 'purge', '--redis', redis.url, '--json']);
  expect(JSON.parse(json.out)).toEqual({ store: `redis ${shownUrl}`, purged: 0 });
});

test('verify flags the tampered record (exit 1) and keeps it; --delete-bad deletes it', async () => {
  const report = cli(['store', 'verify', '--redis', redis.url, '--secret-file', secretFile, '--scope', scope]);
  expect([report.status, report.err]).toEqual([1, '']);
  expect(report.out).toBe(
    `BAD  ${tamperedKey}: sealed record failed authentication (tampered, or stored under another key)\n` +
      `checked ${3 + ticketKeys} record(s) in redis ${shownUrl} with the secret and scope: ${2 + ticketKeys} ok, 1 bad (--delete-bad deletes them)\n`,
  );
  expect(await admin.exists(`tls-session:${tamperedKey}`)).toBe(1);
  const fixed = cli(['store', 'verify', '--redis', redis.url, '--secret-file', secretFile, '--scope', scope, '--delete-bad', '--json']);
  expect([fixed.status, fixed.err]).toEqual([0, '']);
  expect(JSON.parse(fixed.out)).toEqual({
    store: `redis ${shownUrl}`,
    checked: 3 + ticketKeys,
    ok: 2 + ticketKeys,
    bad: 1,
    deleted: 1,
    problems: [{ key: tamperedKey, problem: 'sealed record failed authentication (tampered, or stored under another key)' }],
  });
  expect(await admin.exists(`tls-session:${tamperedKey}`)).toBe(0);
  for (const key of sessionKeys.slice(1)) expect(await admin.exists(`tls-session:${key}`)).toBe(1);
  const again = cli(['store', 'verify', '--redis', redis.url, '--secret-file', secretFile]);
  expect([again.status, again.out]).toEqual([
    0,
    `checked ${2 + ticketKeys} record(s) in redis ${shownUrl} with the secret: ${2 + ticketKeys} ok, 0 bad\n`,
  ]);
});

/** One line on stderr, exit 1, nothing on stdout; with --debug a stack may follow, still without the password. */
function expectOneLineFailure(result: CliResult, line: RegExp): void {
  expect([result.status, result.out]).toEqual([1, '']);
  expect(result.err.split('\n')).toHaveLength(2);
  expect(result.err).toMatch(line);
}

test('a wrong password, no password or a closed port fail with one line and exit 1, never echoing the password', async () => {
  const wrongPassword = `wrong-${randomBytes(8).toString('hex')}`;
  const wrong = cli(['store', 'ls', '--redis', `redis://:${wrongPassword}@127.0.0.1:${redis.port}`]);
  expectOneLineFailure(wrong, new RegExp(`^tls-session: cannot connect to redis://:\\*\\*\\*@127\\.0\\.0\\.1:${redis.port}: WRONGPASS`));
  expect(wrong.err).not.toContain(wrongPassword);
  const none = cli(['store', 'stats', '--redis', `redis://127.0.0.1:${redis.port}`]);
  expectOneLineFailure(
    none,
    new RegExp(`^tls-session: cannot connect to redis://127\\.0\\.0\\.1:${redis.port}: NOAUTH Authentication required\\.\\n$`),
  );
  const closedPort = await freePort();
  const closed = cli(['store', 'verify', '--redis', `redis://:${password}@127.0.0.1:${closedPort}`, '--secret-file', secretFile]);
  expectOneLineFailure(
    closed,
    new RegExp(
      `^tls-session: cannot connect to redis://:\\*\\*\\*@127\\.0\\.0\\.1:${closedPort}: connect ECONNREFUSED 127\\.0\\.0\\.1:${closedPort}\\n$`,
    ),
  );
  // --debug adds the stack: still no password (cli() checks), and the URL shown redacted.
  const debug = cli(['--debug', 'store', 'ls', '--redis', `redis://user:${password}@127.0.0.1:${closedPort}`]);
  expect([debug.status, debug.out]).toEqual([1, '']);
  expect(debug.err.split('\n')[0]).toBe(
    `tls-session: cannot connect to redis://user:***@127.0.0.1:${closedPort}: connect ECONNREFUSED 127.0.0.1:${closedPort}`,
  );
  expect(debug.err).toMatch(/\n {4}at /);
  const debugOk = cli(['--debug', 'store', 'stats', '--redis', redis.url]);
  expect([debugOk.status, debugOk.err]).toEqual([0, '']);
  expect(debugOk.out).toContain(`redis ${shownUrl}`);
  const notRedis = cli(['store', 'ls', '--redis', `http://:${password}@127.0.0.1:${redis.port}`]);
  expect([notRedis.status, notRedis.err]).toEqual([
    2,
    `tls-session: --redis must be a redis:// or rediss:// URL, not http://:***@127.0.0.1:${redis.port}/\n`,
  ]);
});

async function collect(store: RedisStore, onEntry?: (entry: StoredEntry, index: number) => Promise<void>): Promise<StoredEntry[]> {
  const entries: StoredEntry[] = [];
  for await (const entry of store.entries()) {
    entries.push(entry);
    await onEntry?.(entry, entries.length - 1);
  }
  return entries;
}

test('RedisStore#entries() reads every key under its prefix over several SCAN batches; keys deleted mid-scan are not invented', async () => {
  // A prefix with glob characters: SCAN MATCH must take them literally.
  const keyPrefix = 'scan[1]*?:';
  const client = new Redis(redis.url);
  const store = new RedisStore({ client, keyPrefix, budgetMs: 5000 });
  try {
    const total = 700;
    const pipeline = client.pipeline();
    for (let i = 0; i < total; i++) pipeline.set(`${keyPrefix}k${i}`, `v${i}`, 'EX', 600);
    pipeline.set(`${keyPrefix}forever`, 'no ttl');
    // Keys a naive glob would match: scan1x:..., scan]...
    for (let i = 0; i < 50; i++) pipeline.set(`scan1ab:k${i}`, 'x');
    await pipeline.exec();
    const deleted = new Set<string>();
    const entries = await collect(store, async (_entry, index) => {
      if (index !== 0) return;
      // After the first entry: delete 60 keys; SCAN continues from its cursor.
      for (let i = 0; i < total && deleted.size < 60; i += 11) {
        deleted.add(`k${i}`);
        await client.del(`${keyPrefix}k${i}`);
      }
    });
    const keys = entries.map((entry) => entry.key);
    expect(new Set(keys).size).toBe(keys.length);
    const expected = [...Array.from({ length: total }, (_, i) => `k${i}`), 'forever'];
    // Every key that lived through the scan is there, nothing else is.
    for (const key of expected) if (!deleted.has(key)) expect(keys).toContain(key);
    for (const key of keys) expect(expected).toContain(key);
    // Deleted keys show up only when their batch was read before the deletion (one batch, COUNT 200).
    expect(keys.filter((key) => deleted.has(key)).length).toBeLessThan(deleted.size);
    for (const entry of entries) {
      if (entry.key === 'forever') {
        expect([entry.value.toString(), entry.expiresAt]).toEqual(['no ttl', undefined]);
      } else {
        expect(entry.value.toString()).toBe(`v${entry.key.slice(1)}`);
        const left = entry.expiresAt!.getTime() - Date.now();
        expect(left).toBeGreaterThan(500_000);
        expect(left).toBeLessThanOrEqual(600_000);
      }
    }
  } finally {
    await store.close();
    client.disconnect();
  }
});

test('RedisStore#entries() on a Redis Cluster reads the keys of every master', async () => {
  const cluster = await startRedisCluster();
  const client = new Cluster(cluster.nodes, { enableOfflineQueue: true, slotsRefreshInterval: 0 });
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('ready', () => resolve());
      client.once('error', reject);
    });
    const store = new RedisStore({ client, budgetMs: 5000 });
    // More than one SCAN batch (COUNT 200) on each of the three masters.
    const total = 900;
    for (let i = 0; i < total; i += 100) {
      await Promise.all(
        Array.from({ length: 100 }, (_, j) =>
          store.set(`session:${(i + j).toString(16).padStart(4, '0')}`, Buffer.from([(i + j) & 0xff]), 600),
        ),
      );
    }
    await client.set('elsewhere:key', 'x');
    const perNode = await Promise.all(client.nodes('master').map((node) => node.dbsize()));
    expect(perNode).toHaveLength(3);
    for (const keys of perNode) expect(keys).toBeGreaterThan(200);
    const entries = await collect(store);
    expect(entries.map((entry) => entry.key).sort()).toEqual(
      Array.from({ length: total }, (_, i) => `session:${i.toString(16).padStart(4, '0')}`),
    );
    for (const entry of entries) expect(entry.value).toEqual(Buffer.from([parseInt(entry.key.slice('session:'.length), 16) & 0xff]));
    await store.close();
  } finally {
    client.disconnect();
    await cluster.stop();
  }
}, 60_000);
