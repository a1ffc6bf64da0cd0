/** AES-256-GCM sealing of stored records: key ids, rotation, AAD = store key, secrets hidden. */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { MemoryStore } from '../../lib/persist/stores/memory';
import { Sealer } from '../../lib/persist/records/envelope';
import { TicketKeyRing } from '../../lib/persist/server/ticket-key-ring';
import { unwrapPlain, wrapPlain } from '../../lib/persist/records/envelope';

const oldKey = randomBytes(32);
const newKey = randomBytes(32);

test('seal/open round trip; a record is bound to its store key', () => {
  const sealer = new Sealer(newKey, 'session-record');
  const plaintext = Buffer.from('session DER bytes');
  const sealed = sealer.seal('session:aa', plaintext);
  expect(sealed.includes(plaintext)).toBe(false);
  expect(sealer.open('session:aa', sealed)).toEqual(plaintext);
  expect(() => sealer.open('session:bb', sealed)).toThrow(expect.objectContaining({ code: 'ERR_TLS_SESSION_UNSEAL' }));
});

describe("the documented layout, read and written with Node's own AES-256-GCM (records of either open with the other)", () => {
  // envelope.ts: 'T' 'S' | 0x01 | 0x01 | id length | id | iv (12) | ciphertext | tag (16);
  // AAD: the header through the key id, then u16 BE length + the store key; key: HKDF-SHA256 of
  // the secret, no salt, info "tls-session/<purpose>/v1".
  const subkey = Buffer.from(hkdfSync('sha256', newKey, Buffer.alloc(0), 'tls-session/session-record/v1', 32));
  const aad = (header: Buffer, storeKey: string): Buffer => {
    const key = Buffer.from(storeKey, 'utf8');
    const length = Buffer.alloc(2);
    length.writeUInt16BE(key.length);
    return Buffer.concat([header, length, key]);
  };
  const header = Buffer.concat([Buffer.from([0x54, 0x53, 0x01, 0x01, 7]), Buffer.from('default')]);

  test('a sealed record opens with createDecipheriv', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.string({ minLength: 1, maxLength: 40 }), (bytes, storeKey) => {
        const plaintext = Buffer.from(bytes);
        const sealed = new Sealer(newKey, 'session-record').seal(storeKey, plaintext);
        expect(sealed.subarray(0, header.length)).toEqual(header);
        const iv = sealed.subarray(header.length, header.length + 12);
        const decipher = createDecipheriv('aes-256-gcm', subkey, iv);
        decipher.setAAD(aad(header, storeKey));
        decipher.setAuthTag(sealed.subarray(sealed.length - 16));
        const opened = Buffer.concat([decipher.update(sealed.subarray(header.length + 12, sealed.length - 16)), decipher.final()]);
        expect(opened).toEqual(plaintext);
      }),
      { numRuns: 200 },
    );
  });

  test('a record sealed with createCipheriv opens with the Sealer; a wrong tag is refused and nothing leaks', () => {
    const sealer = new Sealer(newKey, 'session-record');
    for (const length of [0, 1, 15, 16, 17, 300]) {
      const plaintext = randomBytes(length);
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', subkey, iv);
      cipher.setAAD(aad(header, 'session:ab'));
      const record = Buffer.concat([header, iv, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
      expect(sealer.open('session:ab', record)).toEqual(plaintext);
      record[record.length - 1]! ^= 1;
      expect(() => sealer.open('session:ab', record)).toThrow(expect.objectContaining({ code: 'ERR_TLS_SESSION_UNSEAL' }));
    }
  });
});

test('every single-bit flip is detected', () => {
  const sealer = new Sealer(newKey, 'session-record');
  const sealed = sealer.seal('k', randomBytes(100));
  for (let byte = 0; byte < sealed.length; byte++) {
    const copy = Buffer.from(sealed);
    copy[byte] ^= 0x80;
    expect(() => sealer.open('k', copy)).toThrow(
      expect.objectContaining({ code: expect.stringMatching(/^ERR_TLS_SESSION_(UNSEAL|RECORD_FORMAT)$/) }),
    );
  }
});

