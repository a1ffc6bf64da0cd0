/**
 * Client sessions through node:tls on whichever Node line runs this file (CI: 20, 22, 24, 26).
 *
 * - The rule: nodeSessionFormat() (a probe, with a version rule behind it) says what this Node's
 *   client hands out and what its tls.connect({ session }) resumes. Proved here against a real
 *   node:tls server and client: the 'session' event's form, that toNodeSession()'s output resumes
 *   and that the other form does not.
 * - The round trip: node:tls → Session.fromNodeSession → toDER → another process → fromDER →
 *   toNodeSession → tls.connect resumes, for TLS 1.2 (session IDs, tickets) and TLS 1.3.
 * - Node's envelope is parsed strictly; fromDER refuses it by name; toNodeSession never binds a
 *   session to another host unless told to.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { inspect } from 'node:util';
import fc from 'fast-check';
import {
  ledger,
  nodeSessionFormat,
  nodeSessionFormatByVersion,
  Session,
  SessionDecodeError,
  SessionFreedError,
  SessionHostError,
} from '../lib';
import { makePki, type Pki } from './helpers/pki';
import { startNodeTlsServer, TLS_VARIANTS } from './helpers/node-tls-server';
import { sessionBinding } from '../lib/node-internals';

/** Node's envelope magic, version 1 (kTLSSessionStatePrefix in Node's lib/internal/tls/wrap.js). */
const NODE_SESSION_PREFIX = Buffer.from('\0nodejs:tls:session:1\0', 'latin1');

let pki: Pki;
beforeAll(() => {
  pki = makePki();
});

const format = (): 'wrapped' | 'der' => nodeSessionFormat().format;

/** Node's envelope, built by hand (as lib/internal/tls/wrap.js does) so tests do not trust the code under test. */
function envelope(host: string | Buffer, der: Buffer, prefix = NODE_SESSION_PREFIX): Buffer {
  const hostBytes = typeof host === 'string' ? Buffer.from(host, 'utf8') : host;
  const length = Buffer.alloc(2);
  length.writeUInt16BE(hostBytes.length);
  return Buffer.concat([prefix, length, hostBytes, der]);
}

/** Splits what Node handed out: the host and the DER (undefined host for plain DER). */
function split(bytes: Buffer): { host: string | undefined; der: Buffer } {
  if (bytes[0] === 0x30) return { host: undefined, der: bytes };
  expect(bytes.subarray(0, NODE_SESSION_PREFIX.length)).toEqual(NODE_SESSION_PREFIX);
  const hostLength = bytes.readUInt16BE(NODE_SESSION_PREFIX.length);
  const start = NODE_SESSION_PREFIX.length + 2;
  return { host: bytes.toString('utf8', start, start + hostLength), der: bytes.subarray(start + hostLength) };
}

/** A verifying node:tls client (rejectUnauthorized defaults to true): the case Node's host binding is about. */
async function connect(port: number, options: { session?: Buffer; servername?: string } = {}) {
  const socket = tls.connect({
    host: '127.0.0.1',
    port,
    ca: pki.ca,
    session: options.session,
    ...(options.servername !== undefined && { servername: options.servername }),
  });
  const handedOut: Buffer[] = [];
  socket.on('session', (s: Buffer) => handedOut.push(s));
  socket.resume();
  await once(socket, 'secureConnect');
  const reused = socket.isSessionReused();
  const authorized = socket.authorized;
  await once(socket, 'close');
  return { reused, authorized, handedOut, last: handedOut[handedOut.length - 1] };
}

