/**
 * readSessionHeader (lib/session-header.ts), the fast DER reader of the resume path, against the
 * full decoder, Session.fromDER (the system OpenSSL's d2i_SSL_SESSION and the binding's checks):
 * whenever the reader accepts bytes, fromDER accepts them too and every field the reader returns
 * is what fromDER reads; where the reader cannot be sure it returns undefined (the record then
 * takes the full path). Real TLS 1.2 and TLS 1.3 sessions are mutated at random (bytes, protocol
 * version, cipher, duplicated, dropped, reordered and foreign fields, integers, lengths,
 * trailing bytes, truncation), and attachSessionStore is shown to count a sealed record that
 * the full path refuses as rejected (not a hit) and to keep it out of its record cache.
 */
import { constants, randomBytes } from 'node:crypto';
import * as tls from 'node:tls';
import fc from 'fast-check';
import { Session } from '../lib';
import { attachSessionStore, Sealer } from '../lib/persist';
import { encodeSessionRecordWithScope, sessionDerForScope } from '../lib/persist/records/server-session';
import { readSessionHeader, type SessionHeader } from '../lib/session-header';
import { makePki, type Pki } from './helpers/pki';
import { nodeClientSession, startNodeServer } from './helpers/peers';
import { RecordingStore } from './persist/helpers/recording-store';
import { integerContents } from './helpers/session-der';
import { close, listen, tls12Server } from './persist/helpers/tls-peers';

// ---------------------------------------------------------------------------------------------
// DER building blocks (the bases are canonical DER from i2d_SSL_SESSION)

function lengthOf(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, body: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([tag]), lengthOf(body.length), body]);
}

/** Where a TLV's contents start and how long they are (definite lengths, as the bases have). */
function header(der: Buffer, at: number): { start: number; length: number } {
  const first = der[at + 1]!;
  if (first < 0x80) return { start: at + 2, length: first };
  const count = first & 0x7f;
  let length = 0;
  for (let i = 0; i < count; i++) length = length * 256 + der[at + 2 + i]!;
  return { start: at + 2 + count, length };
}

/** The SEQUENCE's children, each as its whole TLV. */
function childrenOf(der: Buffer): Buffer[] {
  const { start, length } = header(der, 0);
  const out: Buffer[] = [];
  for (let at = start; at < start + length;) {
    const child = header(der, at);
    out.push(der.subarray(at, child.start + child.length));
    at = child.start + child.length;
  }
  return out;
}

const contextNumber = (child: Buffer): number => child[0]! & 0x1f;

/** Replaces the [n] field (or inserts it where the template puts it). */
function setField(children: Buffer[], n: number, child: Buffer): void {
  for (let i = 5; i < children.length; i++) {
    const number = contextNumber(children[i]!);
    if (number === n) {
      children[i] = child;
      return;
    }
    if (number > n) {
      children.splice(i, 0, child);
      return;
    }
  }
  children.push(child);
}

// ---------------------------------------------------------------------------------------------
// Mutations

type Mutation =
  | { kind: 'flip'; at: number; value: number }
  | { kind: 'truncate'; keep: number }
  | { kind: 'trailing'; bytes: Uint8Array; inside: boolean }
  | { kind: 'asn1Version'; contents: Uint8Array }
  | { kind: 'protocol'; contents: Uint8Array }
  | { kind: 'cipher'; contents: Uint8Array }
  | { kind: 'duplicate'; from: number; to: number }
  | { kind: 'drop'; index: number }
  | { kind: 'swap'; a: number; b: number }
  | { kind: 'integer'; field: number; contents: Uint8Array }
  | { kind: 'octets'; field: number; contents: Uint8Array }
  | { kind: 'field'; tag: number; body: Uint8Array }
  | { kind: 'longLength'; index: number; extra: number };

const bytesOf = (...values: number[]): Uint8Array => Uint8Array.from(values);
const int = (value: bigint | number): Uint8Array => integerContents(BigInt(value));

