/** Runs snippets in a fresh node process that loads lib/ from source (never a stale dist/). */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const root = join(__dirname, '..', '..');

/** An expression that loads the package from its TypeScript sources, through the fixtures' transpile hook. */
export const requireLib = `(require(${JSON.stringify(join(root, 'test', 'persist', 'fixtures', 'register-ts.js'))}), require(${JSON.stringify(join(root, 'lib', 'index.ts'))}))`;

/** Runs `code` in a fresh node process with `env` added; returns its exit status and output. */
export function inChild(code: string, env: Record<string, string> = {}): { status: number | null; out: string; err: string } {
  const result = spawnSync(process.execPath, ['-e', code], {
    cwd: root,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: result.status, out: result.stdout, err: result.stderr };
}