describe('the rule: nodeSessionFormat() matches what this Node really does', () => {
  test(`the probe decided, and the version rule agrees with it on this official build (${process.version})`, () => {
    const info = nodeSessionFormat();
    expect(info).toEqual({ format: expect.stringMatching(/^(wrapped|der)$/), decidedBy: 'probe', nodeVersion: process.version });
    expect(nodeSessionFormatByVersion(process.versions.node)).toBe(info.format);
    expect(nodeSessionFormat()).toBe(info); // decided once
  });

  test('the version rule: 22.23.0+, 24.17.0+, 26.3.1+ and 27+ wrap; 20, 23, 25 and earlier releases do not', () => {
    const table: Array<[string, 'wrapped' | 'der']> = [
      ['18.20.8', 'der'],
      ['20.20.2', 'der'],
      ['v20.99.0', 'der'],
      ['22.22.9', 'der'],
      ['22.23.0', 'wrapped'],
      ['22.23.3', 'wrapped'],
      ['23.11.1', 'der'],
      ['24.16.9', 'der'],
      ['24.17.0', 'wrapped'],
      ['24.21.0', 'wrapped'],
      ['25.9.0', 'der'],
      ['26.3.0', 'der'],
      ['26.3.1', 'wrapped'],
      ['26.10.0', 'wrapped'],
      ['27.0.0', 'wrapped'],
      ['30.1.2', 'wrapped'],
    ];
    for (const [version, expected] of table) expect([version, nodeSessionFormatByVersion(version)]).toEqual([version, expected]);
  });

  describe.each(TLS_VARIANTS)('$name', (v) => {
    test("the 'session' event has the predicted form; toNodeSession() resumes; the other form does not", async () => {
      const before = ledger().live;
      const server = await startNodeTlsServer(pki, v);
      try {
        const first = await connect(server.port, { servername: 'localhost' });
        expect(first.reused).toBe(false);
        expect(first.authorized).toBe(true);
        expect(first.handedOut.length).toBeGreaterThan(0);
        for (const bytes of first.handedOut) {
          if (format() === 'wrapped') {
            expect(bytes.subarray(0, NODE_SESSION_PREFIX.length).equals(NODE_SESSION_PREFIX)).toBe(true);
            expect(split(bytes).host).toBe('localhost');
          } else {
            expect(bytes[0]).toBe(0x30);
          }
        }
        // Server-side sessions are plain DER on every line.
        for (const data of server.serverSessions) expect(data[0]).toBe(0x30);

        using session = Session.fromNodeSession(first.last!);
        expect(session.protocol).toBe(v.version);
        expect(session.authenticatedHost).toBe(format() === 'wrapped' ? 'localhost' : undefined);
        // toDER is the DER Node had, byte for byte.
        expect(session.toDER().equals(split(first.last!).der)).toBe(true);

        const accepted = session.toNodeSession({ servername: 'localhost' });
        const otherForm = format() === 'wrapped' ? session.toDER() : envelope('localhost', session.toDER());
        expect((await connect(server.port, { servername: 'localhost', session: accepted })).reused).toBe(true);
        expect((await connect(server.port, { servername: 'localhost', session: otherForm })).reused).toBe(false);
      } finally {
        await server.close();
      }
      expect(ledger().live).toBe(before);
    });
  });

  test("without a servername Node's identity is the host: the envelope carries 127.0.0.1, and only that host resumes it", async () => {
    const server = await startNodeTlsServer(pki, TLS_VARIANTS[1]!);
    try {
      const first = await connect(server.port);
      using session = Session.fromNodeSession(first.last!);
      if (format() === 'wrapped') {
        expect(session.authenticatedHost).toBe('127.0.0.1');
        expect(() => session.toNodeSession({ servername: 'localhost' })).toThrow(
          expect.objectContaining({ code: 'ERR_TLS_SESSION_HOST_MISMATCH' }),
        );
        // Deliberately rebound for 'localhost': Node offers it only on a connection whose identity is
        // 'localhost'; a server binding sessions to the SNI name (node-internals.ts) then still refuses
        // it, as it was issued without SNI.
        const rebound = session.toNodeSession({ servername: 'localhost', rebindToServername: true });
        expect(split(rebound).host).toBe('localhost');
        expect((await connect(server.port, { session: rebound })).reused).toBe(false);
        const { binding } = await sessionBinding();
        expect((await connect(server.port, { servername: 'localhost', session: rebound })).reused).toBe(binding === 'context');
      } else {
        expect(session.authenticatedHost).toBeUndefined();
      }
      expect((await connect(server.port, { session: session.toNodeSession({ servername: '127.0.0.1' }) })).reused).toBe(true);
    } finally {
      await server.close();
    }
  });
});

describe('node:tls → fromNodeSession → toDER → another process → fromDER → toNodeSession → tls.connect', () => {
  const fixture = join(__dirname, 'fixtures', 'node-session-resume.js');
  const inOtherProcess = (args: object) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      execFile(process.execPath, [fixture, JSON.stringify(args)], { timeout: 20_000 }, (error, stdout, stderr) => {
        if (error) reject(new Error(`${error.message}\n${stderr}`));
        else resolve(JSON.parse(stdout) as Record<string, unknown>);
      });
    });

  test.each(TLS_VARIANTS)('$name: resumes', async (v) => {
    const server = await startNodeTlsServer(pki, v);
    try {
      const first = await connect(server.port, { servername: 'localhost' });
      expect(first.reused).toBe(false);
      let der: Buffer;
      {
        using session = Session.fromNodeSession(first.last!);
        der = session.toDER();
      }
      expect(der[0]).toBe(0x30);
      const other = await inOtherProcess({
        port: server.port,
        servername: 'localhost',
        caPath: pki.caCertPath,
        derBase64: der.toString('base64'),
      });
      expect(other).toEqual({
        reused: true,
        protocol: v.version,
        authorized: true,
        format: format(),
        offeredForm: format(),
        live: 0,
      });
    } finally {
      await server.close();
    }
  });
});