/** INTEGER contents: minimal encodings of interesting values, and any bytes (padded, empty, long). */
const integerArb = fc.oneof(
  fc.constantFrom(
    ...[0n, 1n, -1n, 3n, 127n, 128n, 255n, 256n, 7200n, 0x7fffffffn, 0x80000000n, 0xffffffffn, 0x100000000n, 2n ** 53n, 2n ** 63n - 1n]
      .concat([-(2n ** 31n), -(2n ** 63n), 2n ** 64n - 1n, 18446744073n, 18446744074n, 8640000000000n, 8640000000001n])
      .map(int),
    bytesOf(),
    bytesOf(0x00, 0x01),
    bytesOf(0x00, 0x00, 0x80),
    bytesOf(0xff, 0x80),
    bytesOf(0xff, 0x7f),
  ),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map(int),
  fc.integer({ min: 1, max: 0xffffffff }).map(int),
  fc.uint8Array({ maxLength: 10 }),
);

/** ssl_version contents: versions d2i accepts and refuses (major byte 3, DTLS 0xfe, DTLS1_BAD_VER 0x0100, others). */
const protocolArb = fc.oneof(
  fc
    .constantFrom(
      0x0000,
      0x0002,
      0x0200,
      0x0203,
      0x02ff,
      0x0300,
      0x0301,
      0x0302,
      0x0303,
      0x0304,
      0x0305,
      0x03ff,
      0x0100,
      0xfeff,
      0xfefd,
      0xffff,
      0x10303,
      -1,
      -0xfd00,
    )
    .map(int),
  fc.integer({ min: 0, max: 0xffff }).map(int),
  integerArb,
);

/** cipher contents: 0x0000, 0xFFFF, ciphers OpenSSL knows (some it knows only as SCSVs), random, wrong lengths. */
const cipherArb = fc.oneof(
  fc.constantFrom(bytesOf(0, 0), bytesOf(0xff, 0xff), bytesOf(0x00, 0xff), bytesOf(0x56, 0x00), bytesOf(0x13, 0x01), bytesOf(0x13, 0x02)),
  fc.constantFrom(
    bytesOf(0x13, 0x03),
    bytesOf(0x13, 0x04),
    bytesOf(0x13, 0x05),
    bytesOf(0xc0, 0x2b),
    bytesOf(0xc0, 0x30),
    bytesOf(0xcc, 0xa8),
  ),
  fc.uint8Array({ minLength: 2, maxLength: 2 }),
  fc.uint8Array({ maxLength: 4 }),
);

/** Host names: ASCII, empty, with NUL, not UTF-8. */
const hostnameArb = fc.oneof(
  fc.constantFrom(Buffer.from('localhost'), Buffer.from(''), Buffer.from('a\0b'), Buffer.from([0xff, 0xfe]), Buffer.from('héllo', 'utf8')),
  fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 40 }).map((name) => Buffer.from(name, 'latin1')),
  fc.uint8Array({ maxLength: 40 }),
);

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), keep: fc.nat() }),
  fc.record({ kind: fc.constant('trailing' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 6 }), inside: fc.boolean() }),
  fc.record({ kind: fc.constant('asn1Version' as const), contents: integerArb }),
  fc.record({ kind: fc.constant('protocol' as const), contents: protocolArb }),
  fc.record({ kind: fc.constant('cipher' as const), contents: cipherArb }),
  fc.record({ kind: fc.constant('duplicate' as const), from: fc.nat(), to: fc.nat() }),
  fc.record({ kind: fc.constant('drop' as const), index: fc.nat() }),
  fc.record({ kind: fc.constant('swap' as const), a: fc.nat(), b: fc.nat() }),
  fc.record({ kind: fc.constant('integer' as const), field: fc.constantFrom(1, 2, 5, 9, 13, 14, 15, 17, 19), contents: integerArb }),
  fc.oneof(
    fc.record({
      kind: fc.constant('octets' as const),
      field: fc.constantFrom(-1, -2, 4, 0, 7, 8, 10, 11, 12, 16, 18),
      contents: fc.uint8Array({ maxLength: 70 }),
    }),
    fc.record({ kind: fc.constant('octets' as const), field: fc.constant(6), contents: hostnameArb }),
  ),
  fc.record({ kind: fc.constant('field' as const), tag: fc.integer({ min: 0, max: 0xff }), body: fc.uint8Array({ maxLength: 8 }) }),
  fc.record({ kind: fc.constant('longLength' as const), index: fc.nat(), extra: fc.integer({ min: 0, max: 2 }) }),
);

