/**
 * The binding calls the SYSTEM libssl/libcrypto, never Node's bundled copy, and proves it.
 * Node's binary exports its OpenSSL unversioned, so anything resolved through the global
 * scope would silently land in `node`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openssl, proveOpenSSLBinding, Session, OpenSSLLoadError } from '../lib';
import { makeSampleSessions } from './helpers/sessions';

const root = join(__dirname, '..');
const addon = join(root, 'build', 'Release', 'tls_session.node');

/** Runs a snippet in a fresh node process against the given environment; returns its JSON output. */
function inChild(code: string, env: Record<string, string> = {}): { status: number | null; out: string; err: string } {
  const result = spawnSync(process.execPath, ['-e', code], {
    cwd: root, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000,
  });
  return { status: result.status, out: result.stdout, err: result.stderr };
}

const requireLib = `require(${JSON.stringify(join(root, 'dist', 'lib', 'index.js'))})`;

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

  test('the version is the system library\'s, as the openssl CLI (linked to it) reports', () => {
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

  test('the addon imports no OpenSSL symbol (it would resolve to Node\'s copy)', () => {
    const undefinedSymbols = execFileSync('nm', ['-D', '--undefined-only', addon], { encoding: 'utf8' });
    expect(undefinedSymbols).toMatch(/napi_create_/); // nm did read the addon's imports
    const openSSLImports = undefinedSymbols.split('\n')
      .filter((line) => /\s(SSL|SSL_CTX|BIO|X509|EVP|PEM|ERR|CRYPTO|OPENSSL|OpenSSL|d2i|i2d|ASN1|TLS|DTLS)_?\w*$/.test(line.trim()))
      .filter((line) => !/napi_|node_api/.test(line));
    expect(openSSLImports).toEqual([]);
  });
});

describe('libssl\'s own references are proven bound inside the system pair', () => {
  test('thousands of relocations of libssl and libcrypto were checked at load', () => {
    expect(openssl.relocationsChecked).toBeGreaterThan(1000);
  });

  test('without RTLD_DEEPBIND, Node interposes libssl\'s internal calls, and the load-time proof refuses', () => {
    // The entry points alone would pass dladdr: it is d2i_SSL_SESSION's own calls (e.g. into
    // SSL_SESSION_new, OPENSSL_sk_*) that the global scope hands to Node's bundled copy.
    const r = inChild(`try { ${requireLib}; console.log('{"loaded":true}') } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }`,
      { TLS_SESSION_NO_DEEPBIND: '1' });
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
    const r = inChild(`const t = ${requireLib}; const p = t.proveOpenSSLBinding();
      console.log(JSON.stringify({ libssl: t.openssl.libssl, allOk: p.every((x) => x.ok), free: p.find((x) => x.symbol === 'SSL_SESSION_free').file }));`,
    { TLS_SESSION_LIBSSL: copy });
    expect(r.err).toBe('');
    const report = JSON.parse(r.out);
    expect(report).toEqual({ libssl: realpathSync(copy), allOk: true, free: realpathSync(copy) });
  });

  test('a missing library fails require() with one clear message naming the file and the fix', () => {
    const r = inChild(`try { ${requireLib} } catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })) }`,
      { TLS_SESSION_LIBSSL: '/nonexistent/libssl.so.3' });
    const error = JSON.parse(r.out);
    expect(error.name).toBe(OpenSSLLoadError.name);
    expect(error.code).toBe('ERR_TLS_SESSION_LIBSSL');
    expect(error.message).toContain('/nonexistent/libssl.so.3');
    expect(error.message).toContain('apt-get install libssl3');
    expect(error.message).toContain('TLS_SESSION_LIBSSL');
  });

  test('a library without a needed symbol is refused, naming the symbol and the file', () => {
    const r = inChild(`try { ${requireLib} } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }`,
      { TLS_SESSION_LIBSSL: openssl.libcrypto });
    const error = JSON.parse(r.out);
    expect(error.code).toBe('ERR_TLS_SESSION_LIBSSL');
    expect(error.message).toMatch(/symbol d2i_SSL_SESSION is missing from .*libcrypto\.so\.3/);
  });
});

describe('the cmake-js build is the same addon', () => {
  const cmakeAddon = join(root, 'build-cmake', 'Release', 'tls_session.node');

  beforeAll(() => {
    // Incremental: quick when `npm run build:cmake` (CI) already built it from these sources.
    execFileSync('npx', ['cmake-js', existsSync(cmakeAddon) ? 'build' : 'rebuild', '--out', 'build-cmake'],
      { cwd: root, stdio: 'ignore', timeout: 300_000 });
  }, 320_000);

  test('it loads, binds the same system library and decodes the same session', async () => {
    const { server } = await makeSampleSessions();
    const r = inChild(`const t = ${requireLib}; const s = t.Session.fromDER(Buffer.from(${JSON.stringify(server.toString('base64'))}, 'base64'));
      console.log(JSON.stringify({ libssl: t.openssl.libssl, id: s.id.toString('hex'), same: s.toDER().toString('base64') }));`,
    { TLS_SESSION_ADDON: cmakeAddon });
    expect(r.err).toBe('');
    const out = JSON.parse(r.out);
    const local = Session.fromDER(server);
    expect(out).toEqual({ libssl: openssl.libssl, id: local.id.toString('hex'), same: server.toString('base64') });
    local.free();
  });
});
