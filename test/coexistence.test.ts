/**
 * tls-session beside other users of the system OpenSSL in one process: a fixture addon linked
 * normally with -lssl (test/fixtures/libssl-user), loaded before or after tls-session, and a
 * second copy of tls-session itself. Each way the binding takes (openssl.loadedAs) must be
 * proven, and real work must succeed on both sides. Every scenario runs in its own process:
 * the library is loaded once per process.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, realpathSync } from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { openssl } from '../lib';
import { inChild, requireLib } from './helpers/child';
import { makeSampleSessions, type SampleSessions } from './helpers/sessions';
import {
  buildFixture,
  ccAvailable,
  copyWithoutBindNow,
  runCoexistChild,
  type ChildConfig,
  type ChildReport,
} from './fixtures/libssl-user/fixture';

const root = join(__dirname, '..');
const addon = join(root, 'build', 'Release', 'tls_session.node');
const node = realpathSync(process.execPath);

if (!ccAvailable) console.warn('test/coexistence.test.ts: SKIPPED, no C compiler (cc) on PATH to build the -lssl fixture addon');
const describeWithCc = ccAvailable ? describe : describe.skip;

let samples: SampleSessions;
let fixture: string;
let base: Omit<ChildConfig, 'order'>;
beforeAll(async () => {
  samples = await makeSampleSessions();
  if (ccAvailable) fixture = buildFixture(mkdtempSync(join(tmpdir(), 'tls-session-fixture-')));
  base = {
    fixture,
    certPath: samples.pki.serverCertPath,
    keyPath: samples.pki.serverKeyPath,
    caPath: samples.pki.caCertPath,
    der: samples.server.toString('base64'),
  };
}, 60_000);

/** Real work succeeded on both sides: the fixture's own OpenSSL calls, and tls-session's sessions and handshakes. */
function expectBothWork(report: ChildReport): void {
  expect(report.proofOk).toBe(true);
  expect(report.relocationsChecked).toBeGreaterThan(1000);
  for (const work of [report.fixtureBefore, report.fixtureAfter]) {
    expect(work).toEqual(expect.objectContaining({ ok: true, derLength: expect.any(Number) }));
    expect(work!.derLength).toBeGreaterThan(100);
  }
  expect(report.fromDER).toEqual({ protocol: 'TLSv1.2', roundTrip: true });
  expect(report.handshake).toEqual({ protocol: 'TLSv1.2', firstReused: false, resumed: true });
  // The fixture's OpenSSL parses the session tls-session's engine made.
  expect(report.fixtureDecodesEngineSession).toEqual({ ok: true, protocol: 0x0303 });
  expect(report.liveSessions).toBe(0);
}