/** Mutations that keep the session decodable (values in range): they hold the fields read to the decoder's. */
const benignArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    kind: fc.constant('integer' as const),
    field: fc.constantFrom(1, 2),
    contents: fc.integer({ min: 1, max: 0xffffffff }).map(int),
  }),
  fc.record({ kind: fc.constant('integer' as const), field: fc.constantFrom(5, 9, 13, 14, 15, 17, 19), contents: fc.nat().map(int) }),
  fc.record({ kind: fc.constant('protocol' as const), contents: fc.integer({ min: 0x0300, max: 0x0304 }).map(int) }),
  fc.record({
    kind: fc.constant('cipher' as const),
    contents: fc
      .constantFrom(0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc030, 0xcca8, 0x00a8)
      .map((code) => bytesOf(code >> 8, code & 0xff)),
  }),
  fc.record({ kind: fc.constant('octets' as const), field: fc.constantFrom(-1, 4), contents: fc.uint8Array({ maxLength: 32 }) }),
  fc.record({ kind: fc.constant('octets' as const), field: fc.constant(-2), contents: fc.uint8Array({ maxLength: 48 }) }),
  fc.record({
    kind: fc.constant('octets' as const),
    field: fc.constant(6),
    contents: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 40 }).map((name) => Buffer.from(name, 'latin1')),
  }),
  fc.record({ kind: fc.constant('octets' as const), field: fc.constantFrom(7, 8, 10, 16, 18), contents: fc.uint8Array({ maxLength: 40 }) }),
);

/** One to three mutations of any kind, or up to four that keep the session decodable, or a mix. */
const mutationsArb = fc.oneof(
  fc.array(mutationArb, { minLength: 1, maxLength: 3 }),
  fc.array(benignArb, { minLength: 1, maxLength: 4 }),
  fc.tuple(fc.array(benignArb, { minLength: 1, maxLength: 3 }), mutationArb).map(([benign, other]) => [...benign, other]),
);

/** `base` with the mutations applied: the structural ones to its fields, then the byte-level ones. */
function mutate(base: Buffer, mutations: readonly Mutation[]): Buffer {
  const children = childrenOf(base);
  const after: Mutation[] = [];
  for (const m of mutations) {
    const n = children.length;
    switch (m.kind) {
      case 'asn1Version':
        children[0] = tlv(0x02, m.contents);
        break;
      case 'protocol':
        children[1] = tlv(0x02, m.contents);
        break;
      case 'cipher':
        children[2] = tlv(0x04, m.contents);
        break;
      case 'duplicate':
        if (n > 0) children.splice(m.to % (n + 1), 0, children[m.from % n]!);
        break;
      case 'drop':
        if (n > 0) children.splice(m.index % n, 1);
        break;
      case 'swap':
        if (n > 0) {
          const a = m.a % n;
          const b = m.b % n;
          [children[a], children[b]] = [children[b]!, children[a]!];
        }
        break;
      case 'integer':
        setField(children, m.field, tlv(0xa0 | m.field, tlv(0x02, m.contents)));
        break;
      case 'octets':
        if (m.field === -1)
          children[3] = tlv(0x04, m.contents); // session_id
        else if (m.field === -2)
          children[4] = tlv(0x04, m.contents); // master_key
        else if (m.field === 0)
          setField(children, 0, tlv(0x80, m.contents)); // [0] IMPLICIT key_arg
        else setField(children, m.field, tlv(0xa0 | m.field, tlv(0x04, m.contents)));
        break;
      case 'field': {
        const number = m.tag & 0x1f;
        const at = children.findIndex((child, i) => i >= 5 && contextNumber(child) >= number);
        children.splice(at < 0 ? n : at, 0, tlv(m.tag, m.body));
        break;
      }
      case 'longLength': {
        if (n === 0) break;
        const index = m.index % n;
        const child = children[index]!;
        const { start, length } = header(child, 0);
        if (length >= 0x80 && m.extra === 0) break;
        const form = m.extra === 2 ? [0x82, length >> 8, length & 0xff] : [0x81, length & 0xff];
        if (length > 0xff && m.extra !== 2) break;
        children[index] = Buffer.concat([child.subarray(0, 1), Buffer.from(form), child.subarray(start)]);
        break;
      }
      default:
        after.push(m);
    }
  }
  let der = tlv(0x30, Buffer.concat(children));
  for (const m of after) {
    if (m.kind === 'flip') {
      if (der.length === 0) continue;
      der = Buffer.from(der);
      der[m.at % der.length] = m.value;
    } else if (m.kind === 'truncate') {
      der = der.subarray(0, m.keep % (der.length + 1));
    } else if (m.kind === 'trailing') {
      der = m.inside ? tlv(0x30, Buffer.concat([...childrenOf(der), m.bytes])) : Buffer.concat([der, m.bytes]);
    }
  }
  return der;
}