describe('Session.fromNodeSession and Session.fromDER', () => {
  let der: Buffer;
  beforeAll(async () => {
    const server = await startNodeTlsServer(pki, TLS_VARIANTS[1]!);
    try {
      const { last } = await connect(server.port, { servername: 'localhost' });
      der = split(last!).der;
    } finally {
      await server.close();
    }
  });

  const rejects = (bytes: Uint8Array, message: RegExp) => {
    let error: unknown;
    try {
      Session.fromNodeSession(bytes).free();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SessionDecodeError);
    expect(error).toMatchObject({ code: 'ERR_TLS_SESSION_DECODE', message: expect.stringMatching(message) });
  };

  test('plain DER: no authenticatedHost; the envelope: its host, and the same session', () => {
    using plain = Session.fromNodeSession(der);
    expect(plain.authenticatedHost).toBeUndefined();
    using wrapped = Session.fromNodeSession(envelope('www.example.com', der));
    expect(wrapped.authenticatedHost).toBe('www.example.com');
    expect(wrapped.toDER().equals(plain.toDER())).toBe(true);
    using unicode = Session.fromNodeSession(envelope('bücher.example', der));
    expect(unicode.authenticatedHost).toBe('bücher.example');
    using fromUint8 = Session.fromNodeSession(new Uint8Array(envelope('a', der)));
    expect(fromUint8.authenticatedHost).toBe('a');
  });

  test("fromDER stays strict: Node's envelope is a SessionDecodeError naming Session.fromNodeSession", () => {
    expect(() => Session.fromDER(envelope('localhost', der))).toThrow(SessionDecodeError);
    expect(() => Session.fromDER(envelope('localhost', der))).toThrow(/Session\.fromNodeSession/);
    expect(() => Session.fromDER(envelope('localhost', der))).toThrow(expect.objectContaining({ code: 'ERR_TLS_SESSION_DECODE' }));
  });

  test('malformed envelopes are SessionDecodeError, each naming its problem', () => {
    const good = envelope('localhost', der);
    for (let n = 1; n < NODE_SESSION_PREFIX.length; n++) rejects(good.subarray(0, n), /truncated Node session envelope/);
    rejects(good.subarray(0, NODE_SESSION_PREFIX.length + 1), /no room for the host length/);
    rejects(envelope('localhost', der, Buffer.from('\0nodejs:tls:session:2\0', 'latin1')), /version "2"/);
    rejects(
      Buffer.concat([NODE_SESSION_PREFIX, Buffer.from([0xff, 0xff]), Buffer.from('localhost'), der]),
      /host length 65535 runs past the end/,
    );
    rejects(envelope('', der), /empty host/);
    rejects(envelope(Buffer.from([0x6c, 0xff, 0x6f]), der), /not valid UTF-8/);
    rejects(envelope('localhost', Buffer.alloc(0)), /no session after the host/);
    rejects(Buffer.concat([envelope('localhost', der), Buffer.from([0])]), /trailing|DER|d2i/i);
    rejects(envelope('localhost', der.subarray(0, der.length - 1)), /d2i|DER|ASN1|asn1|encoding|length/i);
    rejects(Buffer.from([0, 1, 2, 3]), /neither a Node session envelope/);
    rejects(Buffer.alloc(0), /empty input/);
  });

  test('options.maxBytes caps the DER inside the envelope; wrong types are TypeErrors', () => {
    using ok = Session.fromNodeSession(envelope('localhost', der), { maxBytes: der.length });
    expect(ok.authenticatedHost).toBe('localhost');
    expect(() => Session.fromNodeSession(envelope('localhost', der), { maxBytes: der.length - 1 })).toThrow(/over the .*-byte limit/);
    for (const value of [undefined, null, 'x', 42, [0], new ArrayBuffer(4)]) {
      expect(() => Session.fromNodeSession(value as unknown as Uint8Array)).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }),
      );
    }
  });

  test('random damage to an envelope is a typed error or a usable session, never a crash or a leak', () => {
    const before = ledger().live;
    const good = envelope('localhost', der);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        fc.nat(good.length),
        (edits, cut) => {
          const bytes = Buffer.from(good.subarray(0, Math.max(1, cut === 0 ? good.length : cut)));
          for (const [at, value] of edits) if (at < bytes.length) bytes[at] = value;
          try {
            const s = Session.fromNodeSession(bytes);
            void s.protocol;
            void s.authenticatedHost;
            s.free();
          } catch (error) {
            expect(error).toBeInstanceOf(SessionDecodeError);
          }
        },
      ),
      { numRuns: 500 },
    );
    expect(ledger().live).toBe(before);
  });
});

