/**
 * Rules of the native layer that a reviewer should not have to check by eye
 * (docs/ARCHITECTURE.md, "Owner types"): no OpenSSL object is freed by hand outside the owner
 * types' deleters, and every callback OpenSSL calls is noexcept.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const bindingDir = join(__dirname, '..', 'binding');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return /\.(cc|h)$/.test(entry.name) ? [path] : [];
  });
}

test('no OpenSSL *_free call outside binding/openssl_pointers.h (the owner types)', () => {
  const offenders = sources(bindingDir)
    .filter((file) => !file.endsWith('openssl_pointers.h') && !file.endsWith('openssl_symbols.h'))
    .flatMap((file) =>
      readFileSync(file, 'utf8')
        .split('\n')
        .map((line, i) => ({ file, line: i + 1, text: line })),
    )
    .filter(({ text }) => /\b(api|ossl\(\))\s*\.\s*\w+_free\s*\(/.test(text));
  expect(offenders).toEqual([]);
});

test('every session-cache and info callback OpenSSL calls is declared noexcept', () => {
  const header = readFileSync(join(bindingDir, 'tls_context.h'), 'utf8');
  const callbacks = [...header.matchAll(/static [^;(]+ (On\w+)\(([^;]*)\)( noexcept)?;/g)];
  expect(callbacks.map((m) => m[1])).toEqual(
    expect.arrayContaining(['OnNewSession', 'OnGetSession', 'OnRemoveSession', 'OnInfo', 'OnAlpnSelect']),
  );
  expect(callbacks.filter((m) => m[3] === undefined).map((m) => m[1])).toEqual([]);
});