// ---------------------------------------------------------------------------------------------
// The comparison

const PROTOCOL_NAMES: Record<number, string> = {
  0x0304: 'TLSv1.3',
  0x0303: 'TLSv1.2',
  0x0302: 'TLSv1.1',
  0x0301: 'TLSv1',
  0x0300: 'SSLv3',
  0x0100: 'DTLSv0.9',
  0xfeff: 'DTLSv1',
  0xfefd: 'DTLSv1.2',
};

/** Why the reader and fromDER disagree about `der`, or undefined when they agree (or the reader defers). */
function disagreement(der: Buffer): string | undefined {
  let header: SessionHeader | undefined;
  try {
    header = readSessionHeader(der);
  } catch (error) {
    return `the reader threw ${(error as Error).message}`;
  }
  if (header === undefined) return undefined; // deferred to the full path: always safe
  let session: Session;
  try {
    session = Session.fromDER(der);
  } catch (error) {
    return `the reader accepted what fromDER refuses (${(error as Error).message})`;
  }
  try {
    const problems: string[] = [];
    const protocol = PROTOCOL_NAMES[header.protocolVersion] ?? 'unknown';
    if (protocol !== session.protocol) problems.push(`protocol ${header.protocolVersion.toString(16)} vs ${session.protocol}`);
    const cipher = (header as { cipher?: string }).cipher;
    if ('cipher' in header && cipher !== session.cipher) problems.push(`cipher ${cipher} vs ${session.cipher}`);
    if (!header.sessionId.equals(session.id))
      problems.push(`session ID ${header.sessionId.toString('hex')} vs ${session.id.toString('hex')}`);
    if (!header.sessionIdContext.equals(session.idContext)) problems.push('session ID context');
    const hostname = session.hostname === undefined ? undefined : Buffer.from(session.hostname, 'utf8');
    if (!(hostname === undefined ? header.hostname === undefined : header.hostname !== undefined && hostname.equals(header.hostname))) {
      problems.push(`hostname ${header.hostname?.toString('hex')} vs ${hostname?.toString('hex')}`);
    }
    if (header.time !== session.startTime.getTime() / 1000) problems.push(`time ${header.time} vs ${session.startTime.getTime() / 1000}`);
    if (header.timeout !== session.timeout) problems.push(`timeout ${header.timeout} vs ${session.timeout}`);
    return problems.length > 0 ? `fields differ: ${problems.join('; ')}` : undefined;
  } finally {
    session.free();
  }
}

// ---------------------------------------------------------------------------------------------
// Real sessions

let pki: Pki;
const secret = randomBytes(32);
/** Real DERs, by what they are. */
const bases: Record<string, Buffer> = {};

