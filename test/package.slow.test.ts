/**
 * The published package, as a user gets it: `npm pack` on a copy of this tree (its prepack step
 * builds the library and the prebuilt addon), then `npm install <tarball>` into a new app with
 * Node 24 and with this machine's Node, on a PATH that has no compiler, make or python. Then the
 * app requires and imports it. Packing runs in a copy because it rebuilds build/ and prebuilds/,
 * which the other tests load the addon from.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { makePki, type Pki } from './helpers/pki';

const root = join(__dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'tls-session-package-'));
const npmCli = join(execFileSync('npm', ['root', '-g'], { encoding: 'utf8' }).trim(), 'npm', 'bin', 'npm-cli.js');
const globalNpmrc = execFileSync('npm', ['config', 'get', 'globalconfig'], { encoding: 'utf8' }).trim();
const node24 = join(execFileSync('bash', [join(root, 'scripts', 'install-node.sh'), '24'], { encoding: 'utf8' }).trim(), 'bin', 'node');

let tarball: string;
let packed: string[];
let pki: Pki;

/** A PATH holding only `node` (the given binary) and `sh`: no cc, c++, make or python3. */
function bareBin(node: string): string {
  const bin = mkdtempSync(join(work, 'bin-'));
  symlinkSync(node, join(bin, 'node'));
  symlinkSync('/bin/sh', join(bin, 'sh'));
  return bin;
}

/** The environment without the npm_* variables of the `npm run` this test runs under. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!/^npm_/i.test(key)) env[key] = value;
  return { ...env, npm_config_globalconfig: globalNpmrc, ...extra };
}

interface App {
  dir: string;
  node: string;
  bin: string;
  install: { status: number | null; ms: number; output: string };
}

function installApp(name: string, node: string): App {
  const dir = join(work, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true }));
  const bin = bareBin(node);
  const started = Date.now();
  const r = spawnSync(node, [npmCli, 'install', '--prefer-offline', '--no-audit', '--no-fund', tarball], {
    cwd: dir,
    env: cleanEnv({ PATH: bin }),
    encoding: 'utf8',
    timeout: 240_000,
  });
  return { dir, node, bin, install: { status: r.status, ms: Date.now() - started, output: r.stdout + r.stderr } };
}

/** Runs a script file in the app with its Node and bare PATH; returns the JSON it prints last. */
function runInApp(app: App, file: string, source: string): { status: number | null; result: any; stderr: string } {
  writeFileSync(join(app.dir, file), source);
  const r = spawnSync(app.node, [file], {
    cwd: app.dir,
    env: cleanEnv({ PATH: app.bin, PKI_DIR: pki.dir }),
    encoding: 'utf8',
    timeout: 60_000,
  });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  let result: unknown;
  try {
    result = JSON.parse(last);
  } catch {
    result = { unparsed: r.stdout };
  }
  return { status: r.status, result, stderr: r.stderr };
}

beforeAll(() => {
  pki = makePki();
  const src = join(work, 'src');
  const tree = execFileSync('git', ['ls-files', '-co', '--exclude-standard', '-z'], { cwd: root, encoding: 'utf8' });
  for (const file of tree.split('\0').filter(Boolean)) {
    if (!existsSync(join(root, file))) continue; // deleted in the work tree, not yet in git
    mkdirSync(dirname(join(src, file)), { recursive: true });
    copyFileSync(join(root, file), join(src, file));
  }
  symlinkSync(join(root, 'node_modules'), join(src, 'node_modules'));
  execFileSync('npm', ['pack', '--pack-destination', work], { cwd: src, stdio: ['ignore', 'ignore', 'pipe'], timeout: 300_000 });
  const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
  tarball = join(work, `tls-session-${version}.tgz`);
  packed = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map((path) => path.replace(/^package\//, ''));
}, 400_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the tarball holds the product and nothing else', () => {
  test('library, declarations, ES-module entries, prebuilt addon, fallback sources, README, LICENSE, docs', () => {
    for (const file of [
      'LICENSE',
      'README.md',
      'package.json',
      'dist/lib/index.js',
      'dist/lib/index.d.ts',
      'dist/lib/persist/index.d.ts',
      'dist/lib/tls/index.d.ts',
      'dist/esm/index.mjs',
      'dist/esm/persist.mjs',
      'dist/esm/tls.mjs',
      'prebuilds/linux-x64/tls-session.glibc.node',
      'binding.gyp',
      'binding/addon.cc',
      'binding/openssl_library.h',
      'binding/build-flags.json',
      'scripts/install.js',
      'scripts/openssl-include.js',
      'docs/ARCHITECTURE.md',
    ]) {
      expect(packed).toContain(file);
    }
    expect(readFileSync(join(root, 'LICENSE'), 'utf8')).toMatch(/^MIT License/);
  });

  test('no bench, examples, tests, TypeScript sources, source maps, dev scripts or build configuration', () => {
    const devFiles = packed.filter(
      (path) =>
        /^(bench|examples|test|lib|build|build-cmake|build-bench|node_modules|\.ci)\//.test(path) ||
        /^dist\/(bench|examples)\//.test(path) ||
        /^binding\/bench\//.test(path) ||
        /\.map$/.test(path) ||
        (/\.ts$/.test(path) && !/\.d\.ts$/.test(path)) ||
        /^scripts\/(memcheck|node-lines|install-node|esm-wrappers|build-package)/.test(path) ||
        /^(CMakeLists\.txt|tsconfig.*\.json|jest\.config\.js|eslint\.config\.mjs|package-lock\.json)$/.test(path),
    );
    expect(devFiles).toEqual([]);
    expect(packed.length).toBeLessThan(120);
  });

  test('no shipped file points at a source map', () => {
    const src = join(work, 'src');
    const withMaps = packed.filter(
      (path) => /\.(js|mjs)$/.test(path) && readFileSync(join(src, path), 'utf8').includes('sourceMappingURL'),
    );
    expect(withMaps).toEqual([]);
  });

  test('os, cpu and libc are the platforms the load-time proof supports', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    expect(pkg.os).toEqual(['linux']);
    expect(pkg.cpu).toEqual(['x64', 'arm64']); // the relocation proof knows x86-64 and AArch64 relocation types
    expect(pkg.libc).toEqual(['glibc']); // musl has no RTLD_DEEPBIND or dlmopen
  });
});

