/**
 * The binding calls the SYSTEM libssl/libcrypto, never Node's bundled copy, and proves it.
 * Node's binary exports its OpenSSL unversioned, so anything resolved through the global
 * scope would silently land in `node`.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openssl, proveOpenSSLBinding, OpenSSLLoadError } from '../lib';
import { inChild, requireLib } from './helpers/child';

const root = join(__dirname, '..');
const addon = join(root, 'build', 'Release', 'tls_session.node');

describe('the bound OpenSSL is the system library', () => {
  test('openssl.libssl / libcrypto are the system files, not the node executable', () => {
    expect(openssl.libssl).toMatch(/\/libssl\.so\.3$/);
    expect(openssl.libcrypto).toMatch(/\/libcrypto\.so\.3$/);
    for (const file of [openssl.libssl, openssl.libcrypto]) {
      expect(existsSync(file)).toBe(true);
      expect(realpathSync(file)).toBe(file);
      expect(file).not.toBe(realpathSync(process.execPath));
    }
    const maps = readFileSync('/proc/self/maps', 'utf8');
    expect(maps).toContain(openssl.libssl);
    expect(maps).toContain(openssl.libcrypto);
  });

  test('dladdr proof: every bound function lives in the library it is listed under', () => {
    const origins = proveOpenSSLBinding();
    expect(origins.length).toBeGreaterThan(30);
    for (const row of origins) {
      expect(row).toEqual(expect.objectContaining({ ok: true, file: row.library === 'libssl' ? openssl.libssl : openssl.libcrypto }));
    }
    const byName = new Map(origins.map((row) => [row.symbol, row]));
    for (const name of ['d2i_SSL_SESSION', 'i2d_SSL_SESSION', 'SSL_SESSION_free', 'SSL_SESSION_up_ref', 'SSL_get1_session']) {
      expect(byName.get(name)?.file).toBe(openssl.libssl);
    }
    expect(byName.get('ERR_get_error')?.file).toBe(openssl.libcrypto);
  });

  test("the version is the system library's, as the openssl CLI (linked to it) reports", () => {
    const cli = execFileSync('openssl', ['version', '-v'], { encoding: 'utf8' }).trim();
    const libraryVersion = /Library: (OpenSSL [^)]+)\)/.exec(cli)?.[1] ?? cli;
    expect(openssl.version).toBe(libraryVersion);
    expect(openssl.versionNumber >>> 28).toBe(3);
    const nodeBundled = process.versions.openssl.replace(/\+.*/, '');
    if (!openssl.version.includes(` ${nodeBundled} `)) {
      // This machine's system OpenSSL differs from Node's bundled one: the difference is visible.
      expect(openssl.version).not.toContain(nodeBundled);
    }
  });

  test("the addon imports no OpenSSL symbol (it would resolve to Node's copy)", () => {
    const undefinedSymbols = execFileSync('nm', ['-D', '--undefined-only', addon], { encoding: 'utf8' });
    expect(undefinedSymbols).toMatch(/napi_create_/); // nm did read the addon's imports
    const openSSLImports = undefinedSymbols
      .split('\n')
      .filter((line) => /\s(SSL|SSL_CTX|BIO|X509|EVP|PEM|ERR|CRYPTO|OPENSSL|OpenSSL|d2i|i2d|ASN1|TLS|DTLS)_?\w*$/.test(line.trim()))
      .filter((line) => !/napi_|node_api/.test(line));
    expect(openSSLImports).toEqual([]);
  });
});

describe("libssl's own references are proven bound inside the system pair", () => {
  test('thousands of relocations of libssl and libcrypto were checked at load', () => {
    expect(openssl.relocationsChecked).toBeGreaterThan(1000);
  });

  test('in a process where nothing else loaded libssl.so.3, it is loaded isolated (test/coexistence.test.ts: the other ways)', () => {
    expect(openssl).toEqual(expect.objectContaining({ loadedAs: 'isolated', fallbackReasons: [], linkMapNamespace: 0, importsRebound: 0 }));
  });

  test("without RTLD_DEEPBIND, Node interposes libssl's internal calls, and the load-time proof refuses", () => {
    // The entry points alone would pass dladdr: it is d2i_SSL_SESSION's own calls (e.g. into
    // SSL_SESSION_new, OPENSSL_sk_*) that the global scope hands to Node's bundled copy.
    const r = inChild(
      `try { ${requireLib}; console.log('{"loaded":true}') } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }`,
      { TLS_SESSION_NO_DEEPBIND: '1' },
    );
    const error = JSON.parse(r.out);
    expect(error.code).toBe('ERR_TLS_SESSION_LIBSSL');
    expect(error.message).toContain(`was bound to ${realpathSync(process.execPath)} instead of ${openssl.libcrypto}`);
  });
});

describe('TLS_SESSION_LIBSSL selects another OpenSSL', () => {
  test('a copy of libssl in another directory is the one bound', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tls-session-libssl-'));
    const copy = join(dir, 'libssl.so.3');
    copyFileSync(openssl.libssl, copy);
    const r = inChild(
      `const t = ${requireLib}; const p = t.proveOpenSSLBinding();
      console.log(JSON.stringify({ libssl: t.openssl.libssl, allOk: p.every((x) => x.ok), free: p.find((x) => x.symbol === 'SSL_SESSION_free').file }));`,
      { TLS_SESSION_LIBSSL: copy },
    );
    expect(r.err).toBe('');
    const report = JSON.parse(r.out);
    expect(report).toEqual({ libssl: realpathSync(copy), allOk: true, free: realpathSync(copy) });
  });

  test('a missing library fails require() with one clear message naming the file and the fix', () => {
    const r = inChild(
      `try { ${requireLib} } catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })) }`,
      { TLS_SESSION_LIBSSL: '/nonexistent/libssl.so.3' },
    );
    const error = JSON.parse(r.out);
    expect(error.name).toBe(OpenSSLLoadError.name);
    expect(error.code).toBe('ERR_TLS_SESSION_LIBSSL');
    expect(error.message).toContain('/nonexistent/libssl.so.3');
    expect(error.message).toContain('apt-get install libssl3');
    expect(error.message).toContain('TLS_SESSION_LIBSSL');
  });

  test('a library without a needed symbol is refused, naming the symbol and the file', () => {
    const r = inChild(`try { ${requireLib} } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }`, {
      TLS_SESSION_LIBSSL: openssl.libcrypto,
    });
    const error = JSON.parse(r.out);
    expect(error.code).toBe('ERR_TLS_SESSION_LIBSSL');
    expect(error.message).toMatch(/symbol d2i_SSL_SESSION is missing from .*libcrypto\.so\.3/);
  });
});
