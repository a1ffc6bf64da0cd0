/**
 * The published package, as a user gets it: `npm pack` on a copy of this tree (its prepack step
 * builds the library and the prebuilt addon), then `npm install <tarball>` into a new app with
 * Node 24 and with this machine's Node, on a PATH that has no compiler, make or python. Then the
 * app requires and imports it. Packing runs in a copy because it rebuilds build/ and prebuilds/,
 * which the other tests load the addon from.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as tls from 'node:tls';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { freePort } from './helpers/free-port';
import { makePki, type Pki } from './helpers/pki';
import { codeBlock } from './persist/helpers/readme-example';

/** Tries `attempt` until it resolves (the server is up), failing at once if `gone()` (it exited: stderr says why). */
async function waitForServer<T>(attempt: () => Promise<T>, gone: () => boolean, stderr: () => string): Promise<T> {
  for (let tries = 0; ; tries++) {
    try {
      return await attempt();
    } catch (error) {
      if (gone() || tries > 300)
        throw new Error(`the server did not come up: ${(error as Error).message}; stderr: ${stderr()}`, { cause: error });
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

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
    // A rough bound, not a target: about 140 files today (dist/lib JavaScript and declarations,
    // two prebuilt addons, docs). Far above it means something unintended is packed.
    expect(packed.length).toBeLessThan(200);
  });

  test('no shipped file points at a source map', () => {
    const src = join(work, 'src');
    const withMaps = packed.filter(
      (path) => /\.(js|mjs)$/.test(path) && readFileSync(join(src, path), 'utf8').includes('sourceMappingURL'),
    );
    expect(withMaps).toEqual([]);
  });

  test('the packed package.json has no prepare (npm 11 would list it for approval); the tree keeps it (postpack)', () => {
    const shipped = JSON.parse(execFileSync('tar', ['xzf', tarball, '-O', 'package/package.json'], { encoding: 'utf8' }));
    expect(shipped.scripts.prepare).toBeUndefined();
    expect(shipped.scripts.install).toBe('node scripts/install.js');
    const tree = JSON.parse(readFileSync(join(work, 'src', 'package.json'), 'utf8'));
    expect(tree.scripts.prepare).toBe('tsc -p tsconfig.json');
    expect(readFileSync(join(work, 'src', 'package.json'), 'utf8')).toBe(readFileSync(join(root, 'package.json'), 'utf8'));
  });

  test('a clone has no dist/: its prepare (npm install runs it) builds one, and `npm run demo` runs from it', () => {
    const src = join(work, 'src');
    rmSync(join(src, 'dist'), { recursive: true, force: true });
    // Node 24 first on PATH: node:sqlite, so the demo does not depend on the better-sqlite3 build in node_modules.
    const env = cleanEnv({ npm_config_update_notifier: 'false', PATH: `${dirname(node24)}:${process.env.PATH}` });
    const prepare = spawnSync('npm', ['run', 'prepare'], { cwd: src, env, encoding: 'utf8', timeout: 180_000 });
    expect(prepare.status).toBe(0);
    expect(existsSync(join(src, 'dist', 'lib', 'cli', 'main.js'))).toBe(true);
    const demo = spawnSync('npm', ['run', '--silent', 'demo'], { cwd: src, env, encoding: 'utf8', timeout: 120_000 });
    expect({ status: demo.status, stderr: demo.stderr }).toEqual({ status: 0, stderr: '' });
    expect(demo.stdout).toMatch(/sessions from before the restart that resumed after it: [1-6] of 6\n/);
  }, 300_000);

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
    // Without allowScripts npm 11 names the install script it holds back, and no prepare.
    if (app.install.output.includes('not yet covered by allowScripts')) {
      expect(app.install.output).toMatch(/tls-session@[\d.]+ \(install: node scripts\/install\.js\)/);
    }
    expect(app.install.output).not.toContain('prepare:');
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

  test('`npx tls-session demo` runs from the package (no compiler, no openssl CLI on PATH) and shows resumption across a restart, with reasons', () => {
    for (const tool of ['openssl', 'cc', 'c++', 'tsc']) expect(existsSync(join(app.bin, tool))).toBe(false);
    const npxCli = join(dirname(npmCli), 'npx-cli.js');
    const r = spawnSync(app.node, [npxCli, '--offline', 'tls-session', 'demo'], {
      cwd: app.dir,
      env: cleanEnv({ PATH: app.bin, npm_config_update_notifier: 'false' }),
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    expect(r.stdout).toContain('(Node v24.');
    expect(r.stdout).toContain('a throwaway self-signed one for localhost, made now');
    expect(r.stdout).toMatch(/full handshake: TLS 1\.2 client 1, visit 1 \(TLSv1\.2\): first visit \(no session yet\)/);
    expect(r.stdout).toMatch(/after restart\s+TLS 1\.2, session ID \(store\)\s+0\s+9/);
    expect(r.stdout).toMatch(/sessions from before the restart that resumed after it: [1-6] of 6\n/);
    console.log(`npx tls-session demo on Node 24, from the package:\n${r.stdout}`);
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

  test("the README's server block runs as the README says: saved as server.mts, `node server.mts` on Node 24", async () => {
    const server = codeBlock('README.md', 'ts', (block) => block.includes('new SqliteStore(') && block.includes('TicketKeyRing'));
    const run = codeBlock('README.md', 'sh', (block) => block.includes('node server.mts'));
    const dir = join(app.dir, 'server-mts');
    mkdirSync(dir);
    writeFileSync(join(dir, 'server.mts'), server);
    copyFileSync(pki.serverKeyPath, join(dir, 'key.pem'));
    copyFileSync(pki.serverCertPath, join(dir, 'cert.pem'));
    const tools = join(dir, 'tools'); // the command's `openssl rand`, and nothing else
    mkdirSync(tools);
    symlinkSync(execFileSync('sh', ['-c', 'command -v openssl'], { encoding: 'utf8' }).trim(), join(tools, 'openssl'));
    const port = await freePort();
    // Its own process group: the shell may keep node as a child, and both must go at the end.
    const child = spawn('/bin/sh', ['-c', run], {
      cwd: dir,
      env: cleanEnv({ PATH: `${app.bin}:${tools}`, PORT: String(port) }),
      detached: true,
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    try {
      const connect = (session?: Buffer) =>
        new Promise<{ reused: boolean; session?: Buffer }>((resolve, reject) => {
          const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.ca, session });
          let latest: Buffer | undefined;
          socket.on('session', (s: Buffer) => (latest = s));
          socket.once('error', reject);
          let reused = false;
          socket.once('secureConnect', () => {
            reused = socket.isSessionReused();
            socket.end('GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
          });
          socket.on('data', () => undefined);
          socket.once('close', () => resolve({ reused, session: latest }));
        });
      const first = await waitForServer(
        () => connect(),
        () => child.exitCode !== null,
        () => stderr,
      );
      expect(first.reused).toBe(false);
      expect((await connect(first.session)).reused).toBe(true); // a TLS 1.3 ticket of the ring
    } finally {
      process.kill(-child.pid!, 'SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
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

  test('npm 11 holds back only the install script (no prepare); `npm install-scripts approve tls-session` allows it', () => {
    expect(app.install.status).toBe(0);
    expect(app.install.output).toMatch(/tls-session@[\d.]+ \(install: node scripts\/install\.js\)\n/);
    const npm = (...args: string[]) =>
      spawnSync(app.node, [npmCli, ...args], { cwd: app.dir, env: cleanEnv({ PATH: app.bin }), encoding: 'utf8', timeout: 60_000 });
    const approve = npm('install-scripts', 'approve', 'tls-session');
    expect(approve.status).toBe(0);
    // A tarball is matched by its resolved location, a registry package by name (the README's form).
    const allowScripts = JSON.parse(readFileSync(join(app.dir, 'package.json'), 'utf8')).allowScripts;
    expect(Object.values(allowScripts)).toEqual([true]);
    console.log(`npm install-scripts approve wrote: ${JSON.stringify(allowScripts)}`);
    const pending = npm('install-scripts', 'ls');
    expect(pending.status).toBe(0);
    expect(pending.stdout + pending.stderr).not.toContain('tls-session@');
  });

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