describe('installed on Node 24 without a compiler', () => {
  let app: App;
  beforeAll(() => {
    app = installApp('app-node24', node24);
  }, 300_000);

  test('the install succeeds, uses the prebuilt addon and compiles nothing', () => {
    expect(app.install).toMatchObject({ status: 0 });
    for (const tool of ['cc', 'c++', 'g++', 'make', 'python3']) expect(existsSync(join(app.bin, tool))).toBe(false);
    const installed = join(app.dir, 'node_modules', 'tls-session');
    expect(existsSync(join(installed, 'prebuilds', 'linux-x64', 'tls-session.glibc.node'))).toBe(true);
    expect(existsSync(join(installed, 'build'))).toBe(false);
    expect(existsSync(join(app.dir, 'node_modules', 'better-sqlite3'))).toBe(false); // optional: not installed
    // The command is linked and starts (package.json "bin"): usage on stdout, exit 0.
    const help = spawnSync(app.node, [join(app.dir, 'node_modules', '.bin', 'tls-session'), '--help'], {
      encoding: 'utf8',
      env: cleanEnv({ PATH: app.bin }),
    });
    expect([help.status, help.stderr]).toEqual([0, '']);
    expect(help.stdout).toMatch(/inspect[\s\S]*probe[\s\S]*store/);
    const size = statSync(tarball).size;
    console.log(`package: ${packed.length} files, ${(size / 1024).toFixed(0)} KiB; install on Node 24: ${app.install.ms} ms`);
  });

  test('require: the root loads no Redis client, no SQLite binding and no LRU cache; sessions, SqliteStore (node:sqlite) and RedisStore work', () => {
    const { status, result, stderr } = runInApp(
      app,
      'cjs.js',
      `
      const tls = require('node:tls');
      const { readFileSync } = require('node:fs');
      const loaded = () => ({
        ioredis: Object.keys(require.cache).some((k) => k.includes('/ioredis/')),
        sqlite: process.moduleLoadList.some((m) => /sqlite/.test(m)) || Object.keys(require.cache).some((k) => k.includes('better-sqlite3')),
        lruCache: Object.keys(require.cache).some((k) => k.includes('/lru-cache/')),
      });
      const ts = require('tls-session');
      const atRequire = loaded();
      const { Session, SqliteStore, RedisStore, openssl } = ts;
      const pki = (name) => readFileSync(process.env.PKI_DIR + '/' + name);
      // Ticket-less TLS 1.2: Node's server then reports its session-ID sessions through newSession.
      const server = tls.createServer({ key: pki('server.key'), cert: pki('server.crt'), maxVersion: 'TLSv1.2', secureOptions: require('node:crypto').constants.SSL_OP_NO_TICKET });
      server.on('newSession', async (id, der, done) => {
        done();
        server.close();
        const session = Session.fromDER(der);
        const roundTrip = session.toDER().equals(der);
        const protocol = session.protocol;
        session.free();
        const store = new SqliteStore({ path: 'sessions.db' });
        await store.set('key', Buffer.from('value'), 60);
        const value = (await store.get('key')).toString();
        await store.close();
        const redis = new RedisStore({ url: 'redis://127.0.0.1:1' });
        await redis.close();
        await new ts.MemoryStore().close();
        console.log(JSON.stringify({ atRequire, atEnd: loaded(), roundTrip, protocol, value, backend: store.backend, libssl: openssl.libssl }));
      });
      server.on('secureConnection', (socket) => socket.end());
      server.listen(0, '127.0.0.1', () => {
        tls.connect({ port: server.address().port, host: '127.0.0.1', rejectUnauthorized: false }).resume();
      });`,
    );
    expect({ status, stderr }).toEqual({ status: 0, stderr: '' }); // no ExperimentalWarning either
    expect(result).toEqual({
      atRequire: { ioredis: false, sqlite: false, lruCache: false },
      atEnd: { ioredis: true, sqlite: true, lruCache: true },
      roundTrip: true,
      protocol: 'TLSv1.2',
      value: 'value',
      backend: 'node:sqlite',
      libssl: expect.stringMatching(/\/libssl\.so\.3$/),
    });
  });

  test('import: named ES-module imports from the root and the subpaths, one instance with require, deep imports closed', () => {
    const { status, result, stderr } = runInApp(
      app,
      'esm.mjs',
      `
      import { createRequire } from 'node:module';
      import { Session, SessionDecodeError, SqliteStore, TlsContext as RootTlsContext } from 'tls-session';
      import defaultExport from 'tls-session';
      import { MemoryStore, attachSessionStore } from 'tls-session/persist';
      import { TlsContext, TlsConnection } from 'tls-session/tls';
      const require = createRequire(import.meta.url);
      let decodeError;
      try { Session.fromDER(Buffer.from('not a session')); } catch (e) { decodeError = { code: e.code, isClass: e instanceof SessionDecodeError }; }
      const closed = {};
      for (const deep of ['tls-session/dist/lib/session.js', 'tls-session/prebuilds/linux-x64/tls-session.glibc.node', 'tls-session/lib/index.ts']) {
        try { await import(deep); closed[deep] = 'open'; } catch (e) { closed[deep] = e.code; }
        try { require(deep); closed[deep + ' (require)'] = 'open'; } catch (e) { closed[deep + ' (require)'] = e.code; }
      }
      console.log(JSON.stringify({
        types: [typeof Session, typeof SqliteStore, typeof MemoryStore, typeof attachSessionStore, typeof TlsContext, typeof TlsConnection],
        sameInstance: Session === require('tls-session').Session && TlsContext === RootTlsContext && defaultExport.Session === Session
          && MemoryStore === require('tls-session/persist').MemoryStore,
        decodeError,
        closed,
      }));`,
    );
    expect({ status, stderr }).toEqual({ status: 0, stderr: '' });
    const code = 'ERR_PACKAGE_PATH_NOT_EXPORTED';
    expect(result).toEqual({
      types: ['function', 'function', 'function', 'function', 'function', 'function'],
      sameInstance: true,
      decodeError: { code: 'ERR_TLS_SESSION_DECODE', isClass: true },
      closed: {
        'tls-session/dist/lib/session.js': code,
        'tls-session/dist/lib/session.js (require)': code,
        'tls-session/prebuilds/linux-x64/tls-session.glibc.node': code,
        'tls-session/prebuilds/linux-x64/tls-session.glibc.node (require)': code,
        'tls-session/lib/index.ts': code,
        'tls-session/lib/index.ts (require)': code,
      },
    });
  });

  test("the README's Install example runs verbatim", () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Install\n'), readme.indexOf('\n## ', readme.indexOf('## Install\n') + 1));
    // Its install command is what installApp ran, with the packed tarball in place of the registry's.
    expect(/```sh\n([\s\S]*?)```/.exec(section)?.[1]).toBe('npm install tls-session\n');
    const example = /```mjs\n([\s\S]*?)```/.exec(section)?.[1];
    expect(example).toContain("from 'tls-session'");
    writeFileSync(join(app.dir, 'readme.mjs'), example!);
    const r = spawnSync(app.node, ['readme.mjs'], { cwd: app.dir, env: cleanEnv({ PATH: app.bin }), encoding: 'utf8', timeout: 60_000 });
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    expect(r.stdout.trim().split('\n')).toEqual([
      expect.stringMatching(/^OpenSSL 3\.\S+ .* from \/.*\/libssl\.so\.3$/),
      'hello from SqliteStore on node:sqlite',
      'function',
    ]);
  });

  test('TypeScript resolves the types condition for ES-module and CommonJS consumers', () => {
    writeFileSync(
      join(app.dir, 'check.mts'),
      `import { Session, SqliteStore, type SessionStore } from 'tls-session';
       import { MemoryStore } from 'tls-session/persist';
       import { TlsContext } from 'tls-session/tls';
       const store: SessionStore = new MemoryStore();
       export const checks: [typeof Session.fromDER, typeof SqliteStore, typeof TlsContext, SessionStore] = [Session.fromDER, SqliteStore, TlsContext, store];\n`,
    );
    writeFileSync(
      join(app.dir, 'check.cts'),
      `import ts = require('tls-session');
       export const version: string = ts.openssl.version;\n`,
    );
    writeFileSync(join(app.dir, 'deep.mts'), `import { Session } from 'tls-session/dist/lib/session.js';\nexport const s = Session;\n`);
    const tsc = (files: string[]) =>
      spawnSync(
        process.execPath,
        [
          join(root, 'node_modules', 'typescript', 'bin', 'tsc'),
          '--noEmit',
          '--strict',
          '--module',
          'nodenext',
          '--moduleResolution',
          'nodenext',
          '--types',
          'node',
          '--typeRoots',
          join(root, 'node_modules', '@types'),
          ...files,
        ],
        { cwd: app.dir, encoding: 'utf8' },
      );
    const ok = tsc(['check.mts', 'check.cts']);
    expect(ok.stdout).toBe('');
    expect(ok.status).toBe(0);
    const deep = tsc(['deep.mts']);
    expect(deep.stdout).toContain("Cannot find module 'tls-session/dist/lib/session.js'");
  });
});