/** A TLS 1.2 PSK session with a session ID context and an SNI name, as node-internals' probe makes. */
async function pskServerSession(): Promise<Buffer> {
  const psk = Buffer.alloc(32, 0x5a);
  const common = { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: 'PSK-AES128-GCM-SHA256' } as const;
  const server = tls.createServer(
    { ...common, pskCallback: () => psk, sessionIdContext: 'property', secureOptions: constants.SSL_OP_NO_TICKET },
    (socket) => socket.end('x'),
  );
  let der: Buffer | undefined;
  server.on('newSession', (_id: Buffer, data: Buffer, done: () => void) => {
    der = Buffer.from(data);
    done();
  });
  const port = await listen(server);
  try {
    await new Promise<void>((resolve, reject) => {
      const socket = tls.connect({
        ...common,
        host: '127.0.0.1',
        port,
        servername: 'probe.example',
        pskCallback: () => ({ psk, identity: 'tls-session-probe' }),
        checkServerIdentity: () => undefined,
      });
      socket.on('data', () => undefined);
      socket.once('error', reject);
      socket.once('close', () => resolve());
    });
  } finally {
    await close(server);
  }
  if (!der) throw new Error('no PSK session');
  return der;
}

beforeAll(async () => {
  pki = makePki();
  const tls12 = await startNodeServer({ pki, maxVersion: 'TLSv1.2', tickets: false, alpnProtocols: ['h2', 'http/1.1'] });
  const tls13 = await startNodeServer({ pki, alpnProtocols: ['h2', 'http/1.1'] });
  const mtls = await startNodeServer({ pki, maxVersion: 'TLSv1.2', tickets: false, requestCert: true });
  try {
    await nodeClientSession(tls12.port, { pki, servername: 'localhost', alpnProtocols: ['h2'] });
    const client13 = await nodeClientSession(tls13.port, { pki, servername: 'localhost', alpnProtocols: ['h2'] });
    await nodeClientSession(tls13.port, { pki });
    await nodeClientSession(mtls.port, { pki, servername: 'localhost', cert: true });
    bases['TLS 1.2 server'] = tls12.newSessions[0]!;
    bases['TLS 1.3 server'] = tls13.newSessions[0]!;
    bases['TLS 1.3 server, no SNI'] = tls13.newSessions[tls13.newSessions.length - 1]!;
    bases['TLS 1.2 server, client certificate'] = mtls.newSessions[0]!;
    bases['TLS 1.3 client (ticket, certificate)'] = client13.der;
  } finally {
    await tls12.close();
    await tls13.close();
    await mtls.close();
  }
  bases['TLS 1.2 PSK server'] = await pskServerSession();
  // The same TLS 1.2 session with an SNI name (Node releases binding sessions to SNI write one).
  const children = childrenOf(bases['TLS 1.2 server']);
  setField(children, 6, tlv(0xa6, tlv(0x04, Buffer.from('localhost'))));
  bases['TLS 1.2 server, SNI'] = tlv(0x30, Buffer.concat(children));
});

const baseArb = (): fc.Arbitrary<string> => fc.constantFrom(...Object.keys(bases));

// ---------------------------------------------------------------------------------------------

test('every real session decodes, and the reader reads it as fromDER does (and does not defer the ones the resume path sees)', () => {
  for (const [name, der] of Object.entries(bases)) {
    expect({ name, problem: disagreement(der) }).toEqual({ name, problem: undefined });
    if (!name.includes('certificate')) expect({ name, read: readSessionHeader(der) !== undefined }).toEqual({ name, read: true });
  }
});

