/**
 * The demo (lib/cli/demo.ts): `tls-session demo`, `npm run demo` and examples/demo.ts run the same
 * code. Run here from the sources through the fixtures' transpile hook, so it is checked without
 * a build step: real HTTPS servers on loopback, a real SQLite file.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';

const root = join(__dirname, '..', '..');
const hook = join(__dirname, 'fixtures', 'register-ts.js');

function run(script: string, args: string[] = []): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['-r', hook, script, ...args], { cwd: root, timeout: 60_000 }, (error, out, err) =>
      resolve({ code: error ? ((error.code as number) ?? 1) : 0, stdout: out, stderr: err }),
    );
  });
}
const cli = (...args: string[]) => run(join(root, 'lib', 'cli', 'main.ts'), ['demo', ...args]);

test('examples/demo.ts prints the handshake table and resumes sessions after the restart', async () => {
  const { code, stdout, stderr } = await run(join(root, 'examples', 'demo.ts'));
  expect(stderr).toBe('');
  expect(code).toBe(0);
  expect(stdout).toMatch(/before restart\s+TLS 1\.2/);
  expect(stdout).toMatch(/after restart\s+TLS 1\.3/);
  const [, resumed, total] = /resumed after restart: (\d+) of (\d+)/.exec(stdout)!;
  expect(Number(resumed)).toBeGreaterThan(0);
  expect(Number(total)).toBe(18);
  // The store path is deterministic: every TLS 1.2 client resumes after the restart. (TLS 1.3
  // could see a ticket-key epoch boundary between the two phases, once an hour.)
  expect(stdout).toMatch(/after restart\s+TLS 1\.2, session ID \(store\)\s+0\s+9/);
  // What its /metrics served (prom-client is a devDependency here): the same handshakes, by mechanism.
  expect(stdout).toMatch(/^metrics: while the demo ran, http:\/\/127\.0\.0\.1:\d+\/metrics served/m);
  expect(stdout).toContain('tls_session_server_handshakes_total{protocol="TLSv1.2",mechanism="session-id",resumed="true"} 15');
  const [, rateResumed, rateAll] = /resumption rate: (\d+) of (\d+) handshakes/.exec(stdout)!;
  expect(Number(rateAll)).toBe(36); // 6 clients: 3 connections before the restart, 3 after
  expect(Number(rateResumed)).toBe(36 - 6 - (18 - Number(resumed)));
});

test('the demo prints the measured gain of resumption next to its full/resumed counts', async () => {
  const { code, stdout } = await cli();
  expect(code).toBe(0);
  // Each row: counts, then median full and resumed handshake times and their ratio.
  expect(stdout).toMatch(/phase\s+clients\s+full\s+resumed\s+full ms\s+resumed ms\s+gain/);
  expect(stdout).toMatch(/after restart\s+TLS 1\.2, session ID \(store\)\s+0\s+9\s+-\s+\d+\.\d\d\s+-/);
  expect(stdout).toMatch(/before restart\s+TLS 1\.2, session ID \(store\)\s+3\s+6\s+\d+\.\d\d\s+\d+\.\d\d\s+\d+\.\d×/);
  // No timed assertion: the figures are printed, not judged.
  expect(stdout).toMatch(/gain: a resumed handshake took \d+\.\d\d ms, a full one \d+\.\d\d ms \(medians, client side\): \d+\.\d× faster/);
});

test('tls-session demo explains every full handshake, and counts TLS 1.3 legacy-ID lookups apart from TLS 1.2 misses', async () => {
  const { code, stdout, stderr } = await cli();
  expect([code, stderr]).toEqual([0, '']);
  const explained = stdout.split('\n').filter((line) => line.startsWith('  full handshake: '));
  // Before the restart each of the 6 clients has one full handshake, its first; after it, none.
  expect(explained).toHaveLength(6);
  for (const line of explained) expect(line).toMatch(/visit 1 \(TLSv1\.[23]\): first visit \(no session yet\)$/);
  expect(stdout).toMatch(/after restart\n {2}no full handshake: every connection resumed\n/);
  // All 9 TLS 1.2 connections resumed after the restart, so the store line must not report misses.
  expect(stdout).toMatch(
    /store \(TLS 1\.2 session IDs\): before restart stored 3, hits 6; after restart hits 9, misses 0, expired 0, rejected 0/,
  );
  expect(stdout).toMatch(/store lookups of TLS 1\.3 legacy session IDs: \d+ before, \d+ after restart \(every TLS 1\.3 ClientHello/);
  expect(stdout).toContain('sessions from before the restart that resumed after it: 6 of 6\n');
  expect(stdout).toContain('a throwaway self-signed one for localhost, made now');
});

test.each([
  [
    'new-secret',
    /^ {2}3× the session was issued before the restart, but the stored record was refused \(onError: sealed record failed authentication/m,
  ],
  ['new-store', /^ {2}3× the session was issued before the restart, but the store has no record of it \(a miss\)$/m],
])('restarted with a %s, nothing survives: the demo says why and exits 1', async (what, tls12Reason) => {
  const { code, stdout, stderr } = await cli('--restart-with', what);
  expect([code, stderr]).toEqual([1, '']);
  expect(stdout).toContain('sessions from before the restart that resumed after it: 0 of 6\n');
  expect(stdout).toContain("FAIL: no session survived the restart. Why, by the server's counters:\n");
  expect(stdout).toMatch(tls12Reason);
  expect(stdout).toMatch(
    /^ {2}3× the session was issued before the restart, but its ticket was sealed with a key this server does not have/m,
  );
});

test('a bad --restart-with is a usage error: one line, exit 2', async () => {
  const { code, stdout, stderr } = await cli('--restart-with', 'tomorrow');
  expect({ code, stdout, stderr }).toEqual({
    code: 2,
    stdout: '',
    stderr: 'tls-session: --restart-with must be one of same, new-secret, new-store, not "tomorrow"\n',
  });
});
