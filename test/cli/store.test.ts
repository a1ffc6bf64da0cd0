/** `tls-session store` on a real SqliteStore written by attachSessionStore and TicketKeyRing. */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../lib/persist';
import { makePki } from '../helpers/pki';
import { runCli } from './cli';
import { fillStoreByHandshakes } from './fill-store';

const dir = mkdtempSync(join(tmpdir(), 'tls-session-cli-store-'));
const path = join(dir, 'sessions.db');
const secret = randomBytes(32);
const secretFile = join(dir, 'secret.hex');
const scope = 'cli-test-scope';
const sessionKeys: string[] = [];
let tamperedKey = '';
/** Ticket keys the ring stored: the current epoch's, plus the next one's in the second half of an epoch. */
let ticketKeys = 0;

/**
 * Writes a row that is already expired by the real clock the CLI (a child process) runs on: the
 * store's clock is an hour behind, and the TTL (a minute) ends 59 minutes ago. SQLite keeps the
 * row until a sweep.
 */
async function writeExpiredRow(key: string): Promise<void> {
  const past = new SqliteStore({ path, sweepIntervalMs: 0, now: () => Date.now() - 3_600_000 });
  await past.set(key, Buffer.from('TS'), 60);
  await past.close();
}

beforeAll(async () => {
  writeFileSync(secretFile, `${secret.toString('hex')}\n`);
  const store = new SqliteStore({ path, sweepIntervalMs: 0 });
  await fillStoreByHandshakes(store, makePki(), { secret, scope });
  for await (const entry of store.entries()) {
    if (entry.key.startsWith('session:')) sessionKeys.push(entry.key);
    if (entry.key.startsWith('ticket-key:')) ticketKeys++;
  }
  expect([1, 2]).toContain(ticketKeys);
  expect(sessionKeys).toHaveLength(3);
  // A tampered record: one ciphertext byte flipped.
  tamperedKey = sessionKeys[0]!;
  const value = (await store.get(tamperedKey))!;
  value[value.length - 20] ^= 0x01;
  await store.set(tamperedKey, value, 3600);
  await store.close();
  await writeExpiredRow('session:00');
});

function noSecretIn(text: string): void {
  expect(text).not.toContain(secret.toString('hex'));
}

test('stats counts by kind, protocol and expiry', () => {
  const result = runCli(['store', 'stats', '--sqlite', path, '--secret-file', secretFile, '--json']);
  expect([result.status, result.err]).toEqual([0, '']);
  const stats = JSON.parse(result.out);
  expect(stats).toMatchObject({
    store: `sqlite ${path}`,
    records: 4 + ticketKeys,
    byKind: { session: 4, 'ticket-key': ticketKeys },
    byProtocol: { 'TLSv1.2': 2, unreadable: 2 },
    sealed: 3 + ticketKeys,
    unreadable: 2,
  });
  expect(stats.byExpiry.expired).toBe(1);
  noSecretIn(result.out);
});

test('ls lists keys and metadata, never values', () => {
  const result = runCli(['store', 'ls', '--sqlite', path, '--secret-file', secretFile]);
  expect(result.status).toBe(0);
  expect(result.out.split('\n')[0]).toMatch(/^KEY +KIND +BYTES +SEALED +EXPIRES +PROTOCOL +CIPHER$/);
  for (const key of sessionKeys) expect(result.out).toContain(key);
  expect(result.out).toMatch(/ticket-key:3600:\d+ +ticket-key +\d+ +yes +in /);
  noSecretIn(result.out);
});

test('verify reports the tampered record and keeps it; --delete-bad deletes it; purge removes the expired row', async () => {
  const report = runCli(['store', 'verify', '--sqlite', path, '--secret-file', secretFile, '--scope', scope]);
  expect(report.status).toBe(1);
  expect(report.out).toContain(`BAD  ${tamperedKey}: sealed record failed authentication`);
  expect(report.out).toContain(`: ${2 + ticketKeys} ok, 2 bad (--delete-bad deletes them)`);
  noSecretIn(report.out + report.err);
  const otherScope = runCli(['store', 'verify', '--sqlite', path, '--secret-file', secretFile, '--scope', 'another', '--json']);
  expect(
    JSON.parse(otherScope.out).problems.filter((p: { problem: string }) => p.problem === 'session belongs to another scope'),
  ).toHaveLength(2);
  const fixed = runCli(['store', 'verify', '--sqlite', path, '--secret-file', secretFile, '--delete-bad', '--json']);
  expect(fixed.status).toBe(0);
  expect(JSON.parse(fixed.out)).toMatchObject({ checked: 4 + ticketKeys, ok: 2 + ticketKeys, bad: 2, deleted: 2 });
  const again = runCli(['store', 'verify', '--sqlite', path, '--secret-file', secretFile]);
  expect(again.status).toBe(0);
  expect(again.out).toBe(`checked ${2 + ticketKeys} record(s) in sqlite ${path} with the secret: ${2 + ticketKeys} ok, 0 bad\n`);
  const store = new SqliteStore({ path, sweepIntervalMs: 0 });
  const keys: string[] = [];
  for await (const entry of store.entries()) keys.push(entry.key);
  await store.close();
  expect(keys).not.toContain(tamperedKey);
});

test('purge deletes expired rows only', async () => {
  await writeExpiredRow('session:01');
  const before = JSON.parse(runCli(['store', 'stats', '--sqlite', path, '--json']).out);
  expect(before.byExpiry.expired).toBeGreaterThanOrEqual(1);
  const purged = runCli(['store', 'purge', '--sqlite', path]);
  expect([purged.status, purged.out]).toEqual([0, `purged ${before.byExpiry.expired} expired record(s) from sqlite ${path}\n`]);
  const after = JSON.parse(runCli(['store', 'stats', '--sqlite', path, '--json']).out);
  expect(after.byExpiry.expired).toBeUndefined();
  expect(after.records).toBe(before.records - before.byExpiry.expired);
});

test('usage and failure errors are one line', () => {
  const both = runCli(['store', 'ls', '--sqlite', path, '--redis', 'redis://127.0.0.1:1']);
  expect([both.status, both.err]).toEqual([2, 'tls-session: give exactly one of --sqlite FILE and --redis URL\n']);
  const missing = runCli(['store', 'stats', '--sqlite', join(dir, 'missing.db')]);
  expect([missing.status, missing.err]).toEqual([1, `tls-session: ${join(dir, 'missing.db')}: no such SQLite store file\n`]);
  const badSecret = join(dir, 'bad-secret');
  writeFileSync(badSecret, 'abc\n');
  const wrong = runCli(['store', 'verify', '--sqlite', path, '--secret-file', badSecret]);
  expect([wrong.status, wrong.err]).toEqual([
    2,
    `tls-session: secret file ${badSecret}, line 1: expected 64 hex digits (32 bytes), optionally after "id:"\n`,
  ]);
});
