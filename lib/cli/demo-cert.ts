/**
 * The demo's certificate: a throwaway self-signed X.509 certificate for localhost, made at run
 * time in memory. Node has no API that makes certificates and the package must not need the
 * openssl CLI nor a compiler, nor ship a private key; so the certificate is DER written here
 * (a fixed, minimal layout) and signed with node:crypto. Its key is a fresh P-256 key that
 * lives only in this process: demo-only, never written to disk.
 */
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';

export interface DemoCertificate {
  /** PEM, PKCS#8: the demo-only key, made now. */
  key: string;
  /** PEM: the certificate, also the clients' only trusted CA. */
  cert: string;
}

/** One DER TLV. */
function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  const n = body.length;
  const length = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]); // < 64 KiB here
  return Buffer.concat([Buffer.from([tag]), length, body]);
}

const sequence = (...content: Buffer[]) => tlv(0x30, ...content);
const oid = (hex: string) => tlv(0x06, Buffer.from(hex, 'hex'));
/** UTCTime, YYMMDDHHMMSSZ (valid until 2049, far beyond a demo's day). */
const utcTime = (date: Date) => tlv(0x17, Buffer.from(`${date.toISOString().slice(2, 19).replace(/[-:T]/g, '')}Z`, 'ascii'));

const ECDSA_WITH_SHA256 = sequence(oid('2a8648ce3d040302'));
const COMMON_NAME = '550403';
const BASIC_CONSTRAINTS = '551d13';
const SUBJECT_ALT_NAME = '551d11';

/**
 * A positive, minimally encoded DER INTEGER from random bytes: top bit clear (positive) and the
 * next set, so the first byte is never a 0x00 pad before a byte under 0x80 (OpenSSL refuses that
 * as "illegal padding": one demo in 512 failed to load its certificate before).
 */
export function certificateSerial(random: Buffer): Buffer {
  const serial = Buffer.from(random);
  serial[0] = (serial[0]! & 0x7f) | 0x40;
  return serial;
}

/**
 * A certificate for DNS:localhost and IP:127.0.0.1, valid from an hour before `now` for one
 * day. CA:TRUE, like `openssl req -x509`, so the clients can trust it as their only CA.
 */
export function makeDemoCertificate(now: Date = new Date(), serialRandom: Buffer = randomBytes(16)): DemoCertificate {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const name = sequence(tlv(0x31, sequence(oid(COMMON_NAME), tlv(0x0c, Buffer.from('tls-session demo (throwaway)', 'utf8')))));
  const serial = certificateSerial(serialRandom);
  const extensions = tlv(
    0xa3,
    sequence(
      sequence(oid(BASIC_CONSTRAINTS), tlv(0x01, Buffer.from([0xff])), tlv(0x04, sequence(tlv(0x01, Buffer.from([0xff]))))),
      sequence(
        oid(SUBJECT_ALT_NAME),
        tlv(0x04, sequence(tlv(0x82, Buffer.from('localhost', 'ascii')), tlv(0x87, Buffer.from([127, 0, 0, 1])))),
      ),
    ),
  );
  const tbs = sequence(
    tlv(0xa0, tlv(0x02, Buffer.from([2]))), // v3
    tlv(0x02, serial),
    ECDSA_WITH_SHA256,
    name,
    sequence(utcTime(new Date(now.getTime() - 3600_000)), utcTime(new Date(now.getTime() + 86_400_000))),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
    extensions,
  );
  const signature = sign('sha256', tbs, privateKey); // DER ECDSA-Sig-Value
  const der = sequence(tbs, ECDSA_WITH_SHA256, tlv(0x03, Buffer.from([0]), signature));
  const pem = der
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n');
  return {
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    cert: `-----BEGIN CERTIFICATE-----\n${pem}\n-----END CERTIFICATE-----\n`,
  };
}
