/**
 * `tls-session store` against what else can sit under its Redis prefix, and every URL form of a
 * password. Regressions: a key of another type was skipped silently; a key no tls-session part
 * writes counted as ok; `--delete-bad` aborted on a key longer than 512 characters and deleted
 * nothing; a `?password=` URL was printed with its password (stats line, errors, --debug).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { RedisStore } from '../../lib/persist';
import { freePort } from '../helpers/free-port';
import { makePki } from '../helpers/pki';
import { RedisServer, startRedis } from '../persist/helpers/redis-server';
import { CliResult, runCliKeeping } from './cli';
import { fillStoreByHandshakes } from './fill-store';

const dir = mkdtempSync(join(tmpdir(), 'tls-session-cli-verify-'));
const secret = randomBytes(32);
const secretFile = join(dir, 'secret.hex');
const password = `pw-${randomBytes(12).toString('hex')}`;
let redis: RedisServer;
let admin: Redis;
let queryUrl: string;
const hashKey = 'session:a-hash';
const longKey = `session:${'ab'.repeat(300)}`;
const foreignKey = 'cache:not-ours';

/** Runs the CLI; neither the password nor the secret may appear in anything it prints. */
const cli = (args: string[]): CliResult => runCliKeeping([password, secret.toString('hex')], args);

beforeAll(async () => {
  writeFileSync(secretFile, `${secret.toString('hex')}\n`);
  redis = await startRedis({ password });
  queryUrl = `redis://127.0.0.1:${redis.port}/?password=${password}`;
  admin = new Redis(redis.url);
  const store = new RedisStore({ url: redis.url, budgetMs: 5000 });
  await store.ready();
  await fillStoreByHandshakes(store, makePki(), { secret, budgetMs: 5000 });
  for (let attempt = 0; (await admin.keys('tls-session:session:*')).length < 3; attempt++) {
    if (attempt > 100) throw new Error('attachSessionStore did not store three sessions in Redis');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await store.close();
  await admin.hset(`tls-session:${hashKey}`, 'field', 'value');
  await admin.set(`tls-session:${longKey}`, 'not a record', 'EX', 3600);
  await admin.set(`tls-session:${foreignKey}`, 'x', 'EX', 3600);
}, 60_000);

afterAll(async () => {
  admin?.disconnect();
  await redis?.stop();
});

test('a ?password= URL connects and is printed with *** in the stats line', () => {
  const stats = cli(['store', 'stats', '--redis', queryUrl, '--json']);
  expect([stats.status, stats.err]).toEqual([0, '']);
  expect(JSON.parse(stats.out).store).toBe(`redis redis://127.0.0.1:${redis.port}/?password=***`);
});

test('no URL form of a password shows in errors or --debug stacks', async () => {
  const closed = await freePort();
  for (const url of [
    `redis://127.0.0.1:${closed}/?password=${password}`,
    `redis://default@127.0.0.1:${closed}?password=${password}`,
    `redis://${password}@127.0.0.1:${closed}`, // the legacy form: a lone user part older clients read as the password
    `redis://user:${password}@127.0.0.1:${closed}`,
  ]) {
    const result = cli(['--debug', 'store', 'ls', '--redis', url]);
    expect([result.status, result.out]).toEqual([1, '']);
    const line = result.err.split('\n')[0]!;
    expect(line).toMatch(new RegExp(`^tls-session: cannot connect to redis://\\S*127\\.0\\.0\\.1:${closed}\\S*: connect ECONNREFUSED`));
    expect(line).toContain('***');
    expect(result.err).toMatch(/\n {4}at /); // the stack was printed, and cli() found no password in it
  }
  const notRedis = cli(['store', 'ls', '--redis', `http://127.0.0.1:${closed}/?password=${password}`]);
  expect([notRedis.status, notRedis.err]).toEqual([
    2,
    `tls-session: --redis must be a redis:// or rediss:// URL, not http://127.0.0.1:${closed}/?password=***\n`,
  ]);
});

test('verify reports a key of another type, a key tls-session does not write and a long bad key; --delete-bad deletes the bad records it owns', async () => {
  const report = cli(['store', 'verify', '--redis', redis.url, '--secret-file', secretFile, '--json']);
  expect([report.status, report.err]).toEqual([1, '']);
  const problems = new Map<string, string>(
    JSON.parse(report.out).problems.map(({ key, problem }: { key: string; problem: string }) => [key, problem]),
  );
  expect([...problems.keys()].sort()).toEqual([foreignKey, hashKey, longKey].sort());
  expect(problems.get(hashKey)).toMatch(/^not a string value: WRONGTYPE/);
  expect(problems.get(foreignKey)).toBe('not a record tls-session writes (key is not session:, ticket-key: or client:)');
  const fixed = cli(['store', 'verify', '--redis', redis.url, '--secret-file', secretFile, '--delete-bad', '--json']);
  // The foreign key is reported, never deleted: the run still ends with exit 1.
  expect([fixed.status, fixed.err]).toEqual([1, '']);
  expect(JSON.parse(fixed.out)).toMatchObject({ bad: 3, deleted: 2 });
  expect(await admin.exists(`tls-session:${hashKey}`, `tls-session:${longKey}`)).toBe(0);
  expect(await admin.exists(`tls-session:${foreignKey}`)).toBe(1);
  expect((await admin.keys('tls-session:session:*')).length).toBe(3);
});