test('random bytes never open (property)', () => {
  const sealer = new Sealer(newKey, 'session-record');
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      expect(() => sealer.open('k', Buffer.from(bytes))).toThrow();
    }),
  );
});

test('rotation: the first key seals, older keys still open during the overlap', () => {
  const before = new Sealer([{ id: 'k2025', key: oldKey }], 'session-record');
  const during = new Sealer(
    [
      { id: 'k2026', key: newKey },
      { id: 'k2025', key: oldKey },
    ],
    'session-record',
  );
  const after = new Sealer([{ id: 'k2026', key: newKey }], 'session-record');
  const old = before.seal('k', Buffer.from('old'));
  const fresh = during.seal('k', Buffer.from('new'));
  expect(during.sealingKeyId).toBe('k2026');
  expect(during.open('k', old).toString()).toBe('old');
  expect(after.open('k', fresh).toString()).toBe('new');
  expect(() => after.open('k', old)).toThrow(expect.objectContaining({ code: 'ERR_TLS_SESSION_UNSEAL' }));
});

test('purposes use separate subkeys', () => {
  const sealed = new Sealer(newKey, 'session-record').seal('k', Buffer.from('x'));
  expect(() => new Sealer(newKey, 'ticket-key').open('k', sealed)).toThrow(expect.objectContaining({ code: 'ERR_TLS_SESSION_UNSEAL' }));
});

test('plain and sealed envelopes are never confused', () => {
  const sealer = new Sealer(newKey, 'session-record');
  expect(() => sealer.open('k', wrapPlain(Buffer.from('forged')))).toThrow(expect.objectContaining({ code: 'ERR_TLS_SESSION_UNSEAL' }));
  expect(() => unwrapPlain(sealer.seal('k', Buffer.from('x')))).toThrow(expect.objectContaining({ code: 'ERR_TLS_SESSION_UNSEAL' }));
  expect(() => unwrapPlain(Buffer.from('garbage'))).toThrow(expect.objectContaining({ code: 'ERR_TLS_SESSION_RECORD_FORMAT' }));
});

test('bad secrets are typed errors that never show the key', () => {
  const short = randomBytes(16);
  const cases: unknown[] = [
    short,
    [],
    [{ id: 'bad id!', key: newKey }],
    [{ id: 'a', key: 'text' }],
    [
      { id: 'a', key: newKey },
      { id: 'a', key: oldKey },
    ],
  ];
  for (const secret of cases) {
    let caught: unknown;
    try {
      new Sealer(secret as Buffer, 'session-record');
    } catch (error) {
      caught = error;
    }
    expect(['ERR_INVALID_ARG_TYPE', 'ERR_INVALID_ARG_VALUE', 'ERR_OUT_OF_RANGE']).toContain((caught as { code?: string }).code);
    expect(String((caught as Error).message)).not.toContain(short.toString('hex'));
    expect(String((caught as Error).message)).not.toContain(newKey.toString('hex'));
  }
});

test('secrets never appear in util.inspect or JSON', () => {
  const sealer = new Sealer(
    [
      { id: 'k2026', key: newKey },
      { id: 'k2025', key: oldKey },
    ],
    'session-record',
  );
  const ring = new TicketKeyRing({ store: new MemoryStore(), secret: newKey });
  for (const holder of [sealer, ring]) {
    const shown = inspect(holder, { showHidden: true, depth: 10 }) + JSON.stringify(holder) + inspect({ nested: holder }, { depth: 10 });
    for (const key of [newKey, oldKey]) {
      expect(shown).not.toContain(key.toString('hex'));
      expect(shown).not.toContain(key.toString('base64'));
    }
    expect(shown).toContain('hidden');
  }
  ring.close();
});