describeWithCc('another module loaded libssl.so.3 first', () => {
  test("its copy is bound to Node's OpenSSL, so it is not reused: a private copy in its own namespace, and both modules work", () => {
    const { status, report, stderr } = runCoexistChild({ ...base, order: 'fixture-first' });
    expect(stderr).toBe('');
    expect(status).toBe(0);
    expect(report.loadedAs).toBe('private-namespace');
    expect(report.linkMapNamespace).toBeGreaterThan(0);
    // The private copy's libc imports now go to the process's libc (one heap, one TSD table).
    expect(report.importsRebound).toBeGreaterThan(50);
    expect(report.libssl).toBe(openssl.libssl);
    expect(report.version).toBe(openssl.version);
    // Why the shared copy was refused: the loader bound its references to Node's executable.
    expect(report.fallbackReasons).toHaveLength(1);
    expect(report.fallbackReasons![0]).toContain(`reusing ${openssl.libssl}, which another module had already loaded`);
    expect(report.fallbackReasons![0]).toContain(`was bound to ${node} instead of`);
    expectBothWork(report);
  });

  test('a lazily bound copy is not reused either: a slot still at its PLT stub fails the proof', () => {
    // A copy of the pair without BIND_NOW, which the fixture loads RTLD_LAZY|RTLD_DEEPBIND: its
    // eager relocations land inside the pair, its JUMP_SLOTs wait for their first call.
    const dir = mkdtempSync(join(tmpdir(), 'tls-session-lazy-'));
    copyWithoutBindNow(openssl.libssl, join(dir, 'libssl.so.3'));
    copyWithoutBindNow(openssl.libcrypto, join(dir, 'libcrypto.so.3'));
    const flags = osConstants.dlopen.RTLD_LAZY | osConstants.dlopen.RTLD_DEEPBIND!;
    const { status, report, stderr } = runCoexistChild({ ...base, order: 'fixture-first', fixtureFlags: flags }, { LD_LIBRARY_PATH: dir });
    expect(stderr).toBe('');
    expect(status).toBe(0);
    expect(report.fixtureBefore?.sslCtxNewFrom).toBe(join(dir, 'libssl.so.3')); // the fixture did use the lazy copy
    expect(report.fallbackReasons![0]).toMatch(/'s reference to \w+ is not bound yet \(lazy binding/);
    expect(report.loadedAs).toBe('private-namespace');
    expect(report.libssl).toBe(realpathSync(join(dir, 'libssl.so.3')));
    expectBothWork(report);
  });

  test('worker threads use the private copy and exit, and loading goes on after them', () => {
    // Thread exit runs OpenSSL's thread-local destructors (keys in the process's table after the
    // rebinding); every later dlopen, on any thread, must still get the loader lock.
    const config = { fixture, der: base.der, certPath: base.certPath, keyPath: base.keyPath, workers: 3, sessions: 300 };
    const r = spawnSync(process.execPath, [join(root, 'test', 'fixtures', 'libssl-user', 'worker-child.js'), JSON.stringify(config)], {
      cwd: root,
      encoding: 'utf8',
      timeout: 40_000, // a loader lock left held makes it hang: fail, not wait
    });
    expect(r.signal).toBeNull();
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.workers).toHaveLength(3);
    for (const worker of report.workers) expect(worker).toEqual({ loadedAs: 'private-namespace', linkMapNamespace: expect.any(Number) });
    expect(report.workers[0].linkMapNamespace).toBeGreaterThan(0);
    expect(report.main).toEqual({ loadedAs: 'private-namespace', live: 0 });
    expect(report.fixture).toBe(true);
  }, 60_000);

  test('when no way is sound, require refuses with ERR_TLS_SESSION_LIBSSL and says why each failed', () => {
    // The shared copy is bound to Node's OpenSSL, and every link-map namespace is used up.
    const { report } = runCoexistChild({ ...base, order: 'fixture-first', fillNamespaces: true });
    expect(report.filledNamespaces!.opened).toBeGreaterThan(0);
    expect(report.loadError?.code).toBe('ERR_TLS_SESSION_LIBSSL');
    const message = report.loadError!.message;
    expect(message).toContain('cannot use libssl.so.3 soundly');
    expect(message).toContain(`1) reusing ${openssl.libssl}, which another module had already loaded: `);
    expect(message).toContain(`was bound to ${node} instead of`);
    expect(message).toContain(`2) a private copy in a new link-map namespace (dlmopen): dlmopen failed: ${report.filledNamespaces!.error}`);
  });

  test('TLS_SESSION_NO_DEEPBIND (sanitizer runs) does not try the private namespace: it refuses, saying so', () => {
    const { report } = runCoexistChild({ ...base, order: 'fixture-first' }, { TLS_SESSION_NO_DEEPBIND: '1' });
    expect(report.loadError?.code).toBe('ERR_TLS_SESSION_LIBSSL');
    expect(report.loadError!.message).toContain(`was bound to ${node} instead of`);
    expect(report.loadError!.message).toContain(
      '2) a private link-map namespace (dlmopen) is not tried when TLS_SESSION_NO_DEEPBIND is set',
    );
  });
});

describeWithCc('tls-session loaded first, then a module linked with -lssl', () => {
  test('tls-session is isolated, the other module loads after it, and both work', () => {
    const { status, report, stderr } = runCoexistChild({ ...base, order: 'tls-first' });
    expect(stderr).toBe('');
    expect(status).toBe(0);
    expect(report).toEqual(expect.objectContaining({ loadedAs: 'isolated', fallbackReasons: [], linkMapNamespace: 0, importsRebound: 0 }));
    expectBothWork(report);
  });
});

