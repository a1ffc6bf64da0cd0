// RecordCipher: AES-256-GCM for the stores' sealed records (lib/persist/records/envelope.ts),
// its key schedule made once per key: a record costs one IV reset, the AAD, the text and the tag,
// where Node's createCipheriv fetches the cipher and expands the key again for every record.
#ifndef TLS_SESSION_RECORD_CIPHER_H_
#define TLS_SESSION_RECORD_CIPHER_H_

#include <napi.h>

#include "openssl_pointers.h"

namespace tls_session {

class RecordCipher : public Napi::ObjectWrap<RecordCipher> {
 public:
  static constexpr size_t kKeyBytes = 32;
  static constexpr size_t kIvBytes = 12;
  static constexpr size_t kTagBytes = 16;

  static void Init(Napi::Env env, Napi::Object exports);
  // new NativeRecordCipher(key: 32-byte Uint8Array): the key is copied into OpenSSL's schedules only.
  explicit RecordCipher(const Napi::CallbackInfo& info);

 private:
  // seal(iv, aad, plaintext, out, offset): writes ciphertext | tag into out at offset; returns the bytes written.
  Napi::Value Seal(const Napi::CallbackInfo& info);
  // open(iv, aad, ciphertext, tag, out): writes the plaintext into out (its length); true when
  // the tag verifies, else false and out wiped.
  Napi::Value Open(const Napi::CallbackInfo& info);
  // wipe(): frees both contexts (OpenSSL cleanses them); later calls throw a state error.
  Napi::Value Wipe(const Napi::CallbackInfo& info);

  CipherCtxPointer encrypt_;
  CipherCtxPointer decrypt_;
};

void InitRecordCipher(Napi::Env env, Napi::Object exports);

}  // namespace tls_session

#endif  // TLS_SESSION_RECORD_CIPHER_H_
