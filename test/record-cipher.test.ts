/**
 * The addon's AES-256-GCM record cipher (binding/record_cipher.h) called directly, as only
 * envelope.ts does: misuse is a typed error, never a crash; a wiped cipher refuses work; a tag
 * that does not verify leaves no plaintext behind.
 */
import { randomBytes } from 'node:crypto';
import { native } from '../lib/binding';

const { NativeRecordCipher } = native;

test('bad arguments are typed errors', () => {
  expect(() => new NativeRecordCipher(randomBytes(16))).toThrow(
    expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('32 bytes') }),
  );
  expect(() => new NativeRecordCipher('key' as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  const cipher = new NativeRecordCipher(randomBytes(32));
  const iv = randomBytes(12);
  const out = Buffer.alloc(64);
  expect(() => cipher.seal(randomBytes(11), Buffer.alloc(0), Buffer.alloc(4), out, 0)).toThrow(
    expect.objectContaining({ message: expect.stringContaining('"iv"') }),
  );
  expect(() => cipher.seal(iv, Buffer.alloc(0), Buffer.alloc(49), out, 0)).toThrow(
    expect.objectContaining({ message: expect.stringContaining('no room') }),
  );
  expect(() => cipher.seal(iv, Buffer.alloc(0), Buffer.alloc(4), out, 61)).toThrow(
    expect.objectContaining({ message: expect.stringContaining('no room') }),
  );
  for (const offset of [-1, 1.5, NaN, 2 ** 60, 1e30, Infinity]) {
    expect(() => cipher.seal(iv, Buffer.alloc(0), Buffer.alloc(4), out, offset)).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }),
    );
  }
  expect(() => cipher.seal(iv, null as never, Buffer.alloc(4), out, 0)).toThrow(
    expect.objectContaining({ message: expect.stringContaining('"aad"') }),
  );
  expect(() => cipher.open(iv, Buffer.alloc(0), Buffer.alloc(4), randomBytes(15), Buffer.alloc(4))).toThrow(
    expect.objectContaining({ message: expect.stringContaining('"tag"') }),
  );
  expect(() => cipher.open(iv, Buffer.alloc(0), Buffer.alloc(4), randomBytes(16), Buffer.alloc(5))).toThrow(
    expect.objectContaining({ message: expect.stringContaining('"out"') }),
  );
});

test('seal then open; a flipped bit or another AAD does not verify and wipes the output; a wiped cipher refuses', () => {
  const cipher = new NativeRecordCipher(randomBytes(32));
  const iv = randomBytes(12);
  const aad = Buffer.from('header|session:aa');
  const plaintext = Buffer.from('a session DER, more or less');
  const out = Buffer.alloc(plaintext.length + 16 + 3);
  expect(cipher.seal(iv, aad, plaintext, out, 3)).toBe(plaintext.length + 16);
  const ciphertext = out.subarray(3, 3 + plaintext.length);
  const tag = out.subarray(3 + plaintext.length);
  const opened = Buffer.alloc(plaintext.length);
  expect(cipher.open(iv, aad, ciphertext, tag, opened)).toBe(true);
  expect(opened).toEqual(plaintext);
  const refused = Buffer.alloc(plaintext.length, 0xaa);
  expect(cipher.open(iv, Buffer.from('header|session:bb'), ciphertext, tag, refused)).toBe(false);
  expect(refused.equals(Buffer.alloc(plaintext.length))).toBe(true);
  const flipped = Buffer.from(ciphertext);
  flipped[0]! ^= 1;
  expect(cipher.open(iv, aad, flipped, tag, Buffer.alloc(plaintext.length))).toBe(false);
  // The context is reusable after a failed open.
  expect(cipher.open(iv, aad, ciphertext, tag, Buffer.alloc(plaintext.length))).toBe(true);
  cipher.wipe();
  cipher.wipe();
  expect(() => cipher.seal(iv, aad, plaintext, out, 0)).toThrow(expect.objectContaining({ message: expect.stringContaining('wiped') }));
  expect(() => cipher.open(iv, aad, ciphertext, tag, opened)).toThrow(
    expect.objectContaining({ message: expect.stringContaining('wiped') }),
  );
});
