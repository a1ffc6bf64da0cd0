/**
 * Sessions whose time or timeout no real peer sends (2^53, INT64_MAX, INT64_MIN, negative)
 * decode in OpenSSL but are refused at decode with a typed error, so an Invalid Date never
 * reaches expiresAt, JSON or inspect, and such a session never resumes (Session.fromDER, the
 * engine's DER lookup; the store path is in test/persist/attach.test.ts). flushSessions()
 * refuses the dates OpenSSL reads as "flush everything".
 */
import { inspect } from 'node:util';
import { openssl, Session, SessionDecodeError, TlsContext } from '../lib';
import type { Pki } from './helpers/pki';
import { makeSampleSessions } from './helpers/sessions';
import { withSessionTimes } from './helpers/session-der';
import { establish } from './tls/helpers/established';

let pki: Pki;
let der: Buffer;
beforeAll(async () => {
  const samples = await makeSampleSessions();
  pki = samples.pki;
  der = samples.server;
});

const EXTREMES: Array<[string, bigint]> = [
  ['2^53', 2n ** 53n],
  ['INT64_MAX', 2n ** 63n - 1n],
  ['INT64_MIN', -(2n ** 63n)],
  ['-1', -1n],
  ['8.64e12 + 1', 8_640_000_000_001n],
];

test('the rewriter is faithful: unchanged fields give the same bytes', () => {
  expect(withSessionTimes(der, {}).equals(der)).toBe(true);
});

test.each(EXTREMES)('time = %s is refused at decode with SessionDecodeError naming the field', (_name, value) => {
  const forged = withSessionTimes(der, { time: value });
  expect(() => Session.fromDER(forged)).toThrow(SessionDecodeError);
  expect(() => Session.fromDER(forged)).toThrow(/time \(-?\d+\) and timeout \(\d+\) are out of range/);
});

test.each(EXTREMES)('timeout = %s is refused at decode with SessionDecodeError', (_name, value) => {
  expect(() => Session.fromDER(withSessionTimes(der, { timeout: value }))).toThrow(
    expect.objectContaining({ code: 'ERR_TLS_SESSION_DECODE', message: expect.stringMatching(/out of range/) }),
  );
});

// Follows the OpenSSL version: 3.0 and 3.1 keep a session's time and timeout as the seconds the
// DER says; 3.2 and later convert them to nanoseconds in a uint64_t (OSSL_TIME) at decode, so
// they hold at most 18,446,744,073 s (the year 2554) and wrap anything larger into another,
// plausible time. The refusal reads the DER itself (the same on every version); a value this
// OpenSSL does not hold as the DER says is refused too, naming the OpenSSL.
const HOLDS_NANOSECONDS = openssl.versionNumber >= 0x30200000;
const MAX_OSSL_TIME_SECONDS = 18_446_744_073n;

test('the largest accepted values give valid dates that serialise, and expiry is computed', () => {
  const largest = HOLDS_NANOSECONDS ? MAX_OSSL_TIME_SECONDS : 8_640_000_000_000n;
  using latest = Session.fromDER(withSessionTimes(der, { time: largest - 10n, timeout: 10n }));
  expect(latest.expiresAt.getTime()).toBe(Number(largest) * 1000);
  expect(latest.isExpired()).toBe(false);
  expect(() => JSON.stringify(latest)).not.toThrow();
  expect(inspect(latest)).toContain(HOLDS_NANOSECONDS ? '2554-07-21' : '+275760');
  // (0 would mean "absent" to OpenSSL's decoder, which then substitutes now / 3 s.)
  using epoch = Session.fromDER(withSessionTimes(der, { time: 1n, timeout: 1n }));
  expect(epoch.expiresAt.toISOString()).toBe('1970-01-01T00:00:02.000Z');
  expect(epoch.isExpired()).toBe(true);
});

test('a time within the Date range that this OpenSSL does not hold as the DER says is refused, naming the OpenSSL', () => {
  const forged = withSessionTimes(der, { time: 8_640_000_000_000n - 10n, timeout: 10n });
  if (!HOLDS_NANOSECONDS) {
    Session.fromDER(forged).free();
    return;
  }
  expect(() => Session.fromDER(forged)).toThrow(SessionDecodeError);
  expect(() => Session.fromDER(forged)).toThrow(/time \(8639999999990\) and timeout \(10\) are out of range for OpenSSL 3\.\d+/);
  expect(() => Session.fromDER(withSessionTimes(der, { time: 1n, timeout: MAX_OSSL_TIME_SECONDS + 1n }))).toThrow(SessionDecodeError);
});

test('an engine lookup that returns such DER is a cache miss: full handshake, nothing leaked', async () => {
  const serverCtx = new TlsContext({ role: 'server', cert: pki.serverCert, key: pki.serverKey, maxVersion: 'TLSv1.2', tickets: false });
  const clientCtx = new TlsContext({ role: 'client', ca: pki.ca, maxVersion: 'TLSv1.2', tickets: false });
  const first = await establish(serverCtx, clientCtx);
  const forged = withSessionTimes(first.serverSession.toDER(), { timeout: 2n ** 53n });
  serverCtx.flushSessions(new Date(Date.now() + 10 * 365 * 24 * 3600 * 1000));
  let asked = 0;
  serverCtx.setSessionLookup(() => {
    asked++;
    return forged;
  });
  const second = await establish(serverCtx, clientCtx, first.clientSession);
  expect(asked).toBe(1);
  expect(second.client.isSessionReused()).toBe(false);
  for (const s of [first.serverSession, first.clientSession, second.serverSession, second.clientSession]) s?.free();
  for (const c of [first.client, first.server, second.client, second.server]) c.destroy();
  serverCtx.close();
  clientCtx.close();
});

test('flushSessions refuses Date(0) and earlier (OpenSSL reads time 0 as "flush all")', () => {
  const ctx = new TlsContext({ role: 'server', cert: pki.serverCert, key: pki.serverKey });
  for (const at of [new Date(0), new Date(-1000), new Date(999)]) {
    expect(() => ctx.flushSessions(at)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
  }
  expect(() => ctx.flushSessions(new Date(1000))).not.toThrow();
  ctx.close();
});
