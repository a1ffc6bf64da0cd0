/** Bad bytes and wrong types get typed errors; nothing crashes, nothing leaks, the error queue stays clean. */
import fc from 'fast-check';
import { ledger, Session, SessionDecodeError, DEFAULT_MAX_DER_BYTES } from '../lib';
import { makeSampleSessions, type SampleSessions } from './helpers/sessions';

let samples: SampleSessions;
beforeAll(async () => {
  samples = await makeSampleSessions();
});

/** Decodes `bytes`: either a SessionDecodeError, or a session that is fully usable and then freed. */
function decodeOrReject(bytes: Uint8Array): 'rejected' | 'accepted' {
  let session: Session;
  try {
    session = Session.fromDER(bytes);
  } catch (err) {
    expect(err).toBeInstanceOf(SessionDecodeError);
    expect((err as SessionDecodeError).code).toBe('ERR_TLS_SESSION_DECODE');
    return 'rejected';
  }
  try {
    // Whatever OpenSSL accepted must be readable and re-encodable without a crash.
    void session.protocol;
    void session.cipher;
    void session.id;
    void session.expiresAt;
    void session.hostname;
    void session.alpnProtocol;
    void session.peerCertificate;
    session.toDER();
  } catch (err) {
    // A peer certificate OpenSSL kept but Node's X509 parser refuses is the one acceptable failure.
    expect(err).toMatchObject({ code: 'ERR_TLS_SESSION_DECODE', message: expect.stringMatching(/peer certificate/) });
  } finally {
    expect(session.free()).toBe(true);
  }
  return 'accepted';
}

describe('wrong types', () => {
  test.each([
    ['undefined', undefined],
    ['null', null],
    ['a string', 'MIIB'],
    ['a number', 42],
    ['an array', [48, 1]],
    ['an ArrayBuffer', new ArrayBuffer(8)],
    ['a DataView', new DataView(new ArrayBuffer(8))],
    ['an object', { length: 2 }],
    ['an Int16Array', new Int16Array(4)],
  ])('%s is a TypeError with code ERR_INVALID_ARG_TYPE', (_name, value) => {
    expect(() => Session.fromDER(value as unknown as Uint8Array)).toThrow(TypeError);
    expect(() => Session.fromDER(value as unknown as Uint8Array)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });

  test('bad options are rejected by name', () => {
    expect(() => Session.fromDER(samples.server, { maxBytes: 0 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => Session.fromDER(samples.server, { maxBytes: 1.5 })).toThrow(/options\.maxBytes/);
    expect(() => Session.fromDER(samples.server, 'x' as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });
});

describe('bad bytes', () => {
  test('empty input', () => {
    expect(() => Session.fromDER(Buffer.alloc(0))).toThrow(SessionDecodeError);
    expect(() => Session.fromDER(new Uint8Array(0))).toThrow(/empty input/);
  });

  test('oversized input is refused before decoding; the cap is configurable', () => {
    const huge = Buffer.alloc(DEFAULT_MAX_DER_BYTES + 1, 0x30);
    expect(() => Session.fromDER(huge)).toThrow(/over the 65536-byte limit/);
    expect(() => Session.fromDER(samples.server, { maxBytes: samples.server.length - 1 })).toThrow(SessionDecodeError);
    Session.fromDER(samples.server, { maxBytes: samples.server.length }).free();
    const tenMegabytes = Buffer.alloc(10 * 1024 * 1024, 0xff);
    expect(() => Session.fromDER(tenMegabytes, { maxBytes: 16 * 1024 * 1024 })).toThrow(SessionDecodeError);
  });

  test('trailing bytes after the DER are an error, not ignored', () => {
    for (const tail of [Buffer.from([0]), Buffer.from('garbage'), samples.server]) {
      const bytes = Buffer.concat([samples.server, tail]);
      expect(() => Session.fromDER(bytes)).toThrow(new RegExp(`${tail.length} trailing byte`));
    }
  });

  test("every truncation of a real session is rejected with OpenSSL's reason", () => {
    const before = ledger();
    for (const der of [samples.server, samples.clientWithCertificate]) {
      for (let length = 1; length < der.length; length++) {
        try {
          Session.fromDER(der.subarray(0, length)).free();
          throw new Error(`a ${length}-byte prefix was accepted`);
        } catch (err) {
          expect(err).toBeInstanceOf(SessionDecodeError);
          expect((err as SessionDecodeError).opensslReason).toMatch(/^error:[0-9A-F]+:/);
        }
      }
    }
    expect(ledger().acquired).toBe(before.acquired);
  });

  test('every single-bit flip either decodes to a usable session or is rejected; no leak', () => {
    const before = ledger();
    const der = samples.server;
    const outcomes = { rejected: 0, accepted: 0 };
    for (let bit = 0; bit < der.length * 8; bit++) {
      const flipped = Buffer.from(der);
      flipped[bit >> 3]! ^= 1 << (bit & 7);
      outcomes[decodeOrReject(flipped)]++;
    }
    expect(outcomes.rejected).toBeGreaterThan(0);
    expect(outcomes.accepted).toBeGreaterThan(0); // flips inside the key or ID bytes are still valid DER
    const after = ledger();
    expect(after.live).toBe(before.live);
  });

  test('random bytes and mutated sessions never crash or leak (fast-check)', () => {
    const before = ledger();
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 2048 }), (bytes) => {
        decodeOrReject(bytes);
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), (edits) => {
        const bytes = Buffer.from(samples.clientWithCertificate);
        for (const [at, value] of edits) bytes[at % bytes.length] = value;
        decodeOrReject(bytes);
      }),
      { numRuns: 1500 },
    );
    expect(ledger().live).toBe(before.live);
  });

  test('a failed decode leaves no stale OpenSSL error behind to blame the next call', () => {
    expect(() => Session.fromDER(Buffer.from([0x30, 0x82, 0xff, 0xff]))).toThrow(SessionDecodeError);
    const session = Session.fromDER(samples.server);
    expect(session.toDER().equals(samples.server)).toBe(true);
    session.free();
    let reason = '';
    try {
      Session.fromDER(Buffer.from([0x02, 0x01, 0x00]));
    } catch (err) {
      reason = (err as SessionDecodeError).opensslReason ?? '';
    }
    expect(reason).not.toMatch(/too long|header/); // the first failure's reason did not leak into this one
    expect(reason).not.toBe('');
  });
});