test('property: on mutated real sessions, whatever the reader accepts fromDER accepts, with the same fields', () => {
  let accepted = 0;
  let runs = 0;
  fc.assert(
    fc.property(baseArb(), mutationsArb, (name, mutations) => {
      runs += 1;
      const der = mutate(bases[name]!, mutations);
      if (readSessionHeader(der) !== undefined) accepted += 1;
      const problem = disagreement(der);
      if (problem !== undefined) throw new Error(`${name}: ${problem}\n  DER ${der.toString('hex')}`);
    }),
    // At 8% disagreement, 4000 runs miss it with probability 0.92^4000 (< 1e-140).
    { numRuns: 4000 },
  );
  // Not vacuous: a reader that deferred everything would pass the property, but not this.
  expect(accepted / runs).toBeGreaterThan(0.2);
});

test('exhaustive: every protocol version and every cipher code the reader accepts, fromDER accepts with the same name', () => {
  for (const name of ['TLS 1.2 server', 'TLS 1.3 server']) {
    const base = bases[name]!;
    const children = childrenOf(base);
    let acceptedCiphers = 0;
    for (let code = 0; code <= 0xffff; code++) {
      const mutated = [...children];
      mutated[2] = tlv(0x04, bytesOf(code >> 8, code & 0xff));
      const der = tlv(0x30, Buffer.concat(mutated));
      const problem = disagreement(der);
      if (problem !== undefined) throw new Error(`${name}, cipher 0x${code.toString(16)}: ${problem}`);
      if (readSessionHeader(der)) acceptedCiphers += 1;
    }
    let acceptedVersions = 0;
    for (let version = 0; version <= 0xffff; version++) {
      const mutated = [...children];
      mutated[1] = tlv(0x02, int(version));
      const der = tlv(0x30, Buffer.concat(mutated));
      const problem = disagreement(der);
      if (problem !== undefined) throw new Error(`${name}, protocol 0x${version.toString(16)}: ${problem}`);
      if (readSessionHeader(der)) acceptedVersions += 1;
    }
    expect(acceptedCiphers).toBeGreaterThanOrEqual(10);
    expect(acceptedVersions).toBeGreaterThanOrEqual(2);
  }
});

/**
 * Fixed cases: the kinds of disagreement found against the first reader, which read only the
 * leading fields and accepted each of these while fromDER refused it or read other values;
 * beside them, edges the first reader already got right (a 33-byte session ID, a 65-byte master
 * key, a truncated DER, a bad ASN.1 version, a duplicated last field).
 */
