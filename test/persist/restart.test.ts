/**
 * Restart: a TLS 1.2 server process with SqliteStore issues a session to a real external client
 * (openssl s_client -sess_out), exits; a new process on the same database file resumes it
 * (openssl s_client -sess_in prints "Reused"). Once per SQLite backend that loads on this Node,
 * and, where both load, across them (a server that moves from Node 20's better-sqlite3 to Node
 * 24's node:sqlite keeps its sessions).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { SqliteBackendName } from '../../lib/persist/stores/sqlite-backends';
import { makePki, Pki } from '../helpers/pki';
import { startServerProcess } from './helpers/server-process';
import { availableBackends, SQLITE_BACKENDS } from './helpers/sqlite-backends';

let pki: Pki;
let dir: string;
beforeAll(() => {
  pki = makePki();
  dir = mkdtempSync(join(tmpdir(), 'tls-session-restart-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs openssl s_client once (stdin closed, so it disconnects right after the handshake). */
function sClient(port: number, sessionArgs: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-tls1_2', '-CAfile', pki.caCertPath, ...sessionArgs],
      { timeout: 20_000 },
      (error, stdout) => {
        // s_client exits non-zero on some close paths; the transcript is what we judge.
        if (error && !stdout) reject(error);
        else resolve(stdout);
      },
    );
    child.stdin!.end();
  });
}

const cases: Array<[string, SqliteBackendName, SqliteBackendName]> = [
  ...SQLITE_BACKENDS.map((backend): [string, SqliteBackendName, SqliteBackendName] => [backend, backend, backend]),
  ['better-sqlite3, then node:sqlite', 'better-sqlite3', 'node:sqlite'],
];

describe.each(cases)('SqliteStore on %s', (_name, before, after) => {
  const runs = availableBackends.includes(before) && availableBackends.includes(after);
  (runs ? test : test.skip)('a session issued before a restart is resumed by openssl s_client after it', () => restart(before, after));
});

async function restart(beforeBackend: SqliteBackendName, afterBackend: SqliteBackendName): Promise<void> {
  const path = join(dir, `sessions-${beforeBackend}-${afterBackend}.db`);
  const sessionFile = join(dir, `openssl-${beforeBackend}-${afterBackend}.sess`);
  const config = {
    store: 'sqlite' as const,
    path,
    sqliteBackend: beforeBackend,
    mode: 'tls12-store' as const,
    secretHex: randomBytes(32).toString('hex'),
    certPath: pki.serverCertPath,
    keyPath: pki.serverKeyPath,
  };

  const before = await startServerProcess(config, ['--started-as=first']);
  const issued = await sClient(before.port, ['-sess_out', sessionFile]);
  expect(issued).toMatch(/^New, TLSv1\.2/m);
  const firstStats = await before.stop();
  expect(firstStats.sqliteBackend).toBe(beforeBackend);
  expect(firstStats.stats.stored).toBe(1);
  expect(statSync(path).mode & 0o777).toBe(0o600);

  // Different arguments: Node's default session ID context would differ; attach makes it agree.
  const after = await startServerProcess({ ...config, sqliteBackend: afterBackend }, ['--started-as=second', '--other-flag']);
  const resumed = await sClient(after.port, ['-sess_in', sessionFile]);
  const secondStats = await after.stop();
  expect(secondStats.sqliteBackend).toBe(afterBackend);
  expect(resumed).toMatch(/^Reused, TLSv1\.2/m);
  expect(secondStats.stats.hits).toBe(1);

  // Control: a server restarted with another secret cannot open the record, so no resumption.
  const wrongSecret = await startServerProcess({ ...config, sqliteBackend: afterBackend, secretHex: randomBytes(32).toString('hex') }, [
    '--started-as=third',
  ]);
  const refused = await sClient(wrongSecret.port, ['-sess_in', sessionFile]);
  const thirdStats = await wrongSecret.stop();
  expect(refused).toMatch(/^New, TLSv1\.2/m);
  expect(thirdStats.stats.rejected).toBe(1);
}
