/**
 * The payload inside an envelope: which scope the session belongs to, then the session DER.
 *   version 0x01 | scope length (u16) | scope (UTF-8) | DER
 * Scope travels inside the (possibly sealed) payload so a record copied between virtual hosts
 * or fleets is recognised and refused.
 */
import { RecordFormatError } from './errors';

export interface SessionRecord {
  scope: string;
  der: Buffer;
}

const RECORD_VERSION = 1;

export function encodeSessionRecord(record: SessionRecord): Buffer {
  const scope = Buffer.from(record.scope, 'utf8');
  if (scope.length > 0xffff) throw new RecordFormatError('scope is longer than 65535 bytes');
  const header = Buffer.alloc(3);
  header[0] = RECORD_VERSION;
  header.writeUInt16BE(scope.length, 1);
  return Buffer.concat([header, scope, record.der]);
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
