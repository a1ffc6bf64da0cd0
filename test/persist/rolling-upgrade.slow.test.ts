/**
 * A rolling upgrade: two fleet members on different Node releases share one SQLite store (each
 * its own process; one on this process's Node, one on each binary in TLS_SESSION_OTHER_NODE,
 * colon-separated, which .ci/run sets to the newest 24.x and 26.x from npm). Where both bind
 * server sessions the same way (node-internals.ts, sessionBinding), each resumes the other's
 * sessions; where they do not, OpenSSL cannot resume across them: a full handshake, counted as
 * `incompatible`, and no member deletes the other's records (each still resumes its own).
 * Before the fix, the member that could not use a record deleted it.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makePki, type Pki } from '../helpers/pki';
import { startServerProcess, type ServerProcess, type ServerProcessConfig } from './helpers/server-process';
import { handshake } from './helpers/tls-peers';

const others = (process.env.TLS_SESSION_OTHER_NODE ?? '').split(':').filter(Boolean);
if (process.env.CI && others.length === 0) {
  throw new Error('TLS_SESSION_OTHER_NODE is not set: .ci/run sets it to other Node releases (the rolling-upgrade fleet needs one)');
}

let pki: Pki;
let dir: string;
beforeAll(() => {
  pki = makePki();
  dir = mkdtempSync(join(tmpdir(), 'tls-session-rolling-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cases = others.map((node) => [execFileSync(node, ['--version'], { encoding: 'utf8' }).trim(), node] as const);

/** Two members on one SQLite file: one on `otherNode`, one on this process's Node. */
async function members(mode: ServerProcessConfig['mode'], otherNode: string): Promise<[ServerProcess, ServerProcess]> {
  const config: ServerProcessConfig = {
    store: 'sqlite',
    path: join(dir, `${randomBytes(4).toString('hex')}.db`),
    mode,
    secretHex: randomBytes(32).toString('hex'),
    certPath: pki.serverCertPath,
    keyPath: pki.serverKeyPath,
  };
  const other = await startServerProcess(config, [], otherNode);
  try {
    return [other, await startServerProcess(config)];
  } catch (error) {
    await other.stop();
    throw error;
  }
}

/**
 * Each member issues a session; each offers it to the other (resumes where Node permits) and to
 * itself (always resumes: nobody deleted it). Returns whether the two bind alike.
 */
async function crossResume(other: ServerProcess, mine: ServerProcess, protocol: string): Promise<boolean> {
  const compatible = other.binding === mine.binding;
  const fromOther = await handshake(pki, other.port);
  const fromMine = await handshake(pki, mine.port);
  expect([fromOther.protocol, fromMine.protocol]).toEqual([protocol, protocol]);
  expect([fromOther.reused, fromMine.reused]).toEqual([false, false]);
  expect((await handshake(pki, mine.port, fromOther.session)).reused).toBe(compatible);
  expect((await handshake(pki, other.port, fromMine.session)).reused).toBe(compatible);
  expect((await handshake(pki, other.port, fromOther.session)).reused).toBe(true);
  expect((await handshake(pki, mine.port, fromMine.session)).reused).toBe(true);
  return compatible;
}

// Without another Node binary there is nothing to pair with (a developer's machine): say so.
(cases.length > 0 ? describe : describe.skip)('a fleet whose members run different Node releases', () => {
  const each = test.each(cases.length > 0 ? cases : [['none', '']]);

  each(
    `${process.version} and %s share TLS 1.2 sessions through one SQLite store: resumed where Node permits it, none lost`,
    async (_v, node) => {
      const [other, mine] = await members('tls12-store', node);
      let compatible: boolean | undefined;
      try {
        compatible = await crossResume(other, mine, 'TLSv1.2');
      } finally {
        const stats = [(await other.stop()).stats, (await mine.stop()).stats];
        if (compatible !== undefined) {
          for (const s of stats)
            expect(s).toMatchObject({ rejected: 0, errors: 0, incompatible: compatible ? 0 : 1, hits: compatible ? 2 : 1 });
        }
      }
    },
  );

  // The ring's shared key opens the ticket on either member; OpenSSL then compares the session ID
  // context inside it, so only members that bind alike resume each other's tickets.
  each(
    `${process.version} and %s share TLS 1.3 ticket keys (TicketKeyRing): tickets resume across them where Node permits it`,
    async (_v, node) => {
      const [other, mine] = await members('tls13-ring', node);
      try {
        await crossResume(other, mine, 'TLSv1.3');
      } finally {
        await other.stop();
        await mine.stop();
      }
    },
  );
});