describe('platforms the package cannot serve are told early', () => {
  function tryInstall(flags: string[], packageFile = tarball) {
    const dir = mkdtempSync(join(work, 'refused-'));
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'refused', version: '1.0.0', private: true }));
    const r = spawnSync(process.execPath, [npmCli, 'install', '--prefer-offline', '--no-audit', '--no-fund', ...flags, packageFile], {
      cwd: dir,
      env: cleanEnv({ PATH: bareBin(process.execPath) }),
      encoding: 'utf8',
      timeout: 120_000,
    });
    return { status: r.status, output: r.stdout + r.stderr };
  }

  /** The tarball, unpacked, changed by `edit`, and packed again. */
  function repack(name: string, edit: (dir: string) => void): string {
    const unpacked = mkdtempSync(join(work, 'unpacked-'));
    execFileSync('tar', ['xzf', tarball, '-C', unpacked]);
    edit(join(unpacked, 'package'));
    const file = join(work, `${name}.tgz`);
    execFileSync('tar', ['czf', file, '-C', unpacked, 'package']);
    return file;
  }

  // npm cannot pretend to be another platform for a direct dependency (its --os/--libc flags
  // only steer optional ones), so the check runs the other way round: the same package declaring
  // only the platform this machine is not. This npm then refuses it before any script runs.
  test.each([
    ['libc', ['musl']],
    ['os', ['darwin']],
    ['cpu', ['arm64']],
  ])('npm enforces the %s field: a package for %j is refused here (EBADPLATFORM), no script runs', (field, value) => {
    const file = repack(`only-${field}`, (dir) => {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ ...pkg, [field]: value }));
    });
    const r = tryInstall([], file);
    expect(r.status).not.toBe(0);
    expect(r.output).toContain('EBADPLATFORM');
    expect(r.output).not.toContain('tls-session:');
  });

  test('no prebuilt addon and no compiler: the install stops with one line naming what is missing', () => {
    // The tarball without its prebuilds/: what a platform without a prebuilt binary gets.
    const withoutPrebuilds = repack('without-prebuilds', (dir) => rmSync(join(dir, 'prebuilds'), { recursive: true }));
    const r = tryInstall([], withoutPrebuilds);
    expect(r.status).not.toBe(0);
    expect(r.output).toContain(
      'tls-session: no prebuilt addon for linux-x64 in this package, and building it from source needs a C++ compiler (g++), make, python3',
    );
    expect(r.output).not.toMatch(/gyp ERR|make: \*\*\*/);
  });
});

describe("installed on this machine's Node without a compiler", () => {
  let app: App;
  beforeAll(() => {
    app = installApp('app-default-node', process.execPath);
  }, 300_000);

  test('install and require work; SqliteStore needs better-sqlite3 below Node 22 and says so', () => {
    expect(app.install).toMatchObject({ status: 0 });
    const { status, result } = runInApp(
      app,
      'sqlite.js',
      `
      const { SqliteStore, Session } = require('tls-session');
      let error = null;
      try { new SqliteStore({ path: 'sessions.db' }).close(); } catch (e) { error = { code: e.code, message: e.message }; }
      console.log(JSON.stringify({ session: typeof Session, node: process.versions.node, error }));`,
    );
    expect(status).toBe(0);
    expect(result.session).toBe('function');
    if (Number(result.node.split('.')[0]) < 22) {
      expect(result.error.code).toBe('ERR_TLS_SESSION_PERSIST_CONFIG');
      expect(result.error.message).toContain('npm install better-sqlite3');
    } else {
      expect(result.error).toBeNull();
    }
  });
});
