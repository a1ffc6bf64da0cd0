/**
 * `npm run demo` (examples/demo.ts) must show sessions surviving a restart. Run here from the
 * sources through the fixtures' transpile hook, so it is checked without a build step.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';

test('the demo prints the handshake table and resumes sessions after the restart', async () => {
  const root = join(__dirname, '..', '..');
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      ['-r', join(__dirname, 'fixtures', 'register-ts.js'), join(root, 'examples', 'demo.ts')],
      { cwd: root, timeout: 60_000 },
      (error, out, err) => resolve({ code: error ? ((error.code as number) ?? 1) : 0, stdout: out, stderr: err }),
    );
  });
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
});

test('the demo prints the measured gain of resumption next to its full/resumed counts', async () => {
  const root = join(__dirname, '..', '..');
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(
      process.execPath,
      ['-r', join(__dirname, 'fixtures', 'register-ts.js'), join(root, 'examples', 'demo.ts')],
      { cwd: root, timeout: 60_000 },
      (error, out) => (error ? reject(error) : resolve(out)),
    );
  });
  // Each row: counts, then median full and resumed handshake times and their ratio.
  expect(stdout).toMatch(/phase\s+clients\s+full\s+resumed\s+full ms\s+resumed ms\s+gain/);
  expect(stdout).toMatch(/after restart\s+TLS 1\.2, session ID \(store\)\s+0\s+9\s+-\s+\d+\.\d\d\s+-/);
  expect(stdout).toMatch(/before restart\s+TLS 1\.2, session ID \(store\)\s+3\s+6\s+\d+\.\d\d\s+\d+\.\d\d\s+\d+\.\d×/);
  // No timed assertion: the figures are printed, not judged.
  expect(stdout).toMatch(/gain: a resumed handshake took \d+\.\d\d ms, a full one \d+\.\d\d ms \(medians, client side\): \d+\.\d× faster/);
});