const counterexamples: Array<[string, string, Mutation[]]> = [
  ['protocol version 0x0203 (d2i: unsupported SSL version)', 'TLS 1.2 server', [{ kind: 'protocol', contents: int(0x0203) }]],
  ['protocol version 0x0000', 'TLS 1.3 server', [{ kind: 'protocol', contents: int(0) }]],
  ['cipher 0x0000 (no such cipher)', 'TLS 1.2 server', [{ kind: 'cipher', contents: bytesOf(0, 0) }]],
  ['cipher 0xFFFF (no such cipher)', 'TLS 1.3 server', [{ kind: 'cipher', contents: bytesOf(0xff, 0xff) }]],
  ['cipher of 3 bytes', 'TLS 1.2 server', [{ kind: 'cipher', contents: bytesOf(0xc0, 0x2b, 0x00) }]],
  ['a duplicated [4] session ID context', 'TLS 1.2 server', [{ kind: 'duplicate', from: 7, to: 7 }]],
  ['a duplicated [6] host name', 'TLS 1.2 server, SNI', [{ kind: 'duplicate', from: 8, to: 8 }]],
  ['a duplicated last field', 'TLS 1.3 server', [{ kind: 'duplicate', from: 1000, to: 1000 }]],
  ['trailing bytes after the SEQUENCE', 'TLS 1.2 server', [{ kind: 'trailing', bytes: bytesOf(0), inside: false }]],
  ['trailing bytes inside the SEQUENCE', 'TLS 1.3 server', [{ kind: 'trailing', bytes: bytesOf(5, 0), inside: true }]],
  ['an unknown field [21]', 'TLS 1.2 server', [{ kind: 'field', tag: 0xb5, body: tlv(0x02, int(1)) }]],
  ['a [20] peer_rpk field (OpenSSL 3.0/3.1 do not know it)', 'TLS 1.2 server', [{ kind: 'octets', field: 20, contents: bytesOf(1) }]],
  [
    'a padded INTEGER time (d2i: illegal padding)',
    'TLS 1.2 server',
    [{ kind: 'integer', field: 1, contents: bytesOf(0x00, 0x6a, 0x00, 0x00, 0x00) }],
  ],
  ['an absent time (OpenSSL takes now)', 'TLS 1.2 server', [{ kind: 'drop', index: 5 }]],
  ['a zero timeout (OpenSSL takes 3 s)', 'TLS 1.3 server', [{ kind: 'integer', field: 2, contents: int(0) }]],
  ['a session ID of 33 bytes', 'TLS 1.2 server', [{ kind: 'octets', field: -1, contents: Buffer.alloc(33, 1) }]],
  ['a master key of 65 bytes', 'TLS 1.2 server', [{ kind: 'octets', field: -2, contents: Buffer.alloc(65, 1) }]],
  [
    'a host name with a NUL byte (OpenSSL keeps what precedes it)',
    'TLS 1.2 server',
    [{ kind: 'octets', field: 6, contents: Buffer.from('a\0b') }],
  ],
  ['a negative kex_group', 'TLS 1.2 server', [{ kind: 'integer', field: 19, contents: int(-1) }]],
  ['a truncated DER', 'TLS 1.2 server', [{ kind: 'truncate', keep: 150 }]],
  ['a bad ASN.1 version', 'TLS 1.2 server', [{ kind: 'asn1Version', contents: int(2) }]],
  ["a DER over fromDER's default 64 KiB", 'TLS 1.3 server', [{ kind: 'octets', field: 18, contents: Buffer.alloc(70_000, 1) }]],
  ['a kex_group larger than 32 bits', 'TLS 1.3 server', [{ kind: 'integer', field: 19, contents: int(2n ** 32n) }]],
];

test.each(counterexamples)('fixed case: %s', (_what, name, mutations) => {
  const der = mutate(bases[name]!, mutations);
  expect(disagreement(der)).toBeUndefined();
});

// ---------------------------------------------------------------------------------------------
// Through attachSessionStore: a sealed record (written with the secret) that the full path refuses

const tls12Client = { maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET } as const;

function connect(port: number, session?: Buffer): Promise<{ reused: boolean; session: Buffer | undefined }> {
  return new Promise((resolve, reject) => {
    let received: Buffer | undefined;
    let reused = false;
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.ca, ...tls12Client, session });
    socket.once('secureConnect', () => (reused = socket.isSessionReused()));
    socket.on('session', (s: Buffer) => (received = s));
    socket.on('data', () => undefined);
    socket.once('error', reject);
    socket.once('close', () => resolve({ reused, session: received }));
  });
}

/** Waits (at most 2 s) for `condition`. */
async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 2000;
  while (!condition() && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve));
}

const refused: Array<[string, Mutation[]]> = [
  ['cipher 0x0000', [{ kind: 'cipher', contents: bytesOf(0, 0) }]],
  ['cipher 0xFFFF', [{ kind: 'cipher', contents: bytesOf(0xff, 0xff) }]],
  ['protocol version 0x0203', [{ kind: 'protocol', contents: int(0x0203) }]],
  ['a duplicated [4] session ID context', [{ kind: 'duplicate', from: 7, to: 7 }]],
  ['trailing bytes', [{ kind: 'trailing', bytes: bytesOf(0, 0), inside: false }]],
];

