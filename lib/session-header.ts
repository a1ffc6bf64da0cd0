/**
 * A reader of the fields of OpenSSL's SSL_SESSION encoding that the handshake path needs
 * (protocol, cipher, session ID, times, session ID context, SNI hostname): reading them costs
 * about a microsecond, where decoding the whole session (d2i_SSL_SESSION and its metadata) costs
 * tens.
 *
 * It agrees with the full decoder (Session.fromDER: d2i_SSL_SESSION of every OpenSSL from 3.0
 * to 3.5, then the binding's own checks): whatever it accepts, the full decoder accepts too and
 * reads the same values. So it walks the whole SEQUENCE, field by field in the order of
 * OpenSSL's template, and accepts only a strict subset of what OpenSSL decodes, the shape
 * i2d_SSL_SESSION writes: DER lengths, exact tags, minimal INTEGERs in range, known ciphers,
 * and no field whose decoding it cannot vouch for (a peer certificate, a field only newer
 * OpenSSL releases know). Anything else, even bytes OpenSSL would decode, reads as undefined:
 * the caller then decodes the session the slow way, or refuses it. The property test
 * (test/session-header-property.test.ts) holds it to that against mutated real sessions.
 */
/** The fields of an SSL_SESSION's DER the handshake path reads (OpenSSL's SSL_SESSION_ASN1, ssl/ssl_asn1.c). */
export interface SessionHeader {
  /** The protocol version number (0x0300 SSLv3 to 0x0304 TLS 1.3). */
  protocolVersion: number;
  /** OpenSSL's name of the session's cipher (what SSL_CIPHER_get_name, Session#cipher, says). */
  cipher: string;
  sessionId: Buffer;
  /** Seconds since 1970 (always present and above 0: OpenSSL reads an absent or zero time as "now"). */
  time: number;
  /** Seconds (always present and above 0: OpenSSL reads an absent or zero timeout as 3 s). */
  timeout: number;
  /** Empty when absent. */
  sessionIdContext: Buffer;
  /**
   * [6] the SNI host name the session was issued for (raw bytes: printable ASCII, as OpenSSL
   * hands it out), when the DER carries one. Server sessions carry it on the Node releases that
   * bind sessions to the SNI name (node-internals.ts, sessionBinding): their session ID context
   * is derived from it.
   */
  hostname: Buffer | undefined;
}

export const TLS1_3_VERSION = 0x0304;
const EMPTY = Buffer.alloc(0);

/**
 * The ciphers the reader vouches for, by code, with OpenSSL's names: each is in the cipher table
 * of every OpenSSL 3.0 to 3.5 (ssl3_get_cipher_by_id finds it, so d2i accepts it) under this
 * name. Node's defaults, the common TLS 1.2 suites and the PSK suites node-internals' probe uses;
 * a session with any other code (0x0000, 0xFFFF, an SCSV, a suite a build may lack) takes the
 * full path.
 */
const CIPHERS: ReadonlyMap<number, string> = new Map([
  [0x1301, 'TLS_AES_128_GCM_SHA256'],
  [0x1302, 'TLS_AES_256_GCM_SHA384'],
  [0x1303, 'TLS_CHACHA20_POLY1305_SHA256'],
  [0x1304, 'TLS_AES_128_CCM_SHA256'],
  [0xc02b, 'ECDHE-ECDSA-AES128-GCM-SHA256'],
  [0xc02c, 'ECDHE-ECDSA-AES256-GCM-SHA384'],
  [0xc02f, 'ECDHE-RSA-AES128-GCM-SHA256'],
  [0xc030, 'ECDHE-RSA-AES256-GCM-SHA384'],
  [0xcca8, 'ECDHE-RSA-CHACHA20-POLY1305'],
  [0xcca9, 'ECDHE-ECDSA-CHACHA20-POLY1305'],
  [0xccaa, 'DHE-RSA-CHACHA20-POLY1305'],
  [0x009e, 'DHE-RSA-AES128-GCM-SHA256'],
  [0x009f, 'DHE-RSA-AES256-GCM-SHA384'],
  [0xc023, 'ECDHE-ECDSA-AES128-SHA256'],
  [0xc024, 'ECDHE-ECDSA-AES256-SHA384'],
  [0xc027, 'ECDHE-RSA-AES128-SHA256'],
  [0xc028, 'ECDHE-RSA-AES256-SHA384'],
  [0x0067, 'DHE-RSA-AES128-SHA256'],
  [0x006b, 'DHE-RSA-AES256-SHA256'],
  [0xc009, 'ECDHE-ECDSA-AES128-SHA'],
  [0xc00a, 'ECDHE-ECDSA-AES256-SHA'],
  [0xc013, 'ECDHE-RSA-AES128-SHA'],
  [0xc014, 'ECDHE-RSA-AES256-SHA'],
  [0x009c, 'AES128-GCM-SHA256'],
  [0x009d, 'AES256-GCM-SHA384'],
  [0x003c, 'AES128-SHA256'],
  [0x003d, 'AES256-SHA256'],
  [0x002f, 'AES128-SHA'],
  [0x0035, 'AES256-SHA'],
  [0x00a8, 'PSK-AES128-GCM-SHA256'],
  [0x00a9, 'PSK-AES256-GCM-SHA384'],
  [0xccab, 'PSK-CHACHA20-POLY1305'],
]);

