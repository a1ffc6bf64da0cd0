/**
 * Encryption at rest for stored records: AES-256-GCM under a key chosen by id, with the store
 * key bound as additional data so a record cannot be replayed under another key. Several keys
 * may be configured: the first seals, all of them open, which lets a fleet rotate secrets.
 *
 * Envelope (all records, sealed or not):
 *   'T' 'S' | version 0x01 | kind (0x00 plain, 0x01 sealed) | body
 * Sealed body: idLength (u8) | key id (ASCII) | iv (12) | ciphertext | tag (16)
 * AAD: the envelope header through the key id, then u16 length + the store key (UTF-8).
 */
import { hkdfSync } from 'node:crypto';
import { native, type NativeRecordCipher } from '../../binding';
import { RandomPool } from '../random-pool';
import { inspect } from 'node:util';
import { invalidArgType, invalidArgValue, outOfRange } from '../../errors';
import { RecordFormatError, UnsealError } from '../errors';

export interface SecretKey {
  /** Short identifier stored in each record (1-64 of A-Z a-z 0-9 . _ -). */
  id: string;
  /** 32 random bytes. */
  key: Buffer;
}

/** A single 32-byte Buffer (key id 'default') or a list of ids and keys, newest first. */
export type Secret = Buffer | readonly SecretKey[];

const MAGIC_0 = 0x54; // 'T'
const MAGIC_1 = 0x53; // 'S'
const VERSION = 1;
const KIND_PLAIN = 0;
const KIND_SEALED = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
export const DEFAULT_KEY_ID = 'default';

/** What a record key is used for; each purpose gets its own HKDF subkey of the configured secret. */
export type SealPurpose = 'session-record' | 'ticket-key' | 'client-session';

/** IVs are random, drawn from a pool refilled 256 at a time: one randomFillSync per 256 records instead of one per record. */
const IV_POOL_RECORDS = 256;

/**
 * The sealing and opening itself is the addon's AES-256-GCM (binding/record_cipher.h), whose key
 * schedule is made once per key: Node's createCipheriv fetches the cipher and expands the key for
 * every record, which measured ~8% of a full TLS 1.2 handshake's server CPU when each new session
 * is sealed (`bench:handshake --store-cost`). Same algorithm and layout, so records sealed by
 * either open with the other.
 */
export class Sealer {
  /** Per key id: the purpose subkey's cipher, made once (the subkey bytes are wiped once it holds them). */
  readonly #keys: Map<string, NativeRecordCipher>;
  readonly #sealingKeyId: string;
  readonly #sealingKey: NativeRecordCipher;
  /** 'T' 'S' | version | kind sealed | id length | id: the same for every record this sealer seals. */
  readonly #sealingHeader: Buffer;
  readonly #ivs = new RandomPool(IV_BYTES, IV_POOL_RECORDS);