describe('session.toNodeSession', () => {
  let der: Buffer;
  beforeAll(async () => {
    const server = await startNodeTlsServer(pki, TLS_VARIANTS[1]!);
    try {
      der = split((await connect(server.port, { servername: 'localhost' })).last!).der;
    } finally {
      await server.close();
    }
  });

  test("a session from Node's envelope: wrapped again for its own host, never for another unless rebindToServername", () => {
    using session = Session.fromNodeSession(envelope('localhost', der));
    const own = session.toNodeSession();
    const sameHost = session.toNodeSession({ servername: 'LocalHost' });
    if (format() === 'wrapped') {
      expect(own.equals(envelope('localhost', der))).toBe(true);
      expect(split(sameHost).host).toBe('LocalHost'); // Node compares byte for byte: the connection's spelling
    } else {
      expect(own.equals(der)).toBe(true);
      expect(sameHost.equals(der)).toBe(true);
    }
    let error: unknown;
    try {
      session.toNodeSession({ servername: 'evil.example' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SessionHostError);
    expect(error).toMatchObject({
      code: 'ERR_TLS_SESSION_HOST_MISMATCH',
      authenticatedHost: 'localhost',
      servername: 'evil.example',
      message: expect.stringMatching(/authenticated for "localhost", not "evil\.example".*rebindToServername: true/),
    });
    const rebound = session.toNodeSession({ servername: 'evil.example', rebindToServername: true });
    expect(rebound.equals(format() === 'wrapped' ? envelope('evil.example', der) : der)).toBe(true);
  });

  test('a session from plain DER has no host: servername is required where Node wraps', () => {
    using session = Session.fromDER(der);
    expect(session.authenticatedHost).toBeUndefined();
    if (format() === 'wrapped') {
      expect(() => session.toNodeSession()).toThrow(SessionHostError);
      expect(() => session.toNodeSession()).toThrow(
        expect.objectContaining({ code: 'ERR_TLS_SESSION_HOST_REQUIRED', message: expect.stringContaining(process.version) }),
      );
      expect(session.toNodeSession({ servername: 'localhost' }).equals(envelope('localhost', der))).toBe(true);
    } else {
      expect(session.toNodeSession().equals(der)).toBe(true);
      expect(session.toNodeSession({ servername: 'localhost' }).equals(der)).toBe(true);
    }
  });

  test('bad options are typed errors; a freed session throws SessionFreedError', () => {
    const session = Session.fromNodeSession(envelope('localhost', der));
    expect(() => session.toNodeSession({ servername: '' })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => session.toNodeSession({ servername: 'x'.repeat(65536) })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => session.toNodeSession({ servername: 42 as unknown as string })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }),
    );
    expect(() => session.toNodeSession({ servername: 'localhost', rebindToServername: 'yes' as unknown as boolean })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }),
    );
    expect(() => session.toNodeSession(null as unknown as { servername?: string })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }),
    );
    session.free();
    expect(() => session.toNodeSession()).toThrow(SessionFreedError);
  });

  test('authenticatedHost is read-only, survives clone() and lend(), and shows in JSON and inspect (it is not secret)', () => {
    using session = Session.fromNodeSession(envelope('localhost', der));
    expect(() => {
      (session as unknown as { authenticatedHost: string }).authenticatedHost = 'evil.example';
    }).toThrow(TypeError);
    expect(session.authenticatedHost).toBe('localhost');
    using copy = session.clone();
    expect(copy.authenticatedHost).toBe('localhost');
    session.lend((view) => {
      expect(view.authenticatedHost).toBe('localhost');
      using owned = view.clone();
      expect(owned.authenticatedHost).toBe('localhost');
    });
    expect(JSON.parse(JSON.stringify(session))).toMatchObject({ authenticatedHost: 'localhost' });
    expect(inspect(session)).toContain("authenticatedHost: 'localhost'");
    using plain = Session.fromDER(der);
    expect(Object.keys(JSON.parse(JSON.stringify(plain)))).not.toContain('authenticatedHost');
  });
});

test('examples/node-client-sessions.ts runs on this Node: the stored session resumes; another host is refused where Node binds hosts', async () => {
  const root = join(__dirname, '..');
  const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      ['-r', join(__dirname, 'persist', 'fixtures', 'register-ts.js'), join(root, 'examples', 'node-client-sessions.ts')],
      { cwd: root, timeout: 30_000 },
      (error, out, err) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout: out, stderr: err }),
    );
  });
  expect(stderr).toBe('');
  expect(code).toBe(0);
  expect(stdout).toContain(`Node ${process.version}: client sessions are`);
  expect(stdout).toContain('first visit: resumed false');
  expect(stdout).toContain('second visit: resumed true');
  expect(stdout).toContain(format() === 'wrapped' ? 'other.example: refused (ERR_TLS_SESSION_HOST_MISMATCH)' : 'other.example: bound');
});
