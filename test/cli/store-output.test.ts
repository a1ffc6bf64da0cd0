/**
 * `tls-session store stats|ls` output for what issue 25 found unclear: sealed records read without
 * --secret-file, and ClientSessionCache records. One real SQLite file holds both: server sessions
 * (attachSessionStore, sealed with a secret), ticket keys (TicketKeyRing) and a client session
 * (ClientSessionCache after a real TLS 1.2 handshake, sealed with the file's local key).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClientSessionCache, SqliteStore } from '../../lib/persist';
import { makePki } from '../helpers/pki';
import { openRaw, SQLITE_BACKENDS, unavailableBackends } from '../persist/helpers/sqlite-backends';
import { close, listen, tls12Server } from '../persist/helpers/tls-peers';
import { runCli } from './cli';
import { fillStoreByHandshakes } from './fill-store';

const dir = mkdtempSync(join(tmpdir(), 'tls-session-cli-output-'));
const path = join(dir, 'sessions.db');
const secretFile = join(dir, 'secret.hex');
let ticketKeys = 0;

beforeAll(async () => {
  const pki = makePki();
  const secret = randomBytes(32);
  writeFileSync(secretFile, `${secret.toString('hex')}\n`);
  const store = new SqliteStore({ path, sweepIntervalMs: 0 });
  await fillStoreByHandshakes(store, pki, { secret });
  await store.close();
  // A client of a TLS 1.2 server keeps its session in the same file (key prefix "client:").
  const server = tls12Server(pki);
  server.on('secureConnection', (socket) => socket.end());
  const port = await listen(server);
  const cache = new ClientSessionCache({ store: new SqliteStore({ path, sweepIntervalMs: 0 }) });
  try {
    const socket = await cache.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.ca, maxVersion: 'TLSv1.2' });
    socket.resume();
    await new Promise((resolve) => socket.once('close', resolve));
    await cache.flush();
  } finally {
    await cache.close();
    await close(server);
  }
  const check = new SqliteStore({ path, sweepIntervalMs: 0 });
  const keys: string[] = [];
  for await (const entry of check.entries()) keys.push(entry.key);
  await check.close();
  ticketKeys = keys.filter((key) => key.startsWith('ticket-key:')).length;
  expect(keys.filter((key) => key.startsWith('client:'))).toHaveLength(1);
});

test('stats without --secret-file: sealed server sessions are "sealed (no --secret-file)", not "unreadable"', () => {
  const result = runCli(['store', 'stats', '--sqlite', path]);
  expect([result.status, result.err]).toEqual([0, '']);
  const fields = Object.fromEntries(
    result.out
      .trimEnd()
      .split('\n')
      .map((line) => /^([a-z ]+):\s+(.*)$/.exec(line)!.slice(1, 3)),
  ); // The client record opens with the file's local key (sessions.db.key): it has a protocol.
  expect(fields['by protocol']!.split(', ').sort()).toEqual(['TLSv1.2 1', 'sealed (no --secret-file) 3']);
  expect(fields['records']).toBe(`${4 + ticketKeys} (${4 + ticketKeys} sealed, ${3 + ticketKeys} not opened: no --secret-file)`);
  expect(fields['by kind']!.split(', ').sort()).toEqual(['client 1', 'session 3', `ticket-key ${ticketKeys}`]);
  expect(fields['unreadable']).toBe('0');
  expect(result.out).not.toMatch(/unreadable \d/);
});

test('stats --json keeps the counts apart: unopened vs unreadable', () => {
  const json = JSON.parse(runCli(['store', 'stats', '--sqlite', path, '--json']).out);
  expect(json).toMatchObject({ byProtocol: { 'sealed (no --secret-file)': 3, 'TLSv1.2': 1 }, unopened: 3 + ticketKeys, unreadable: 0 });
  const withSecret = JSON.parse(runCli(['store', 'stats', '--sqlite', path, '--secret-file', secretFile, '--json']).out);
  expect(withSecret).toMatchObject({ byProtocol: { 'TLSv1.2': 4 }, unopened: 0, unreadable: 0 });
});

test('ls: a sealed record read without a secret shows "sealed", a client record shows kind client and its protocol and cipher', () => {
  const result = runCli(['store', 'ls', '--sqlite', path]);
  expect(result.status).toBe(0);
  const rows = result.out.trimEnd().split('\n').slice(1);
  const sessions = rows.filter((row) => row.startsWith('session:'));
  expect(sessions).toHaveLength(3);
  for (const row of sessions) expect(row).toMatch(/ session +\d+ +yes +in .+ +sealed +\(sealed: --secret-file\)$/);
  expect(result.out).not.toContain(' ? ');
  const client = rows.filter((row) => row.startsWith('client:'));
  expect(client).toHaveLength(1);
  expect(client[0]).toMatch(/^client:[0-9a-f]{64}:r +client +\d+ +yes +in .+ +TLSv1\.2 +ECDHE-\S+$/);
  const opened = runCli(['store', 'ls', '--sqlite', path, '--secret-file', secretFile]).out;
  for (const row of opened.split('\n').filter((line) => line.startsWith('session:'))) expect(row).toMatch(/ TLSv1\.2 +\S+$/);
});

test('verify opens client records: one tampered and one moved under another peer are bad; --delete-bad deletes them', () => {
  const copy = join(dir, 'client-records.db');
  copyFileSync(path, copy);
  if (existsSync(`${path}-wal`)) copyFileSync(`${path}-wal`, `${copy}-wal`); // records not yet checkpointed
  copyFileSync(`${path}.key`, `${copy}.key`);
  chmodSync(`${copy}.key`, 0o600);
  // Whichever SQLite library loads in this Node (better-sqlite3 on 20, node:sqlite from 22.5).
  const raw = openRaw(
    copy,
    SQLITE_BACKENDS.find((backend) => !unavailableBackends.has(backend))!,
  );
  try {
    const { key, value } = raw.prepare("SELECT key, value FROM tls_sessions WHERE key LIKE 'client:%'").get() as {
      key: string;
      value: Buffer;
    };
    const tampered = Buffer.from(value);
    tampered[tampered.length - 20]! ^= 0x01;
    raw.prepare('UPDATE tls_sessions SET value = ? WHERE key = ?').run(tampered, key);
    // The same (intact) record under another peer's key: sealed under its own key, so it does not open there.
    raw
      .prepare('INSERT INTO tls_sessions (key, value, expires_at) SELECT ?, ?, expires_at FROM tls_sessions WHERE key = ?')
      .run(`client:${'0'.repeat(64)}:r`, value, key);
  } finally {
    raw.close();
  }
  const report = runCli(['store', 'verify', '--sqlite', copy, '--secret-file', secretFile, '--json']);
  expect([report.status, report.err]).toEqual([1, '']);
  const problems = JSON.parse(report.out).problems as Array<{ key: string; problem: string }>;
  expect(problems).toHaveLength(2);
  expect(problems.map((p) => p.key)).toContain(`client:${'0'.repeat(64)}:r`);
  expect(problems.every((p) => /^client:[0-9a-f]{64}:r$/.test(p.key))).toBe(true);
  for (const { problem } of problems) expect(problem).toMatch(/failed authentication/);
  const fixed = runCli(['store', 'verify', '--sqlite', copy, '--secret-file', secretFile, '--delete-bad', '--json']);
  expect([fixed.status, JSON.parse(fixed.out).deleted]).toEqual([0, 2]);
});
