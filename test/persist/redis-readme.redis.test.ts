/**
 * The README's "Redis clients and servers" examples, run verbatim: each ```mjs block that makes a
 * `RedisStore({ client })` is written to a temporary app as example.mjs, followed by a few lines
 * of this test that use `store` and `client` (store, read back, close the store, show the client
 * is still open), and run by Node against a real redis-server or three-master Cluster. In the app,
 * `tls-session` is the sources under test (through the fixtures' transpile hook) and the clients
 * are this repository's devDependencies.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as lib from '../../lib';
import { codeBlocks, REGISTER_TS, ROOT } from './helpers/readme-example';
import { RedisCluster, startRedisCluster } from './helpers/redis-cluster';
import { RedisServer, startRedis } from './helpers/redis-server';

/** What the test appends to each block: uses the block's `store` and `client`. */
const EPILOGUE = `
await store.ready();
await store.set('readme', Buffer.from('stored and read back'), 60);
console.log((await store.get('readme')).toString());
await store.close();
console.log(\`client still open: \${client.status === 'ready' || client.isOpen === true}\`);
if (typeof client.destroy === 'function') client.destroy();
else client.disconnect();
`;

let redis: RedisServer;
let cluster: RedisCluster;
let dir: string;

beforeAll(async () => {
  redis = await startRedis();
  cluster = await startRedisCluster();
  dir = mkdtempSync(join(tmpdir(), 'tls-session-readme-clients-'));
  // `tls-session` as the sources under test, with its names spelled out so that an ES module's
  // named imports find them (Node reads a CommonJS module's exports from its text).
  const shim = join(dir, 'node_modules', 'tls-session');
  mkdirSync(shim, { recursive: true });
  writeFileSync(join(shim, 'package.json'), JSON.stringify({ name: 'tls-session', main: 'index.js' }));
  writeFileSync(
    join(shim, 'index.js'),
    `const lib = require(${JSON.stringify(join(ROOT, 'lib', 'index.ts'))});\n` +
      Object.keys(lib)
        .map((name) => `exports.${name} = lib.${name};\n`)
        .join(''),
  );
  for (const client of ['ioredis', 'iovalkey', 'redis']) symlinkSync(join(ROOT, 'node_modules', client), join(dir, 'node_modules', client));
}, 90_000);

afterAll(async () => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  await redis?.stop();
  await cluster?.stop();
});

function run(file: string, env: Record<string, string>): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-r', REGISTER_TS, file], {
      cwd: dir,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('exit', (status) => resolve({ status, stdout, stderr }));
  });
}

const examples = codeBlocks('README.md', 'mjs').filter((block) => block.includes('new RedisStore({ client })'));

test('the README has one example per client kind, each two lines after its imports', () => {
  expect(examples.map((block) => /from '([^']+)'/.exec(block)![1])).toEqual(['ioredis', 'iovalkey', 'redis', 'redis']);
  for (const block of examples) expect(block.split('\n').filter((line) => line !== '' && !line.startsWith('import '))).toHaveLength(2);
});

test.each(examples.map((block, i) => [`${i + 1}: ${block.split('\n')[0]}`, block]))(
  'README example %s runs against a real server',
  async (_label, block) => {
    const file = `example-${examples.indexOf(block) + 1}.mjs`;
    writeFileSync(join(dir, file), block + EPILOGUE);
    const seed = cluster.nodes[0]!;
    const result = await run(file, { REDIS_URL: redis.url, REDIS_CLUSTER_URL: `redis://${seed.host}:${seed.port}` });
    expect(result).toEqual({ status: 0, stdout: 'stored and read back\nclient still open: true\n', stderr: '' });
  },
  60_000,
);
