/**
 * TicketKeyRing's record: one epoch's ticket key (lib/ticket-key-layout.ts), alone in its
 * envelope, sealed with the secret's 'ticket-key' subkey when one is configured. Written and read
 * here only: by the ring, and by `tls-session store` (which only reads).
 */
import { TICKET_KEY_BYTES } from '../../ticket-key-layout';
import { RecordFormatError } from '../errors';
import { closeEnvelope, openEnvelope, type Sealer } from './envelope';

/** The record of `material` (48 bytes) under `storeKey`. */
export function sealTicketKeyRecord(sealer: Sealer | undefined, storeKey: string, material: Buffer): Buffer {
  return closeEnvelope(sealer, storeKey, material);
}

/**
 * The ticket key a record holds, as a buffer of its own (the opened payload is wiped); throws
 * UnsealError or RecordFormatError (also for a key of another length).
 */
export function openTicketKeyRecord(sealer: Sealer | undefined, storeKey: string, record: Buffer): Buffer {
  const opened = openEnvelope(sealer, storeKey, record);
  try {
    if (opened.length !== TICKET_KEY_BYTES) {
      throw new RecordFormatError(`stored ticket key has ${opened.length} bytes, expected ${TICKET_KEY_BYTES}`);
    }
    return Buffer.from(opened);
  } finally {
    // A sealed record opens into a fresh buffer: wipe it. A plain one is a view of the store's own bytes.
    if (sealer) opened.fill(0);
  }
}
