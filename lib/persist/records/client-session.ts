/**
 * What ClientSessionCache stores for one client session, inside the (possibly sealed) envelope
 * of envelope.ts:
 *   'C' | version 0x01 | use (0x01 reusable, 0x02 single-use) | expiresAt (u48 BE, ms since the
 *   epoch) | peer digest (32 bytes) | session DER
 * The peer digest travels inside the payload so that a record copied under another peer's key is
 * recognised and refused; expiresAt (the earliest of the session's own end, the ticket lifetime,
 * the server certificate's notAfter and the cache's maxAge) lets a reader skip decoding.
 */
import { Session } from '../../session';
import { RecordFormatError, RecordRejectedError } from '../errors';
import { closeEnvelope, openEnvelope, type Sealer } from './envelope';

const MAGIC = 0x43; // 'C'
const VERSION = 1;
const HEADER_BYTES = 3 + 6 + 32;

/** TLS 1.2 sessions may be offered again; TLS 1.3 tickets are offered once (RFC 8446 §C.4). */
export type ClientSessionUse = 'reusable' | 'single-use';

export interface ClientSessionRecord {
  use: ClientSessionUse;
  expiresAtMs: number;
  /** Hex SHA-256 of the peer (ClientPeer.digest). */
  peerDigest: string;
  der: Buffer;
}

export function encodeClientRecord(record: ClientSessionRecord): Buffer {
  const out = Buffer.allocUnsafe(HEADER_BYTES + record.der.length);
  out[0] = MAGIC;
  out[1] = VERSION;
  out[2] = record.use === 'reusable' ? 1 : 2;
  out.writeUIntBE(Math.max(0, Math.floor(record.expiresAtMs)), 3, 6);
  out.write(record.peerDigest, 9, 32, 'hex');
  record.der.copy(out, HEADER_BYTES);
  return out;
}

export function decodeClientRecord(payload: Buffer): ClientSessionRecord {
  if (payload.length <= HEADER_BYTES) throw new RecordFormatError('client session record is truncated');
  if (payload[0] !== MAGIC) throw new RecordFormatError('not a client session record (bad magic)');
  if (payload[1] !== VERSION) throw new RecordFormatError(`client session record has unsupported version ${payload[1]}`);
  const use = payload[2] === 1 ? 'reusable' : payload[2] === 2 ? 'single-use' : undefined;
  if (use === undefined) throw new RecordFormatError(`client session record has unknown use ${payload[2]}`);
  return {
    use,
    expiresAtMs: payload.readUIntBE(3, 6),
    peerDigest: payload.toString('hex', 9, HEADER_BYTES),
    der: payload.subarray(HEADER_BYTES),
  };
}

/** The record of one client session under its pool key `poolKey` (sealed under the key without its slot). */
export function sealClientSessionRecord(sealer: Sealer | undefined, poolKey: string, record: ClientSessionRecord): Buffer {
  return closeEnvelope(sealer, poolKey, encodeClientRecord(record));
}

/**
 * Opens and checks one stored client session: the envelope under `poolKey`, the peer it was
 * stored for, its size, its expiry (when `now` is given) and that OpenSSL decodes a resumable
 * session with a server certificate. The one acceptance of client records, for ClientSessionCache
 * and `tls-session store`. Returns the record and its decoded Session (owned: free it); throws
 * RecordRejectedError ('expired' or 'rejected', the cause attached) otherwise.
 */
export function openClientSessionRecord(
  sealer: Sealer | undefined,
  poolKey: string,
  stored: Buffer,
  expected: { peerDigest: string; maxSessionBytes: number; now?: number },
): { record: ClientSessionRecord; session: Session } {
  let record: ClientSessionRecord;
  try {
    record = decodeClientRecord(openEnvelope(sealer, poolKey, stored));
  } catch (error) {
    throw new RecordRejectedError('rejected', (error as Error).message, error);
  }
  if (record.peerDigest !== expected.peerDigest) throw new RecordRejectedError('rejected', 'stored client session belongs to another peer');
  const { now, maxSessionBytes } = expected;
  if (now !== undefined && record.expiresAtMs <= now) throw new RecordRejectedError('expired', 'stored client session has expired');
  if (record.der.length > maxSessionBytes) {
    throw new RecordRejectedError('rejected', `stored client session of ${record.der.length} bytes is over maxSessionBytes`);
  }
  let session: Session;
  try {
    session = Session.fromDER(record.der, { maxBytes: maxSessionBytes });
  } catch (error) {
    throw new RecordRejectedError('rejected', `stored client session does not decode: ${(error as Error).message}`, error);
  }
  try {
    if (!session.isResumable) throw new RecordRejectedError('rejected', 'stored client session is not resumable');
    if (now !== undefined && session.isExpired(new Date(now)))
      throw new RecordRejectedError('expired', 'stored client session has expired');
    if (session.peerCertificate === undefined)
      throw new RecordRejectedError('rejected', 'stored client session holds no server certificate');
  } catch (error) {
    session.free();
    throw error;
  }
  return { record, session };
}
