/**
 * Under valgrind: a module linked with -lssl loads first, so tls-session takes its private copy
 * in a new link-map namespace; sessions are decoded, re-encoded and freed there with 0 memcheck
 * errors, and nothing allocated from libssl/libcrypto is left at exit. valgrind sees that copy's
 * heap only because its malloc/free were rebound to the process's libc (valgrind does not read a
 * second mapping of a file, so the namespace's own libc is invisible to it, and so are the
 * private copy's symbols: its frames read "??? (in .../libcrypto.so.3)"). A control that keeps
 * the sessions and aborts shows them allocated, so the check can fail.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeSampleSessions } from './helpers/sessions';
import { buildFixture, ccAvailable } from './fixtures/libssl-user/fixture';

const root = join(__dirname, '..');
const addon = join(root, 'build', 'Release', 'tls_session.node');
const child = join(root, 'test', 'fixtures', 'libssl-user', 'valgrind-child.js');

if (!ccAvailable) console.warn('test/coexistence.slow.test.ts: SKIPPED, no C compiler (cc) on PATH to build the -lssl fixture addon');
const describeWithCc = ccAvailable ? describe : describe.skip;

interface Run {
  status: number | null;
  report: Record<string, unknown> | null;
  log: string;
}

function underValgrind(fixture: string, der: Buffer, count: number, mode: 'free' | 'abort'): Run {
  const log = join(mkdtempSync(join(tmpdir(), 'tls-session-coexist-valgrind-')), 'memcheck.log');
  const r = spawnSync(
    'valgrind',
    [
      '--tool=memcheck',
      '--error-exitcode=97',
      '--errors-for-leak-kinds=none',
      '--leak-check=full',
      '--show-leak-kinds=all',
      '--num-callers=12',
      '--smc-check=all-non-file',
      `--suppressions=${join(root, 'test', 'valgrind.supp')}`,
      `--log-file=${log}`,
      process.execPath,
      child,
      fixture,
      addon,
      der.toString('base64'),
      String(count),
      mode,
    ],
    { cwd: root, encoding: 'utf8', timeout: 240_000 },
  );
  const text = readFileSync(log, 'utf8');
  if (!/ERROR SUMMARY/.test(text)) throw new Error(`valgrind did not finish:\n${text.slice(-2000)}`);
  const last = r.stdout.trim().split('\n').pop();
  return { status: r.status, report: last ? (JSON.parse(last) as Record<string, unknown>) : null, log: text };
}

/** Heap blocks still allocated at exit whose allocating caller is libssl or libcrypto. */
function opensslBlocks(log: string): number {
  let blocks = 0;
  for (const record of log.split(/\n==\d+== \n/)) {
    const m = /([\d,]+) bytes in ([\d,]+) blocks are/.exec(record);
    const caller = record.split('\n')[2] ?? '';
    if (m && /\(in \/\S*\/lib(ssl|crypto)\.so\.3\)/.test(caller)) blocks += Number(m[2]!.replace(/,/g, ''));
  }
  return blocks;
}

describeWithCc('the private-namespace copy under valgrind', () => {
  let fixture: string;
  let der: Buffer;
  beforeAll(async () => {
    execFileSync('valgrind', ['--version']); // fails loudly if valgrind is missing (.ci/run installs it)
    fixture = buildFixture(mkdtempSync(join(tmpdir(), 'tls-session-fixture-')));
    der = (await makeSampleSessions()).server;
  }, 60_000);

  test('sessions created and freed in the private copy: 0 errors, nothing of OpenSSL left at exit', () => {
    const run = underValgrind(fixture, der, 200, 'free');
    expect(run.report).toEqual(
      expect.objectContaining({
        loadedAs: 'private-namespace',
        roundTrips: 200,
        live: 0,
        fixture: true,
        importsRebound: expect.any(Number),
      }),
    );
    expect(run.report!.importsRebound).toBeGreaterThan(50);
    expect(run.log).toMatch(/ERROR SUMMARY: 0 errors from 0 contexts/);
    expect(run.status).toBe(0);
    expect(opensslBlocks(run.log)).toBe(0);
  }, 300_000);

  test('control: sessions kept at an abort are visible to valgrind, allocated by the private libssl/libcrypto', () => {
    const none = underValgrind(fixture, der, 0, 'abort');
    const kept = underValgrind(fixture, der, 200, 'abort');
    for (const run of [none, kept]) expect(run.log).toMatch(/ERROR SUMMARY: 0 errors from 0 contexts/);
    // OpenSSL's own state in both; each kept session adds at least one block.
    expect(opensslBlocks(none.log)).toBeGreaterThan(0);
    expect(opensslBlocks(kept.log) - opensslBlocks(none.log)).toBeGreaterThanOrEqual(200);
  }, 300_000);
});
