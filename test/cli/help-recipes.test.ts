/**
 * Every example (`  $ …` line) that any `tls-session … --help` prints runs here, as printed, against
 * real loopback servers: `example.com` becomes localhost, the example addresses become the ports
 * of test/cli/fixtures/probe-servers.js, /var/lib/myapp/ the working directory. The Redis ones
 * need a redis-server and are listed by name (the redis lane runs store against Redis).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../lib/persist';
import { buildNodeEnvelope } from '../../lib/node-session';
import { nodeClientSession, startNodeServer, startSServer } from '../helpers/peers';
import { makePki, type Pki } from '../helpers/pki';
import { root, runCli } from './cli';
import { fillStoreByHandshakes } from './fill-store';
import { startProbeServers, type ProbeServers } from './probe-servers';

const dir = mkdtempSync(join(tmpdir(), 'tls-session-help-recipes-'));
const work = join(dir, 'work');
const bin = join(dir, 'bin');
let pki: Pki;
let probeServers: ProbeServers;

/** The help texts of the command and of every subcommand. */
const HELP_PATHS = [
  [],
  ['inspect'],
  ['probe'],
  ['store'],
  ['store', 'stats'],
  ['store', 'ls'],
  ['store', 'purge'],
  ['store', 'verify'],
  ['demo'],
];
const REDIS_RECIPES = [
  'tls-session store verify --redis redis://:PASSWORD@10.0.0.5:6379 --secret-file /etc/myapp/tls-secret',
  'tls-session store ls --redis redis://127.0.0.1:6379 --json',
];

function recipes(): string[] {
  const all = new Set<string>();
  for (const path of HELP_PATHS) {
    const help = runCli([...path, '--help']);
    expect([path, help.status]).toEqual([path, 0]);
    for (const m of help.out.matchAll(/^ {2}\$ (.+)$/gm)) all.add(m[1]!);
  }
  return [...all];
}

beforeAll(async () => {
  mkdirSync(work);
  mkdirSync(bin);
  // `tls-session` on PATH: the command from its TypeScript sources.
  const script = join(bin, 'tls-session');
  writeFileSync(
    script,
    `#!/bin/sh\nexec "${process.execPath}" -r "${join(root, 'test', 'persist', 'fixtures', 'register-ts.js')}" "${join(root, 'lib', 'cli', 'main.ts')}" "$@"\n`,
  );
  chmodSync(script, 0o755);
  pki = makePki();
  probeServers = await startProbeServers(pki);
  // tls-sessions.db and secret.hex: a store a server wrote, sealed with that secret.
  const secret = randomBytes(32);
  writeFileSync(join(work, 'secret.hex'), `${secret.toString('hex')}\n`);
  const store = new SqliteStore({ path: join(work, 'tls-sessions.db'), sweepIntervalMs: 0 });
  await fillStoreByHandshakes(store, pki, { secret });
  await store.close();
  // node-session.bin: what a Node client's 'session' event gives (Node's envelope).
  const nodeServer = await startNodeServer({ pki });
  try {
    const { der } = await nodeClientSession(nodeServer.port, { pki, servername: 'localhost' });
    writeFileSync(join(work, 'node-session.bin'), buildNodeEnvelope('localhost', der));
  } finally {
    await nodeServer.close();
  }
}, 60_000);

afterAll(() => probeServers.stop());

/** The recipe with its example hosts, addresses and paths made local. */
function localise(recipe: string, port: number): string {
  const { fleetA, fleetB } = probeServers.ports;
  return recipe
    .replace(/example\.com:443/g, `localhost:${port}`)
    .replace(/example\.com/g, 'localhost')
    .replace(/10\.0\.0\.1:443/g, `127.0.0.1:${fleetA}`)
    .replace(/10\.0\.0\.[23]:443/g, `127.0.0.1:${fleetB}`)
    .replace(/\/var\/lib\/myapp\//g, '');
}

function sh(command: string): { status: number | null; stdout: string; stderr: string } {
  return spawnSync('sh', ['-c', command], {
    cwd: work,
    // The probe trusts the test CA as it trusts the system's: Node reads NODE_EXTRA_CA_CERTS.
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, NODE_EXTRA_CA_CERTS: pki.caCertPath },
    encoding: 'utf8',
    timeout: 60_000,
  });
}

