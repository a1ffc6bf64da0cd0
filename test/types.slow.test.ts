/** The shipped .d.ts make ownership visible: only factories create Sessions, only owners free. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ts from 'typescript';

const root = join(__dirname, '..');

test('dist/lib ships declarations', () => {
  expect(existsSync(join(root, 'dist', 'lib', 'index.d.ts'))).toBe(true);
  const sessionTypes = readFileSync(join(root, 'dist', 'lib', 'session.d.ts'), 'utf8');
  expect(sessionTypes).toContain('private constructor');
  expect(sessionTypes).not.toContain('adopt(');
});

test('misuse of ownership does not type-check; correct use does', () => {
  const fixture = join(__dirname, 'fixtures', 'public-types.ts');
  const program = ts.createProgram([fixture], {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    lib: ['lib.es2022.d.ts', 'lib.esnext.disposable.d.ts'],
    types: ['node'],
    module: ts.ModuleKind.CommonJS,
    skipLibCheck: true,
  });
  const diagnostics = ts.getPreEmitDiagnostics(program).filter((d) => d.file?.fileName === fixture);
  const source = readFileSync(fixture, 'utf8').split('\n');
  const failingLines = new Set(diagnostics.map((d) => d.file!.getLineAndCharacterOfPosition(d.start!).line));
  const expectedLines = new Set(source.flatMap((line, i) => (line.includes('// expect-error') ? [i] : [])));
  expect(expectedLines.size).toBe(4);
  expect([...failingLines].sort()).toEqual([...expectedLines].sort());
});