/**
 * Default cap on the DER Session.fromDER decodes (real sessions are < 8 KiB even with a
 * certificate chain). Defined here, where nothing is imported, so that the reader below, the
 * session API and the command (which must not load the addon for --help) share the one value;
 * session.ts exports it. Longer DER takes the full path here.
 */
export const DEFAULT_MAX_DER_BYTES = 64 * 1024;
/** SSL3_MAX_SSL_SESSION_ID_LENGTH and SSL_MAX_SID_CTX_LENGTH: d2i refuses longer. */
const MAX_ID_BYTES = 32;
/** Master keys up to SSL_MAX_MASTER_KEY_LENGTH (a TLS 1.3 SHA-384 PSK is as long); d2i's limit is higher. */
const MAX_MASTER_KEY_BYTES = 48;
/**
 * Times and timeouts up to 2^32 - 1 s: every OpenSSL holds them unchanged (3.2+ keeps nanoseconds
 * in a uint64_t, up to 18446744073 s) and their sum is far below the binding's limit
 * (kMaxSessionSeconds). Larger ones take the full path, which decides by the OpenSSL at hand.
 */
const MAX_TIME = 0xffffffff;
const MAX_INT32 = 0x7fffffff;
const MAX_UINT32 = 0xffffffff;
/** A uint64 field (ZUINT64) up to 7 bytes of value: in range for OpenSSL, exact enough here. */
const MAX_UINT56 = 2 ** 56 - 1;

// What the reader accepts in each optional [n] field after master_key (all EXPLICIT).
/** An OCTET STRING whose contents d2i takes whatever they are (a copy, or strndup). */
const ANY_OCTETS = -1;
/** Read by the reader itself: [1] time, [2] timeout, [4] session ID context, [6] host name. */
const READ = -2;
/**
 * By [n]: ANY_OCTETS, READ, or (a number >= 0) an INTEGER, non-negative and at most that.
 * Undefined: the reader defers: [0] key_arg (never written), [3] peer certificate (an X509
 * decode), [11] comp_id (checked only where compression is built in), [12] srp_username, [20]
 * peer_rpk (OpenSSL 3.2+ only: 3.0 and 3.1 refuse the session), and numbers OpenSSL's template
 * does not have.
 */
const OPTIONAL_FIELDS: readonly (number | undefined)[] = [
  undefined, // [0] key_arg
  READ, // [1] time, ZINT64
  READ, // [2] timeout, ZINT64
  undefined, // [3] peer
  READ, // [4] session_id_context
  MAX_INT32, // [5] verify_result, ZINT32
  READ, // [6] tlsext_hostname
  ANY_OCTETS, // [7] psk_identity_hint
  ANY_OCTETS, // [8] psk_identity
  MAX_UINT56, // [9] tlsext_tick_lifetime_hint, ZUINT64
  ANY_OCTETS, // [10] tlsext_tick
  undefined, // [11] comp_id
  undefined, // [12] srp_username
  MAX_UINT56, // [13] flags, ZUINT64
  MAX_UINT32, // [14] tlsext_tick_age_add, ZUINT32
  MAX_UINT32, // [15] max_early_data, ZUINT32
  ANY_OCTETS, // [16] alpn_selected
  MAX_UINT32, // [17] tlsext_max_fragment_len_mode, ZUINT32
  ANY_OCTETS, // [18] ticket_appdata
  MAX_UINT32, // [19] kex_group, UINT32 (in OpenSSL 3.0 and later)
];

/**
 * Reads the SEQUENCE: version, ssl_version, cipher, session_id, master_key, then the optional
 * [1] time, [2] timeout, [4] session_id_context, [5] verify_result, [6] hostname, [7] and [8]
 * PSK identity hint and identity, [9] ticket lifetime hint, [10] ticket, [13] flags, [14] ticket
 * age add, [15] max early data, [16] ALPN protocol, [17] max fragment length mode, [18] ticket
 * appdata, [19] key exchange group, each at most once and in that order, and nothing after the
 * SEQUENCE. Returns undefined for anything else (see the module comment): the caller then
 * decodes the session in full, which refuses what OpenSSL refuses. Never throws.
 */