/** The exit code each recipe should end with: the demo's broken restart is meant to fail. */
const expectedStatus = (recipe: string): number => (recipe.includes('--restart-with new-secret') ? 1 : 0);

test('the s_client recipe of inspect --help saves a TLS 1.3 session from openssl s_server and from a node:tls server', async () => {
  const recipe = recipes().find((line) => line.includes('openssl s_client'))!;
  expect(recipe).toContain('-sess_out session.pem');
  const sServer = await startSServer(pki, ['-tls1_3']);
  try {
    // openssl s_server, and a node:tls server in its own process (sh blocks this one).
    for (const port of [sServer.port, probeServers.ports.stored]) {
      const file = join(work, 'session.pem');
      rmSync(file, { force: true });
      // The file is what the recipe is for. (s_client's exit code reflects how the server ended the
      // connection: 1 when the probe server drops it without close_notify.)
      sh(localise(recipe, port));
      expect([port, existsSync(file) && statSync(file).size > 0]).toEqual([port, true]);
      const shown = runCli(['inspect', file]);
      expect(shown.status).toBe(0);
      expect(shown.out).toContain('    Protocol  : TLSv1.3\n');
    }
  } finally {
    await sServer.stop();
  }
  // Leave one for the inspect recipes below.
  sh(localise(recipe, probeServers.ports.stored));
  expect(existsSync(join(work, 'session.pem'))).toBe(true);
}, 60_000);

test('every other --help recipe runs as printed against local servers', () => {
  const list = recipes();
  expect(list.length).toBeGreaterThanOrEqual(12);
  for (const redis of REDIS_RECIPES) expect(list).toContain(redis);
  for (const recipe of list.filter((line) => !line.includes('openssl s_client') && !REDIS_RECIPES.includes(line))) {
    expect(recipe).toMatch(/^tls-session /);
    if (recipe.startsWith('tls-session inspect') && !existsSync(join(work, 'session.pem'))) {
      sh(
        localise(
          list.find((line) => line.includes('openssl s_client'))!,
          probeServers.ports.stored,
        ),
      );
    }
    // "stored": a node:tls server with attachSessionStore, so every probe check can resume.
    const result = sh(localise(recipe, probeServers.ports.stored));
    expect([recipe, result.status, result.stderr]).toEqual([recipe, expectedStatus(recipe), '']);
    expect([recipe, result.stdout.length > 0 || recipe.includes('> ')]).toEqual([recipe, true]);
  }
  expect(statSync(join(work, 'session.der')).size).toBeGreaterThan(0);
}, 120_000);

test('inspect: "SNI hostname" is what the DER holds: the name when the server acknowledged SNI, none when it did not', async () => {
  const recipe = recipes().find((line) => line.includes('openssl s_client'))!;
  // openssl s_server acknowledges SNI only with -servername; then OpenSSL records it in the client's session.
  const acking = await startSServer(pki, ['-tls1_3', '-servername', 'localhost', '-cert2', pki.serverCertPath, '-key2', pki.serverKeyPath]);
  const silent = await startSServer(pki, ['-tls1_3']);
  try {
    const sni = (port: number): string => {
      rmSync(join(work, 'session.pem'), { force: true });
      sh(localise(recipe, port));
      return /SNI hostname: (.*)/.exec(runCli(['inspect', join(work, 'session.pem')]).out)![1]!;
    };
    expect(sni(acking.port)).toBe('localhost');
    expect(sni(silent.port)).toBe('none');
  } finally {
    await acking.stop();
    await silent.stop();
  }
  expect(runCli(['inspect', '--help']).out).toContain('only\nwhen the server acknowledged it');
}, 60_000);
