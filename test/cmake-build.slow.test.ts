/**
 * The cmake-js build (`npm run build:cmake`) is the same addon as node-gyp's: it loads, binds the
 * same system library and decodes the same session. Slow lane (`npm run test:slow`): it builds.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { openssl, Session } from '../lib';
import { inChild, requireLib } from './helpers/child';
import { makeSampleSessions } from './helpers/sessions';

const root = join(__dirname, '..');

describe('the cmake-js build is the same addon', () => {
  const cmakeAddon = join(root, 'build-cmake', 'Release', 'tls_session.node');

  beforeAll(() => {
    // Incremental: quick when `npm run build:cmake` (CI) already built it from these sources.
    execFileSync('npx', ['cmake-js', existsSync(cmakeAddon) ? 'build' : 'rebuild', '--out', 'build-cmake'], {
      cwd: root,
      stdio: 'ignore',
      timeout: 300_000,
    });
  }, 320_000);

  test('it loads, binds the same system library and decodes the same session', async () => {
    const { server } = await makeSampleSessions();
    const r = inChild(
      `const t = ${requireLib}; const s = t.Session.fromDER(Buffer.from(${JSON.stringify(server.toString('base64'))}, 'base64'));
      console.log(JSON.stringify({ libssl: t.openssl.libssl, id: s.id.toString('hex'), same: s.toDER().toString('base64') }));`,
      { TLS_SESSION_ADDON: cmakeAddon },
    );
    expect(r.err).toBe('');
    const out = JSON.parse(r.out);
    const local = Session.fromDER(server);
    expect(out).toEqual({ libssl: openssl.libssl, id: local.id.toString('hex'), same: server.toString('base64') });
    local.free();
  });
});
