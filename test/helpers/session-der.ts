/**
 * Rewrites fields of a DER SSL_SESSION (OpenSSL's SSL_SESSION_ASN1: a SEQUENCE whose `time` is
 * [1] EXPLICIT INTEGER and `timeout` [2] EXPLICIT INTEGER), to make sessions that decode but
 * carry values no real peer would send.
 */

interface Tlv {
  tag: number;
  body: Buffer;
}

function readLength(der: Buffer, at: number): [length: number, next: number] {
  const first = der[at]!;
  if (first < 0x80) return [first, at + 1];
  const count = first & 0x7f;
  let length = 0;
  for (let i = 0; i < count; i++) length = length * 256 + der[at + 1 + i]!;
  return [length, at + 1 + count];
}

function encodeLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), encodeLength(body.length), body]);
}

function children(der: Buffer): Tlv[] {
  if (der[0] !== 0x30) throw new Error('not a DER SEQUENCE');
  const [length, start] = readLength(der, 1);
  const out: Tlv[] = [];
  for (let at = start; at < start + length;) {
    const tag = der[at]!;
    const [bodyLength, bodyStart] = readLength(der, at + 1);
    out.push({ tag, body: der.subarray(bodyStart, bodyStart + bodyLength) });
    at = bodyStart + bodyLength;
  }
  return out;
}

/** The minimal two's-complement DER INTEGER for `value`. */
function derInteger(value: bigint): Buffer {
  return tlv(0x02, integerContents(value));
}

/** The minimal two's-complement contents of an INTEGER. */
export function integerContents(value: bigint): Buffer {
  const bytes: number[] = [];
  let v = value;
  for (;;) {
    const byte = Number(BigInt.asUintN(8, v));
    bytes.unshift(byte);
    v >>= 8n;
    if ((v === 0n && (byte & 0x80) === 0) || (v === -1n && (byte & 0x80) !== 0)) break;
  }
  return Buffer.from(bytes);
}

/** `der` with its `time` ([1]) and/or `timeout` ([2]) replaced (added when absent). */
export function withSessionTimes(der: Buffer, times: { time?: bigint; timeout?: bigint }): Buffer {
  const fields = children(der);
  const set = (tag: number, value: bigint | undefined) => {
    if (value === undefined) return;
    const body = derInteger(value);
    const existing = fields.find((f) => f.tag === tag);
    if (existing) existing.body = body;
    else {
      // Context tags are in ascending order after the five universal fields.
      const index = fields.findIndex((f) => f.tag >= 0xa0 && f.tag > tag);
      fields.splice(index < 0 ? fields.length : index, 0, { tag, body });
    }
  };
  set(0xa1, times.time);
  set(0xa2, times.timeout);
  return tlv(0x30, Buffer.concat(fields.map((f) => tlv(f.tag, f.body))));
}
