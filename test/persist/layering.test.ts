/**
 * The persistence layer's import rules (docs/ARCHITECTURE.md, "Layers"), checked on the sources so
 * that a reviewer does not have to: records/ and stores/ never reach server/ or client/ (nor each
 * other), server/ and client/ do not import each other, only server/ticket-key-ring.ts imports the
 * engine, and nothing in lib/persist reads a Node internal except through lib/node-internals.ts.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const persist = join(__dirname, '..', '..', 'lib', 'persist');
const lib = dirname(persist);

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? sources(path) : entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Every relative module a file imports (static, dynamic, require), as a path under lib/. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from|import\(|require\()\s*'(\.{1,2}\/[^']+)'/g)].map((m) => relative(lib, resolve(dirname(file), m[1]!)));
}

const edges = sources(persist).flatMap((file) => importsOf(file).map((target) => ({ from: relative(lib, file), to: target })));

test('the rules see the imports (a broken reader would pass every rule)', () => {
  expect(edges.length).toBeGreaterThan(50);
  expect(edges).toContainEqual({ from: 'persist/server/attach.ts', to: 'persist/stores/gateway' });
});

test.each([
  ['persist/records/', /^persist\/(server|client|stores)\//],
  ['persist/stores/', /^persist\/(server|client|records)\//],
  ['persist/server/', /^persist\/client\//],
  ['persist/client/', /^persist\/server\//],
])('%s imports nothing matching %s', (from, forbidden) => {
  expect(edges.filter((edge) => edge.from.startsWith(from) && forbidden.test(edge.to))).toEqual([]);
});

test('only server/ticket-key-ring.ts imports the engine (lib/tls)', () => {
  expect([...new Set(edges.filter((edge) => edge.to.startsWith('tls/')).map((edge) => edge.from))]).toEqual([
    'persist/server/ticket-key-ring.ts',
  ]);
});

test('Node internals are reached through lib/node-internals.ts only', () => {
  // Code only: comments may name an internal to explain it.
  const code = (file: string): string =>
    readFileSync(file, 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/\/\/.*$/gm, '');
  const files = sources(persist).map((file) => ({ file: relative(lib, file), text: code(file) }));
  // Socket and handle internals: never read here (node-internals.ts has accessors for them).
  expect(files.filter(({ text }) => /\._(host|handle|parent|secureContext|tlsOptions)\b/.test(text)).map(({ file }) => file)).toEqual([]);
  // tls.Server internals: only on what node-internals.ts's typed accessors return.
  const serverInternalUsers = files.filter(({ text }) => /\._(sharedCreds|contexts)\b/.test(text)).map(({ file }) => file);
  expect(serverInternalUsers.length).toBeGreaterThan(0);
  for (const file of serverInternalUsers)
    expect(edges.filter((edge) => edge.from === file).map((edge) => edge.to)).toContain('node-internals');
});
