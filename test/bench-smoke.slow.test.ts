/**
 * The benchmarks the README and docs/BENCHMARKS.md tell users to run still run: each once,
 * as small as its options allow, checking that it prints its table and its JSON (figures are
 * not asserted: speed lives in the benchmarks, never in tests). The slow lane builds dist/ first.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const ROOT = join(__dirname, '..');
const run = promisify(execFile);

test('npm run bench:handshake, smallest run: a table and JSON with ratios against references', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tls-session-bench-smoke-'));
  try {
    const json = join(dir, 'out.json');
    const { stdout } = await run(
      'npm',
      [
        'run',
        '--silent',
        'bench:handshake',
        '--',
        '--quick',
        '--keys',
        'p256',
        '--configs',
        'tls12 resumed Map',
        '--trials',
        '1',
        '--seconds',
        '0.3',
        '--no-redis',
        '--no-path',
        '--json',
        json,
      ],
      { cwd: ROOT, timeout: 240_000 },
    );
    expect(stdout).toMatch(/resumed/);
    const results = JSON.parse(readFileSync(json, 'utf8')) as unknown;
    expect(JSON.stringify(results)).toMatch(/"ratio|vs|reference/i);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 300_000);

test('bench:client (dist/bench/client-cache.js), one trial: full vs resumed per protocol, and its JSON line', async () => {
  const { stdout } = await run(process.execPath, [join(ROOT, 'dist', 'bench', 'client-cache.js'), '--trials', '1'], {
    cwd: ROOT,
    timeout: 240_000,
  });
  const lines = stdout.trim().split('\n');
  const json = JSON.parse(lines[lines.length - 1]!) as {
    results: Record<string, Record<string, { roundTrips: number; bytes: { out: number; in: number } }>>;
  };
  expect(Object.keys(json.results)).toEqual(['TLSv1.2', 'TLSv1.3']);
  for (const version of ['TLSv1.2', 'TLSv1.3']) {
    const { plain, resumed } = json.results[version]!;
    // Bytes are a protocol fact, not a speed: a resumed handshake carries no certificate.
    // (Round trips come from timings through a delaying proxy: printed, not asserted.)
    expect(resumed!.bytes.in).toBeLessThan(plain!.bytes.in);
    expect(Number.isInteger(resumed!.roundTrips)).toBe(true);
  }
}, 300_000);
