/**
 * The payload inside an envelope: which scope the session belongs to, then the session DER.
 *   version 0x01 | scope length (u16) | scope (UTF-8) | DER
 * Scope travels inside the (possibly sealed) payload so a record copied between virtual hosts
 * or fleets is recognised and refused.

 * (The SSL_SESSION DER fields the handshake path reads are in ../session-header.ts.)
 */
import { Session } from '../../session';
import { RecordFormatError, RecordRejectedError } from '../errors';
import { closeEnvelope, openEnvelope, type Sealer } from './envelope';

export interface SessionRecord {
  scope: string;
  der: Buffer;
}

const RECORD_VERSION = 1;

/** The same encoding from the scope's UTF-8 bytes (computed once per attachment): one allocation, one copy. */
export function encodeSessionRecordWithScope(scope: Buffer, der: Buffer): Buffer {
  if (scope.length > 0xffff) throw new RecordFormatError('scope is longer than 65535 bytes');
  const out = Buffer.allocUnsafe(3 + scope.length + der.length);
  out[0] = RECORD_VERSION;
  out.writeUInt16BE(scope.length, 1);
  scope.copy(out, 3);
  der.copy(out, 3 + scope.length);
  return out;
}

export function decodeSessionRecord(payload: Buffer): SessionRecord {
  if (payload.length < 3) throw new RecordFormatError('session record is truncated');
  if (payload[0] !== RECORD_VERSION) throw new RecordFormatError(`session record has unsupported version ${payload[0]}`);
  const scopeLength = payload.readUInt16BE(1);
  if (payload.length < 3 + scopeLength + 1) throw new RecordFormatError('session record is truncated');
  return {
    scope: payload.subarray(3, 3 + scopeLength).toString('utf8'),
    der: payload.subarray(3 + scopeLength),
  };
}

/**
 * The DER of a record whose scope is `scope` (UTF-8 bytes), or undefined when the record names
 * another scope. Compares bytes: no string is built on the handshake path.
 */
export function sessionDerForScope(payload: Buffer, scope: Buffer): Buffer | undefined {
  if (payload.length < 3) throw new RecordFormatError('session record is truncated');
  if (payload[0] !== RECORD_VERSION) throw new RecordFormatError(`session record has unsupported version ${payload[0]}`);
  const scopeLength = payload.readUInt16BE(1);
  if (payload.length < 3 + scopeLength + 1) throw new RecordFormatError('session record is truncated');
  if (scopeLength !== scope.length || payload.compare(scope, 0, scope.length, 3, 3 + scopeLength) !== 0) return undefined;
  return payload.subarray(3 + scopeLength);
}

/** The record of a server session under `storeKey`: the scope's UTF-8 bytes, the DER, in their envelope. */
export function sealServerSessionRecord(sealer: Sealer | undefined, storeKey: string, scope: Buffer, der: Buffer): Buffer {
  return closeEnvelope(sealer, storeKey, encodeSessionRecordWithScope(scope, der));
}

/** The scope and DER a stored server session record holds (opened under `storeKey`); throws UnsealError or RecordFormatError. */
export function openServerSessionRecord(sealer: Sealer | undefined, storeKey: string, record: Buffer): SessionRecord {
  return decodeSessionRecord(openEnvelope(sealer, storeKey, record));
}

/**
 * The full decode of a stored server session: OpenSSL decodes it (at most `maxBytes`) and it
 * must carry the session ID it is stored under. Returns the Session (owned: free it); throws
 * RecordRejectedError ('rejected') otherwise. attachSessionStore's full path and `tls-session
 * store` share it; the caller checks what it alone knows (session ID context, expiry).
 */
export function decodeStoredServerSession(der: Buffer, sessionId: Buffer, maxBytes: number): Session {
  let session: Session;
  try {
    session = Session.fromDER(der, { maxBytes });
  } catch (error) {
    throw new RecordRejectedError('rejected', `stored session does not decode: ${(error as Error).message}`, error);
  }
  if (!session.id.equals(sessionId)) {
    session.free();
    throw new RecordRejectedError('rejected', 'stored session has another session ID than the key it is stored under');
  }
  return session;
}