export function readSessionHeader(der: Buffer): SessionHeader | undefined {
  let pos = 0;
  // The TLV at `pos` (DER: definite, minimal length), ending within `limit`: returns its tag (-1
  // when malformed) and sets where its contents start and stop.
  let start = 0;
  let stop = 0;
  const next = (limit: number): number => {
    if (pos + 2 > limit) return -1;
    const tag = der[pos]!;
    let length = der[pos + 1]!;
    pos += 2;
    if (length & 0x80) {
      const bytes = length & 0x7f;
      if (bytes === 0 || bytes > 3 || pos + bytes > limit || der[pos] === 0) return -1;
      length = 0;
      for (let i = 0; i < bytes; i++) length = length * 256 + der[pos + i]!;
      if (length < 0x80) return -1; // not minimal
      pos += bytes;
    }
    start = pos;
    stop = pos + length;
    return stop <= limit ? tag : -1;
  };
  // The INTEGER at [start, stop): its value when minimal (as OpenSSL requires: no illegal padding),
  // non-negative and at most `max`; else -1.
  const integer = (max: number): number => {
    if (stop - start < 1 || der[start]! & 0x80) return -1;
    let from = start;
    if (der[from] === 0 && stop - from > 1) {
      if (!(der[from + 1]! & 0x80)) return -1; // padding OpenSSL refuses
      from += 1;
    }
    if (stop - from > 7) return -1;
    let value = 0;
    for (let i = from; i < stop; i++) value = value * 256 + der[i]!;
    return value <= max ? value : -1;
  };
  // The one TLV an [n] EXPLICIT field holds, which must fill it and have tag `inner`.
  const explicit = (inner: number): boolean => {
    const outerStop = stop;
    return next(outerStop) === inner && stop === outerStop;
  };

  if (der.length > DEFAULT_MAX_DER_BYTES || next(der.length) !== 0x30 || stop !== der.length) return undefined; // nothing may follow
  const seqEnd = stop;
  // version: SSL_SESSION_ASN1_VERSION (1)
  if (next(seqEnd) !== 0x02 || integer(1) !== 1) return undefined;
  pos = stop;
  // ssl_version: SSLv3 to TLS 1.3 (d2i refuses any major version but 3, DTLS's and DTLS1_BAD_VER).
  if (next(seqEnd) !== 0x02 || stop - start !== 2 || der[start] !== 0x03 || der[start + 1]! > 0x04) return undefined;
  const protocolVersion = 0x0300 | der[start + 1]!;
  pos = stop;
  // cipher: two bytes, a cipher every OpenSSL 3 knows (else d2i refuses it, or a build may lack it)
  if (next(seqEnd) !== 0x04 || stop - start !== 2) return undefined;
  const cipher = CIPHERS.get(der[start]! * 256 + der[start + 1]!);
  if (cipher === undefined) return undefined;
  pos = stop;
  if (next(seqEnd) !== 0x04 || stop - start > MAX_ID_BYTES) return undefined; // session_id
  const sessionId = der.subarray(start, stop);
  pos = stop;
  if (next(seqEnd) !== 0x04 || stop - start > MAX_MASTER_KEY_BYTES) return undefined; // master_key
  pos = stop;

  let time = 0;
  let timeout = 0;
  let sessionIdContext: Buffer = EMPTY;
  let hostname: Buffer | undefined;
  let last = 0; // the last [n] read: each comes at most once, in the template's order
  while (pos < seqEnd) {
    const tag = next(seqEnd);
    const n = tag & 0x1f;
    // Context-specific, constructed (EXPLICIT), low tag number, after the previous field.
    if (tag < 0 || (tag & 0xe0) !== 0xa0 || n <= last) return undefined;
    last = n;
    const rule = OPTIONAL_FIELDS[n];
    if (rule === undefined) return undefined;
    const outerStop = stop;
    if (rule >= 0) {
      if (!explicit(0x02) || integer(rule) < 0) return undefined;
    } else if (rule === ANY_OCTETS) {
      if (!explicit(0x04)) return undefined;
    } else if (n === 1 || n === 2) {
      // ZINT64; 0 (or absent) would mean "now" / 3 s to OpenSSL: not read here.
      if (!explicit(0x02)) return undefined;
      const value = integer(MAX_TIME);
      if (value < 1) return undefined;
      if (n === 1) time = value;
      else timeout = value;
    } else if (n === 4) {
      if (!explicit(0x04) || stop - start > MAX_ID_BYTES) return undefined;
      sessionIdContext = der.subarray(start, stop);
    } else {
      // [6]: OpenSSL keeps it as a C string (strndup): printable ASCII reads the same here.
      if (!explicit(0x04) || stop === start) return undefined;
      for (let i = start; i < stop; i++) if (der[i]! < 0x20 || der[i]! > 0x7e) return undefined;
      hostname = der.subarray(start, stop);
    }
    pos = outerStop;
  }
  if (pos !== seqEnd || time === 0 || timeout === 0) return undefined;
  return { protocolVersion, cipher, sessionId, time, timeout, sessionIdContext, hostname };
}
