/**
 * The README's set-up block ("Work on tls-session: set up"): `npm install && npm run demo`, then
 * `npm test`. CI runs the other two (.ci/run: `npm ci`, then `npm test` exactly); this runs
 * `npm run demo` as written, on the dist/ the slow lane compiles first (`npm run test:slow` starts
 * with `npm run build:ts`), and checks that docs/PERSISTENCE.md's sample of its output is laid out
 * as the demo prints it (headers, row labels, columns; the counts may differ).
 */
import { spawnSync } from 'node:child_process';
import { codeBlock, ROOT } from './helpers/readme-example';

/** A table line with its two counts (the last two columns) blanked out. */
/** A table line with its counts and times as placeholders and its padding collapsed (they differ per run). */
const withoutCounts = (line: string) => line.replace(/\d+(\.\d+)?/g, '#').replace(/\s+/g, ' ');

test("the README's `npm run demo` runs and prints the table docs/PERSISTENCE.md shows", () => {
  const setup = codeBlock('README.md', 'sh', (block) => block.includes('npm run demo'));
  const commands = setup
    .split('\n')
    .flatMap((line) => line.replace(/#.*/, '').split('&&'))
    .map((command) => command.trim())
    .filter(Boolean);
  expect(commands).toEqual(['npm install', 'npm run demo', 'npm test']);

  const demo = spawnSync('sh', ['-c', commands[1]!], {
    cwd: ROOT,
    env: { ...process.env, npm_config_update_notifier: 'false' },
    encoding: 'utf8',
    timeout: 120_000,
  });
  expect({ status: demo.status, stderr: demo.stderr }).toEqual({ status: 0, stderr: '' });
  expect(demo.stdout).toMatch(/resumed after restart: \d+ of 18\n/);

  const sample = codeBlock('docs/PERSISTENCE.md', '', (block) => block.startsWith('phase '))
    .trimEnd()
    .split('\n');
  const printed = demo.stdout.split('\n');
  const table = printed.slice(printed.findIndex((line) => line.startsWith('phase ')));
  expect(table.slice(0, sample.length).map(withoutCounts)).toEqual(sample.map(withoutCounts));
});
