/**
 * One SSL_SESSION must never sit in two OpenSSL caches (SSL_CTX_add_session(3): a session has one
 * set of list links). Regression: the lookup callback handed OpenSSL the caller's own object
 * (up_ref), so a Session served by two server contexts — or handed out by A's cache and served by
 * B — was linked into both lists: a hang in SSL_CTX_flush_sessions or a SIGSEGV. Run in a child
 * process, because the failure mode is a crash or a hang.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { makePki } from '../helpers/pki';

test('sessions served by the lookups of two server contexts resume on both and flush cleanly from both', () => {
  const pki = makePki();
  const run = spawnSync(
    process.execPath,
    ['--expose-gc', join(__dirname, '..', 'fixtures', 'shared-session-contexts.js'), pki.serverCertPath, pki.serverKeyPath],
    {
      encoding: 'utf8',
      timeout: 60_000,
    },
  );
  expect({ signal: run.signal, status: run.status, stderr: run.stderr }).toEqual({ signal: null, status: 0, stderr: '' });
  const result = JSON.parse(run.stdout) as {
    resumedOnB: number;
    resumedOnBoth: number;
    before: { a: number; b: number };
    after: { a: number; b: number };
  };
  expect(result.resumedOnB).toBe(20); // B resumed every session A handed out
  expect(result.resumedOnBoth).toBe(3); // one fromDER object resumed on A and on B, three times
  expect(result.before.b).toBeGreaterThan(20);
  expect(result.after).toEqual({ a: 0, b: 0 });
}, 90_000);
