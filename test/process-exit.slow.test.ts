/**
 * Under valgrind: sessions still owned at process exit are released by the environment
 * teardown hook, and every allocation behind them was made by the SYSTEM libcrypto (the
 * isolation holds inside libssl too). A control run that aborts (no teardown) shows the same
 * sessions still allocated, so the check can fail.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openssl } from '../lib';
import { makeSampleSessions } from './helpers/sessions';

const lib = join(__dirname, '..', 'dist', 'lib', 'index.js');

/** valgrind's loss records whose allocation stack passes through d2i_SSL_SESSION, minus OpenSSL's one-time init. */
function sessionAllocations(script: string, mode: 'exit' | 'abort'): string[] {
  const log = join(mkdtempSync(join(tmpdir(), 'tls-session-valgrind-')), 'memcheck.log');
  spawnSync(
    'valgrind',
    [
      '--leak-check=full',
      '--show-leak-kinds=all',
      '--errors-for-leak-kinds=none',
      '--num-callers=12',
      `--log-file=${log}`,
      process.execPath,
      script,
      mode,
    ],
    { stdio: 'ignore', timeout: 240_000 },
  );
  const report = readFileSync(log, 'utf8');
  if (!/LEAK SUMMARY|All heap blocks were freed/.test(report)) throw new Error(`valgrind did not finish:\n${report.slice(-2000)}`);
  return report
    .split(/\n==\d+== \n/)
    .filter(
      (record) =>
        /are (still reachable|definitely lost|indirectly lost|possibly lost)/.test(record) &&
        record.includes('d2i_SSL_SESSION') &&
        !record.includes('OPENSSL_init') &&
        !record.includes('run_once'),
    );
}

describe('process exit', () => {
  let script: string;
  beforeAll(async () => {
    execFileSync('valgrind', ['--version']); // fails loudly if valgrind is missing (.ci/run installs it)
    const { server } = await makeSampleSessions();
    script = join(mkdtempSync(join(tmpdir(), 'tls-session-exit-')), 'exit.js');
    writeFileSync(
      script,
      `const t = require(${JSON.stringify(lib)});
      globalThis.kept = [];
      for (let i = 0; i < 40; i++) globalThis.kept.push(t.Session.fromDER(Buffer.from(${JSON.stringify(server.toString('base64'))}, 'base64')));
      if (process.argv[2] === 'abort') process.abort();`,
    );
  }, 60_000);

  test('live sessions are released at exit; without teardown (abort) they would still be allocated', () => {
    const atExit = sessionAllocations(script, 'exit');
    const atAbort = sessionAllocations(script, 'abort');
    expect(atExit).toEqual([]);
    expect(atAbort.length).toBeGreaterThan(0);
    // The sessions' memory was allocated by the system libcrypto, called from the system libssl.
    const record = atAbort.find((r) => r.includes('SSL_SESSION_new'))!;
    expect(record).toContain(`CRYPTO_zalloc (in ${openssl.libcrypto})`);
    expect(record).toContain(`SSL_SESSION_new (in ${openssl.libssl})`);
    expect(record).not.toMatch(/\(in [^)]*\/node\)\n[^\n]*SSL_SESSION_new/);
  }, 300_000);
});