describe('two copies of tls-session in one process (two versions in node_modules)', () => {
  /** Loads the package, then a byte-for-byte copy of the addon from another path, and works with both. */
  function twoCopies(before: string): Record<string, any> {
    const copy = join(mkdtempSync(join(tmpdir(), 'tls-session-copy-')), 'tls_session.node');
    copyFileSync(addon, copy);
    const r = inChild(
      `${before}
      const t = ${requireLib};
      const m = { exports: {} };
      process.dlopen(m, ${JSON.stringify(copy)});
      const second = m.exports;
      const der = Buffer.from(${JSON.stringify(samples.server.toString('base64'))}, 'base64');
      const handle = second.decode(der);
      const roundTrip = second.encode(handle).equals(der);
      const released = second.release(handle, 0);
      const proof = second.proveSymbols();
      const first = t.Session.fromDER(der);
      const firstStillWorks = first.toDER().equals(der);
      first.free();
      const pick = (o) => ({ loadedAs: o.loadedAs, fallbackReasons: o.fallbackReasons, linkMapNamespace: o.linkMapNamespace, importsRebound: o.importsRebound, relocationsChecked: o.relocationsChecked, libssl: o.libssl, libcrypto: o.libcrypto });
      console.log(JSON.stringify({ first: pick(t.openssl), second: pick(second.openssl), allOk: proof.every((x) => x.ok), files: [...new Set(proof.map((x) => x.file))].sort(), roundTrip, released, secondLedger: second.ledger(), firstStillWorks }));`,
    );
    expect(r.err).toBe('');
    return JSON.parse(r.out);
  }

  test('the second copy reuses the libssl the first isolated, because it passes the same proofs', () => {
    const report = twoCopies('');
    expect(report.first).toEqual(expect.objectContaining({ loadedAs: 'isolated', fallbackReasons: [] }));
    expect(report.second).toEqual({
      loadedAs: 'reused',
      fallbackReasons: [],
      linkMapNamespace: 0,
      importsRebound: 0,
      relocationsChecked: report.first.relocationsChecked,
      libssl: openssl.libssl,
      libcrypto: openssl.libcrypto,
    });
    expect(report.second.relocationsChecked).toBeGreaterThan(1000);
    expect(report.allOk).toBe(true);
    expect(report.files).toEqual([openssl.libcrypto, openssl.libssl].sort());
    expect(report).toEqual(expect.objectContaining({ roundTrip: true, released: true, firstStillWorks: true }));
    expect(report.secondLedger).toEqual(expect.objectContaining({ acquired: 1, explicit: 1, liveInThisEnvironment: 0 }));
  });

  (ccAvailable ? test : test.skip)('after a -lssl module, each copy proves and uses its own private namespace', () => {
    const report = twoCopies(`const f = { exports: {} }; process.dlopen(f, ${JSON.stringify(fixture)});`);
    expect(report.first).toEqual(expect.objectContaining({ loadedAs: 'private-namespace' }));
    expect(report.second).toEqual(expect.objectContaining({ loadedAs: 'private-namespace' }));
    // A namespace of its own (looking for the first copy's would mean probing namespace ids,
    // which leaks glibc's loader lock when one does not exist).
    expect(report.second.linkMapNamespace).toBeGreaterThan(0);
    expect(report.second.linkMapNamespace).not.toBe(report.first.linkMapNamespace);
    for (const copy of [report.first, report.second]) {
      expect(copy.importsRebound).toBeGreaterThan(50);
      expect(copy.fallbackReasons).toHaveLength(1);
      expect(copy.fallbackReasons[0]).toContain(`was bound to ${node} instead of`);
    }
    expect(report.allOk).toBe(true);
    expect(report).toEqual(expect.objectContaining({ roundTrip: true, released: true, firstStillWorks: true }));
  });
});
