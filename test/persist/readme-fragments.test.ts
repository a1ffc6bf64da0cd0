/**
 * The README's TypeScript blocks, and those of the guides it links to (docs/SESSIONS.md,
 * docs/TLS_ENGINE.md), as a user's strict TypeScript project sees them. Two are fragments that
 * leave names to the reader (docs/SESSIONS.md: `tlsSocket`, `store`, `load`; docs/TLS_ENGINE.md
 * "own TLS on the system OpenSSL": `cert`, `key`) and connect to fixed hosts and ports, so they
 * are type-checked here, not run: every ```ts block of README.md compiles under `strict` against
 * lib/ as `tls-session`, with those names declared as the text describes them. The runnable blocks
 * also run (readme-sqlite.test.ts, readme-fleet.redis.test.ts), and so do the fragments' complete
 * versions: examples/system-tls.ts here, examples/node-client-sessions.ts in node-session.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ts from 'typescript';
import { codeBlocks, REGISTER_TS, ROOT } from './helpers/readme-example';

/** The names the README's fragments leave to the reader, typed as its text describes them. */
const FRAGMENT_NAMES = `
declare const tlsSocket: import('node:tls').TLSSocket; // a node:tls client socket
declare function store(der: Buffer): void; // your storage
declare function load(): Buffer;
declare const cert: Buffer; // PEM of a certificate for localhost
declare const key: Buffer;
`;

test('every ```ts block of the README (and of docs/SESSIONS.md, docs/TLS_ENGINE.md) type-checks under strict against lib/ (fragments: with the names they leave to the reader)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tls-session-readme-fragments-'));
  try {
    // The README's and those of the guides it links to that hold TypeScript fragments.
    const blocks = ['README.md', 'docs/SESSIONS.md', 'docs/TLS_ENGINE.md'].flatMap((file) => codeBlocks(file, 'ts'));
    expect(blocks.length).toBeGreaterThanOrEqual(5);
    const files = blocks.map((block, i) => {
      const file = join(dir, `readme-block-${i + 1}.ts`);
      writeFileSync(file, block);
      return file;
    });
    writeFileSync(join(dir, 'fragment-names.d.ts'), FRAGMENT_NAMES);
    const program = ts.createProgram([join(dir, 'fragment-names.d.ts'), ...files], {
      strict: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext, // the TLS engine fragment awaits at top level
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      lib: ['lib.es2022.d.ts', 'lib.esnext.disposable.d.ts'],
      types: ['node'],
      typeRoots: [join(ROOT, 'node_modules', '@types')],
      paths: { 'tls-session': [join(ROOT, 'lib', 'index.ts')] },
      skipLibCheck: true,
      noEmit: true,
    });
    const host = ts.createCompilerHost({});
    const report = (file: string) =>
      ts.formatDiagnostics(ts.getPreEmitDiagnostics(program, program.getSourceFile(file)), {
        getCanonicalFileName: (name) => name,
        getCurrentDirectory: () => dir,
        getNewLine: () => host.getNewLine(),
      });
    // Each block by its number and first line, with what the compiler says about it (nothing).
    const label = (block: string, i: number) => `block ${i + 1}: ${block.split('\n')[0]}`;
    expect(blocks.map((block, i) => [label(block, i), report(files[i]!)])).toEqual(blocks.map((block, i) => [label(block, i), '']));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

test("examples/system-tls.ts, the TLS engine fragment's complete version, runs: a session saved as DER resumes", () => {
  const run = spawnSync(process.execPath, ['-r', REGISTER_TS, join(ROOT, 'examples', 'system-tls.ts')], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
  expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });
  expect(run.stdout.trim().split('\n')).toEqual([
    expect.stringMatching(/^hello over TLSv1\.3 from OpenSSL 3\.\S+ .*\| resumed: false$/),
    expect.stringMatching(/^hello over TLSv1\.3 from OpenSSL 3\.\S+ .*\| resumed: true$/),
  ]);
});
