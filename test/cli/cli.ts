/** Runs the tls-session command from its TypeScript sources in a child process (never a stale dist/). */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

export const root = join(__dirname, '..', '..');

export interface CliResult {
  status: number | null;
  stdout: Buffer;
  out: string;
  err: string;
}

/** `tls-session ...args`, with `input` on stdin. */
export function runCli(args: string[], input?: Buffer | string): CliResult {
  const result = spawnSync(
    process.execPath,
    ['-r', join(root, 'test', 'persist', 'fixtures', 'register-ts.js'), join(root, 'lib', 'cli', 'main.ts'), ...args],
    { cwd: root, input, timeout: 60_000 },
  );
  return { status: result.status, stdout: result.stdout, out: result.stdout.toString('utf8'), err: result.stderr.toString('utf8') };
}

/** `tls-session ...args`, failing the test if any of `secrets` shows in what it printed (stdout or stderr). */
export function runCliKeeping(secrets: readonly string[], args: string[]): CliResult {
  const result = runCli(args);
  for (const text of [result.out, result.err]) for (const secret of secrets) expect(text).not.toContain(secret);
  return result;
}

/** The `    Label: value` fields of `openssl sess_id -text`-style output (as test/helpers/peers.ts sessIdText reads them). */
export function textFields(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s{4}([A-Za-z][A-Za-z -]*?)\s*:\s?(.*)$/.exec(line);
    if (m) fields[m[1]!] = m[2]!.trim();
  }
  return fields;
}