  constructor(secret: Secret, purpose: SealPurpose) {
    const list = normalizeSecret(secret);
    this.#keys = new Map();
    for (const { id, key } of list) {
      if (this.#keys.has(id)) throw invalidArgValue('secret', 'a list of distinct key ids', `key id "${id}" twice`);
      // Separate subkeys per purpose: one configured secret can serve sessions and ticket keys.
      const subkey = Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), `tls-session/${purpose}/v1`, 32));
      this.#keys.set(id, new native.NativeRecordCipher(subkey));
      subkey.fill(0);
    }
    this.#sealingKeyId = list[0]!.id;
    this.#sealingKey = this.#keys.get(this.#sealingKeyId)!;
    const id = Buffer.from(this.#sealingKeyId, 'ascii');
    this.#sealingHeader = Buffer.concat([Buffer.from([MAGIC_0, MAGIC_1, VERSION, KIND_SEALED, id.length]), id]);
  }

  /** The id of the key that seals new records. */
  get sealingKeyId(): string {
    return this.#sealingKeyId;
  }

  /** Ids of every key that can open records. */
  get keyIds(): string[] {
    return [...this.#keys.keys()];
  }

  /** Envelope: header | iv | ciphertext | tag, written into one buffer. */
  seal(storeKey: string, plaintext: Buffer): Buffer {
    const header = this.#sealingHeader;
    const out = Buffer.allocUnsafe(header.length + IV_BYTES + plaintext.length + TAG_BYTES);
    header.copy(out, 0);
    const iv = out.subarray(header.length, header.length + IV_BYTES);
    this.#ivs.next(iv);
    this.#sealingKey.seal(iv, additionalData(header, storeKey), plaintext, out, header.length + IV_BYTES);
    return out;
  }

  /** Opens a sealed envelope; throws UnsealError (tampered, wrong store key, unknown key id) or RecordFormatError. */
  open(storeKey: string, envelope: Buffer): Buffer {
    const kind = readEnvelopeKind(envelope);
    if (kind !== KIND_SEALED) throw new UnsealError('record is not sealed but a secret is configured; refusing it');
    if (envelope.length < 5) throw new RecordFormatError('sealed record is truncated');
    const idLength = envelope[4]!;
    const headerLength = 5 + idLength;
    if (envelope.length < headerLength + IV_BYTES + TAG_BYTES) throw new RecordFormatError('sealed record is truncated');
    const header = envelope.subarray(0, headerLength);
    const key = this.#keyFor(header);
    if (!key) throw new UnsealError('record was sealed with a key id that is not configured');
    const iv = envelope.subarray(headerLength, headerLength + IV_BYTES);
    const ciphertext = envelope.subarray(headerLength + IV_BYTES, envelope.length - TAG_BYTES);
    const tag = envelope.subarray(envelope.length - TAG_BYTES);
    const plaintext = Buffer.allocUnsafe(ciphertext.length);
    if (!key.open(iv, additionalData(header, storeKey), ciphertext, tag, plaintext)) {
      throw new UnsealError('sealed record failed authentication (tampered, or stored under another key)');
    }
    return plaintext;
  }

  /** The key named in a record's header; the sealing key without building the id string when the header is this sealer's. */
  #keyFor(header: Buffer): NativeRecordCipher | undefined {
    if (header.equals(this.#sealingHeader)) return this.#sealingKey;
    return this.#keys.get(header.subarray(5).toString('ascii'));
  }

  [inspect.custom](): string {
    return `Sealer { sealingKeyId: ${JSON.stringify(this.#sealingKeyId)}, keys: [hidden ×${this.#keys.size}] }`;
  }

  toJSON(): Record<string, unknown> {
    return { sealingKeyId: this.#sealingKeyId, keyIds: this.keyIds, keys: '[hidden]' };
  }
}

/**
 * A payload in its envelope under `storeKey`: sealed when a secret is configured, plain otherwise.
 * The one way every record kind is written.
 */
export function closeEnvelope(sealer: Sealer | undefined, storeKey: string, payload: Buffer): Buffer {
  return sealer ? sealer.seal(storeKey, payload) : wrapPlain(payload);
}

/**
 * The payload of a record read under `storeKey`: opened (and authenticated) with the sealer when
 * a secret is configured, else read from a plain envelope. The one way every record kind is read;
 * throws UnsealError or RecordFormatError. A sealed payload is a fresh buffer (wipe it when it
 * holds key material); a plain one is a view of `record`.
 */
export function openEnvelope(sealer: Sealer | undefined, storeKey: string, record: Buffer): Buffer {
  return sealer ? sealer.open(storeKey, record) : unwrapPlain(record);
}

/** Whether a record's envelope says it is sealed ('T' 'S' version kind 1), without opening it. */
export function isSealedEnvelope(record: Buffer): boolean {
  return record.length >= 4 && record[0] === MAGIC_0 && record[1] === MAGIC_1 && record[3] === KIND_SEALED;
}

/** Wraps a payload in a plain (unsealed) envelope, for stores used without a secret. */
export function wrapPlain(payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from([MAGIC_0, MAGIC_1, VERSION, KIND_PLAIN]), payload]);
}

/** Unwraps a plain envelope; a sealed one cannot be read without the secret. */
export function unwrapPlain(envelope: Buffer): Buffer {
  const kind = readEnvelopeKind(envelope);
  if (kind !== KIND_PLAIN) throw new UnsealError('record is sealed but no secret is configured');
  return envelope.subarray(4);
}

function readEnvelopeKind(envelope: Buffer): number {
  if (!Buffer.isBuffer(envelope) || envelope.length < 4 || envelope[0] !== MAGIC_0 || envelope[1] !== MAGIC_1) {
    throw new RecordFormatError('record is not a tls-session record (bad magic)');
  }
  if (envelope[2] !== VERSION) throw new RecordFormatError(`record has unsupported version ${envelope[2]}`);
  const kind = envelope[3]!;
  if (kind !== KIND_PLAIN && kind !== KIND_SEALED) throw new RecordFormatError(`record has unknown kind ${kind}`);
  return kind;
}

function additionalData(header: Buffer, storeKey: string): Buffer {
  const keyLength = Buffer.byteLength(storeKey, 'utf8');
  const aad = Buffer.allocUnsafe(header.length + 2 + keyLength);
  header.copy(aad, 0);
  aad.writeUInt16BE(keyLength, header.length);
  aad.write(storeKey, header.length + 2, 'utf8');
  return aad;
}

function normalizeSecret(secret: Secret): SecretKey[] {
  if (Buffer.isBuffer(secret)) return [{ id: DEFAULT_KEY_ID, key: checkKey(secret, 'secret') }];
  if (!Array.isArray(secret) || secret.length === 0) {
    throw invalidArgType('secret', 'a 32-byte Buffer or a non-empty array of { id, key }', secret);
  }
  return secret.map((entry: SecretKey, index: number) => {
    if (entry === null || typeof entry !== 'object') throw invalidArgType(`secret[${index}]`, 'an object { id, key }', entry);
    if (typeof entry.id !== 'string' || !KEY_ID_PATTERN.test(entry.id)) {
      throw invalidArgValue(
        `secret[${index}].id`,
        '1-64 characters of A-Z a-z 0-9 . _ -',
        typeof entry.id === 'string' ? `${entry.id.length} characters` : typeof entry.id,
      );
    }
    return { id: entry.id, key: checkKey(entry.key, `secret[${index}].key`) };
  });
}

function checkKey(key: unknown, name: string): Buffer {
  // The message names the problem, never the bytes.
  if (!Buffer.isBuffer(key)) throw invalidArgType(name, 'a Buffer of 32 bytes', key);
  if (key.length !== 32) throw outOfRange(`${name}.length`, 'exactly 32 (bytes)', key.length);
  return key;
}
