/**
 * The README's fleet example, run verbatim: its code block is read from README.md, written to a
 * temporary directory next to key.pem and cert.pem, and started twice (two processes, one
 * redis-server) with REDIS_URL, TLS_SESSION_SECRET and PORT. `tls-session` resolves there to the
 * sources (lib/index.ts, through the fixtures' transpile hook). Also started before its Redis:
 * the members listen within a few seconds and serve full handshakes, and A→B resumption returns
 * once Redis runs, without restarting them. A member with an unhandled rejection would print it
 * and exit: both must stay up with an empty stderr.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { constants, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../helpers/free-port';
import { makePki, Pki } from '../helpers/pki';
import { RedisServer, startRedis } from './helpers/redis-server';
import { handshake, HTTP_GET_CLOSE } from './helpers/tls-peers';
import { waitFor } from './helpers/rotation';

const ROOT = join(__dirname, '..', '..');
const REGISTER_TS = join(__dirname, 'fixtures', 'register-ts.js');

let pki: Pki;
let dir: string;
const redises: RedisServer[] = [];
const members: ChildProcess[] = [];

/** The README's fleet code block, exactly as written. */
function readmeFleetExample(): string {
  const blocks = [...readFileSync(join(ROOT, 'README.md'), 'utf8').matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1]!);
  const fleet = blocks.filter((block) => block.includes('new RedisStore(') && block.includes('TicketKeyRing'));
  expect(fleet).toHaveLength(1);
  return fleet[0]!;
}

beforeAll(() => {
  pki = makePki();
  dir = mkdtempSync(join(tmpdir(), 'tls-session-readme-fleet-'));
  writeFileSync(join(dir, 'member.ts'), readmeFleetExample());
  writeFileSync(join(dir, 'key.pem'), pki.serverKey);
  writeFileSync(join(dir, 'cert.pem'), pki.serverCert);
  // What `npm install tls-session` would provide, pointing at the sources under test.
  mkdirSync(join(dir, 'node_modules', 'tls-session'), { recursive: true });
  writeFileSync(join(dir, 'node_modules', 'tls-session', 'package.json'), JSON.stringify({ name: 'tls-session', main: 'index.js' }));
  writeFileSync(
    join(dir, 'node_modules', 'tls-session', 'index.js'),
    `module.exports = require(${JSON.stringify(join(ROOT, 'lib', 'index.ts'))});\n`,
  );
});

afterAll(async () => {
  for (const member of members) if (member.exitCode === null && member.signalCode === null) member.kill('SIGKILL');
  for (const redis of redises) await redis.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface Member {
  port: number;
  child: ChildProcess;
  stderr: () => string;
}

async function startMember(redisUrl: string, secretHex: string): Promise<Member> {
  const port = await freePort();
  const child = spawn(process.execPath, ['-r', REGISTER_TS, 'member.ts'], {
    cwd: dir,
    env: { ...process.env, REDIS_URL: redisUrl, TLS_SESSION_SECRET: secretHex, PORT: String(port) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  members.push(child);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  return { port, child, stderr: () => stderr };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function listening(member: Member): Promise<void> {
  await waitFor(async () => {
    if (member.child.exitCode !== null) throw new Error(`member exited with code ${member.child.exitCode}: ${member.stderr()}`);
    return accepts(member.port);
  }, `the member on port ${member.port} to listen`);
}

/** A TLS 1.2 client without the ticket extension: resumes by session ID, through the store. */
const TLS12_SESSION_ID = { maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET } as const;

async function aToB(a: Member, b: Member, extra = {}): Promise<{ first: boolean; onB: boolean; body: string }> {
  const first = await handshake(pki, a.port, undefined, extra, HTTP_GET_CLOSE);
  const onB = await handshake(pki, b.port, first.session, extra, HTTP_GET_CLOSE);
  return { first: first.reused, onB: onB.reused, body: first.data };
}

function expectHealthy(...running: Member[]): void {
  for (const member of running) {
    expect(member.child.exitCode).toBeNull();
    expect(member.stderr()).toBe('');
  }
}

test('two members of the README fleet example on one Redis: a TLS 1.2 session and a TLS 1.3 ticket from A resume on B', async () => {
  const redis = await startRedis();
  redises.push(redis);
  const secretHex = randomBytes(32).toString('hex');
  const [a, b] = [await startMember(redis.url, secretHex), await startMember(redis.url, secretHex)];
  await listening(a);
  await listening(b);

  const tls12 = await aToB(a, b, TLS12_SESSION_ID);
  expect(tls12.body).toMatch(/hello\n$/);
  expect(tls12).toMatchObject({ first: false, onB: true });
  expect(await aToB(a, b)).toMatchObject({ first: false, onB: true });
  expectHealthy(a, b);
  a.child.kill('SIGKILL');
  b.child.kill('SIGKILL');
});

test('the README fleet example started before its Redis: members listen and serve full handshakes; once Redis runs, A→B resumes without a restart', async () => {
  const later = await startRedis({ launch: false });
  redises.push(later);
  const secretHex = randomBytes(32).toString('hex');
  const [a, b] = [await startMember(later.url, secretHex), await startMember(later.url, secretHex)];
  await listening(a);
  await listening(b);

  expect(await aToB(a, b, TLS12_SESSION_ID)).toMatchObject({ first: false, onB: false });
  expect(await aToB(a, b)).toMatchObject({ first: false, onB: false });

  await later.restart();
  await waitFor(async () => (await aToB(a, b)).onB, 'a TLS 1.3 ticket from A to resume on B (the rings converged)');
  await waitFor(async () => (await aToB(a, b, TLS12_SESSION_ID)).onB, 'a TLS 1.2 session from A to resume on B (the store reconnected)');
  expectHealthy(a, b);
  a.child.kill('SIGKILL');
  b.child.kill('SIGKILL');
});
