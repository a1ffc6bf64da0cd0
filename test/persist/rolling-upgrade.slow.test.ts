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
import { startServerProcess, type ServerProcessConfig } from './helpers/server-process';
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

// Without another Node binary there is nothing to pair with (a developer's machine): say so.
(cases.length > 0 ? describe : describe.skip)('a fleet whose members run different Node releases', () => {
  test.each(cases.length > 0 ? cases : [['none', '']])(
    `${process.version} and %s share one SQLite store: resumption where Node permits it, no record lost`,
    async (_version, otherNode) => {
      const config: ServerProcessConfig = {
        store: 'sqlite',
        path: join(dir, `${randomBytes(4).toString('hex')}.db`),
        mode: 'tls12-store',
        secretHex: randomBytes(32).toString('hex'),
        certPath: pki.serverCertPath,
        keyPath: pki.serverKeyPath,
      };
      const other = await startServerProcess(config, [], otherNode);
      const mine = await startServerProcess(config);
      try {
        const compatible = other.binding === mine.binding;
        const fromOther = await handshake(pki, other.port);
        const fromMine = await handshake(pki, mine.port);
        expect([fromOther.reused, fromMine.reused]).toEqual([false, false]);
        // Across members: as Node permits.
        expect((await handshake(pki, mine.port, fromOther.session)).reused).toBe(compatible);
        expect((await handshake(pki, other.port, fromMine.session)).reused).toBe(compatible);
        // Each member's own sessions still resume: nobody deleted them.
        expect((await handshake(pki, other.port, fromOther.session)).reused).toBe(true);
        expect((await handshake(pki, mine.port, fromMine.session)).reused).toBe(true);
      } finally {
        const [otherStats, mineStats] = [(await other.stop()).stats, (await mine.stop()).stats];
        const compatible = other.binding === mine.binding;
        for (const stats of [otherStats, mineStats]) {
          expect(stats).toMatchObject({ rejected: 0, errors: 0, incompatible: compatible ? 0 : 1, hits: compatible ? 2 : 1 });
        }
      }
    },
  );

  test.each(cases.length > 0 ? cases : [['none', '']])(
    `${process.version} and %s share TLS 1.3 ticket keys (TicketKeyRing): tickets resume across them where Node permits it`,
    async (_version, otherNode) => {
      const config: ServerProcessConfig = {
        store: 'sqlite',
        path: join(dir, `${randomBytes(4).toString('hex')}.db`),
        mode: 'tls13-ring',
        secretHex: randomBytes(32).toString('hex'),
        certPath: pki.serverCertPath,
        keyPath: pki.serverKeyPath,
      };
      const other = await startServerProcess(config, [], otherNode);
      const mine = await startServerProcess(config);
      try {
        const compatible = other.binding === mine.binding;
        const fromOther = await handshake(pki, other.port);
        const fromMine = await handshake(pki, mine.port);
        expect([fromOther.protocol, fromMine.protocol]).toEqual(['TLSv1.3', 'TLSv1.3']);
        // The ring's shared key opens the ticket on either member; OpenSSL then compares the
        // session ID context in it, so only members that bind alike resume.
        expect((await handshake(pki, mine.port, fromOther.session)).reused).toBe(compatible);
        expect((await handshake(pki, other.port, fromMine.session)).reused).toBe(compatible);
        expect((await handshake(pki, other.port, fromOther.session)).reused).toBe(true);
        expect((await handshake(pki, mine.port, fromMine.session)).reused).toBe(true);
      } finally {
        await other.stop();
        await mine.stop();
      }
    },
  );
});