test.each(refused)(
  'attachSessionStore: a sealed record the full path refuses (%s) is counted as rejected, not a hit, and not kept in the record cache',
  async (_what, mutations) => {
    const store = new RecordingStore();
    const server = tls12Server(pki);
    const errors: Error[] = [];
    const scope = 'property-test';
    const handle = attachSessionStore(server, { store, secret, scope, onError: (error) => errors.push(error) });
    const port = await listen(server);
    try {
      const first = await connect(port);
      expect(first.reused).toBe(false);
      await until(() => handle.stats().stored === 1);
      const key = store.keys[0]!;
      const sealer = new Sealer(secret, 'session-record');
      const scopeBytes = Buffer.from(scope, 'utf8');
      const der = sessionDerForScope(sealer.open(key, (await store.get(key))!), scopeBytes)!;
      const bad = mutate(der, mutations);
      expect(() => Session.fromDER(bad)).toThrow();
      const record = sealer.seal(key, encodeSessionRecordWithScope(scopeBytes, bad));

      for (let attempt = 1; attempt <= 2; attempt++) {
        await store.set(key, record, 300); // written by a holder of the secret
        const again = await connect(port, first.session);
        expect(again.reused).toBe(false);
        expect(handle.stats()).toMatchObject({ hits: 0, recordCacheHits: 0, rejected: attempt });
        // A refused record is deleted (behind the callback); the full handshake stores a new session under another key.
        const deadline = Date.now() + 2000;
        while ((await store.get(key)) !== undefined && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve));
        expect(await store.get(key)).toBeUndefined();
      }
      expect(errors.map((error) => error.message).join('\n')).toMatch(/does not decode/);
    } finally {
      handle.detach();
      await close(server);
    }
  },
);

/** A server with a stored sealed session (under `scope`), its store key and the client's session. */
async function storedSession(
  scope: string,
  store: RecordingStore,
): Promise<{ server: tls.Server; port: number; key: string; der: Buffer; session: Buffer | undefined }> {
  const server = tls12Server(pki);
  const handle = attachSessionStore(server, { store, secret, scope });
  const port = await listen(server);
  const first = await connect(port);
  await until(() => handle.stats().stored === 1);
  handle.detach();
  const key = store.keys[0]!;
  const der = sessionDerForScope(new Sealer(secret, 'session-record').open(key, (await store.get(key))!), Buffer.from(scope, 'utf8'))!;
  return { server, port, key, der, session: first.session };
}

test('attachSessionStore: a sealed record whose DER is over maxSessionBytes (fromDER refuses it) is rejected, not a hit', async () => {
  const store = new RecordingStore();
  const { server, port, der, session } = await storedSession('property-test', store);
  expect(der.length).toBeGreaterThan(128);
  const errors: Error[] = [];
  const handle = attachSessionStore(server, {
    store,
    secret,
    scope: 'property-test',
    maxSessionBytes: 128,
    onError: (error) => errors.push(error),
  });
  try {
    expect((await connect(port, session)).reused).toBe(false);
    expect(handle.stats()).toMatchObject({ hits: 0, recordCacheHits: 0 });
    // (The full handshake's new session is over maxSessionBytes too: refused as well, not stored.)
    expect(errors.filter((error) => /stored session does not decode/.test(error.message))).toHaveLength(1);
  } finally {
    handle.detach();
    await close(server);
  }
});

test('attachSessionStore: a sealed record the reader defers (a non-minimal DER length, which OpenSSL decodes) takes the full path and resumes', async () => {
  const store = new RecordingStore();
  const scope = 'property-test';
  const { server, port, key, der, session } = await storedSession(scope, store);
  const relaxed = mutate(der, [{ kind: 'longLength', index: 7, extra: 1 }]);
  expect(readSessionHeader(relaxed)).toBeUndefined();
  Session.fromDER(relaxed).free();
  const sealer = new Sealer(secret, 'session-record');
  await store.set(key, sealer.seal(key, encodeSessionRecordWithScope(Buffer.from(scope, 'utf8'), relaxed)), 300);
  const handle = attachSessionStore(server, { store, secret, scope });
  try {
    expect((await connect(port, session)).reused).toBe(true);
    expect(handle.stats()).toMatchObject({ hits: 1, recordCacheHits: 0, rejected: 0 });
    expect((await connect(port, session)).reused).toBe(true);
    expect(handle.stats()).toMatchObject({ hits: 2, recordCacheHits: 1, rejected: 0 });
  } finally {
    handle.detach();
    await close(server);
  }
});
