/**
 * A reader of the few leading fields of OpenSSL's SSL_SESSION encoding that the handshake path
 * needs (protocol, session ID, times, session ID context, SNI hostname): reading them costs well
 * under a microsecond, where decoding the whole session (d2i_SSL_SESSION and its metadata) costs
 * tens. It reads what the DER says, whatever OpenSSL version would later decode it.
 */
/** The leading fields of an SSL_SESSION's DER (OpenSSL's SSL_SESSION_ASN1, ssl/ssl_asn1.c). */
export interface SessionHeader {
  /** The protocol version number (0x0303 TLS 1.2, 0x0304 TLS 1.3). */
  protocolVersion: number;
  sessionId: Buffer;
  /** Seconds since 1970 (0 when absent). */
  time: number;
  /** Seconds (0 when absent). */
  timeout: number;
  /** Empty when absent. */
  sessionIdContext: Buffer;
  /**
   * [6] the SNI host name the session was issued for (raw bytes), when the DER carries one.
   * Server sessions carry it on the Node releases that bind sessions to the SNI name
   * (node-internals.ts, sessionBinding): their session ID context is derived from it.
   */
  hostname: Buffer | undefined;
}

export const TLS1_3_VERSION = 0x0304;
const EMPTY = Buffer.alloc(0);

/**
 * Reads the SEQUENCE's first fields: version, ssl_version, cipher, session_id, master_key,
 * [0] key_arg, [1] time, [2] timeout, [3] peer, [4] session_id_context, [5] verify_result,
 * [6] hostname. Returns undefined for
 * anything that does not have that shape (the caller then decodes the whole session the slow
 * way, or refuses it). Not a validator: OpenSSL decodes the bytes again when Node loads them.
 */
export function readSessionHeader(der: Buffer): SessionHeader | undefined {
  let pos = 0;
  const end = der.length;
  // One TLV at `pos`: its tag, where its contents start and end. -1 when malformed.
  let tag = 0;
  let start = 0;
  let stop = 0;
  const next = (limit: number): boolean => {
    if (pos + 2 > limit) return false;
    tag = der[pos]!;
    let length = der[pos + 1]!;
    pos += 2;
    if (length & 0x80) {
      const bytes = length & 0x7f;
      if (bytes === 0 || bytes > 3 || pos + bytes > limit) return false;
      length = 0;
      for (let i = 0; i < bytes; i++) length = length * 256 + der[pos + i]!;
      pos += bytes;
    }
    start = pos;
    stop = pos + length;
    if (stop > limit) return false;
    return true;
  };
  // A non-negative INTEGER below 2^48 (DER: a leading 0x00 when the top bit is set), else undefined.
  // Through a call, so TypeScript does not narrow `tag` across next() calls.
  const is = (expected: number): boolean => tag === expected;
  const integer = (): number | undefined => {
    const length = stop - start;
    if (!is(0x02) || length < 1 || length > 7 || der[start]! & 0x80) return undefined;
    if (length === 7 && der[start] !== 0) return undefined;
    let value = 0;
    for (let i = start; i < stop; i++) value = value * 256 + der[i]!;
    return value;
  };
  if (!next(end) || !is(0x30)) return undefined;
  const seqEnd = stop;
  if (!next(seqEnd) || integer() !== 1) return undefined;
  pos = stop;
  if (!next(seqEnd)) return undefined;
  const protocolVersion = integer();
  if (protocolVersion === undefined) return undefined;
  pos = stop;
  if (!next(seqEnd) || !is(0x04)) return undefined; // cipher
  pos = stop;
  if (!next(seqEnd) || !is(0x04) || stop - start > 32) return undefined;
  const sessionId = der.subarray(start, stop);
  pos = stop;
  if (!next(seqEnd) || !is(0x04)) return undefined; // master key
  pos = stop;
  let time = 0;
  let timeout = 0;
  let sessionIdContext: Buffer = EMPTY;
  while (pos < seqEnd) {
    const at = pos;
    if (!next(seqEnd)) return undefined;
    const outerStop = stop;
    if (is(0x80)) {
      // [0] key_arg (implicit)
    } else if (is(0xa1) || is(0xa2) || is(0xa4)) {
      const which = tag;
      if (!next(outerStop) || stop !== outerStop) return undefined;
      if (which === 0xa4) {
        if (!is(0x04) || stop - start > 32) return undefined;
        sessionIdContext = der.subarray(start, stop);
        pos = outerStop;
        break;
      }
      const value = integer();
      if (value === undefined) return undefined;
      if (which === 0xa1) time = value;
      else timeout = value;
    } else if (is(0xa3)) {
      // [3] peer certificate: skipped
    } else {
      pos = at;
      break; // a later field: the session ID context was absent
    }
    pos = outerStop;
  }
  let hostname: Buffer | undefined;
  while (pos < seqEnd) {
    if (!next(seqEnd)) return undefined;
    const outerStop = stop;
    if (is(0xa5)) {
      // [5] verify_result: skipped
    } else if (is(0xa6)) {
      if (!next(outerStop) || stop !== outerStop || !is(0x04)) return undefined;
      hostname = der.subarray(start, stop);
      break;
    } else {
      break; // a later field: no host name
    }
    pos = outerStop;
  }
  return { protocolVersion, sessionId, time, timeout, sessionIdContext, hostname };
}
