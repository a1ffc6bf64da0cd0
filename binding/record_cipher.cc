#include "record_cipher.h"

#include <climits>
#include <cmath>
#include <cstring>
#include <string>

#include "openssl_errors.h"
#include "openssl_library.h"
#include "session_functions.h"  // IsUint8Array: the one shape bytes cross the boundary in

namespace tls_session {
namespace {

// The bytes of a Uint8Array argument (exactly `exact` of them, when given), or throws the
// invalid-argument error naming it.
Napi::Uint8Array BytesArgument(const Napi::CallbackInfo& info, size_t index, const char* name, size_t exact = 0) {
  Napi::Value value = info[index];
  if (!IsUint8Array(value)) {
    throw MakeError(info.Env(), ErrorKind::kInvalidArgument, std::string("The \"") + name + "\" argument must be a Uint8Array");
  }
  Napi::Uint8Array bytes = value.As<Napi::Uint8Array>();
  if (bytes.ByteLength() > static_cast<size_t>(INT_MAX)) {
    throw MakeError(info.Env(), ErrorKind::kInvalidArgument, std::string("The \"") + name + "\" argument is too long");
  }
  if (exact != 0 && bytes.ByteLength() != exact) {
    throw MakeError(info.Env(), ErrorKind::kInvalidArgument,
                    std::string("The \"") + name + "\" argument must be " + std::to_string(exact) + " bytes");
  }
  return bytes;
}

int Length(const Napi::Uint8Array& bytes) { return static_cast<int>(bytes.ByteLength()); }

}  // namespace

void RecordCipher::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, "NativeRecordCipher",
                                    {InstanceMethod<&RecordCipher::Seal>("seal"), InstanceMethod<&RecordCipher::Open>("open"),
                                     InstanceMethod<&RecordCipher::Wipe>("wipe")});
  exports.Set("NativeRecordCipher", ctor);
}

RecordCipher::RecordCipher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RecordCipher>(info) {
  Napi::Env env = info.Env();
  ClearErrorOnReturn clear;
  Napi::Uint8Array key = BytesArgument(info, 0, "key", kKeyBytes);
  const OpenSSLApi& api = ossl();
  encrypt_.reset(api.EVP_CIPHER_CTX_new());
  decrypt_.reset(api.EVP_CIPHER_CTX_new());
  if (encrypt_ == nullptr || decrypt_ == nullptr) ThrowOpenSSLError(env, ErrorKind::kOpenSSL, "EVP_CIPHER_CTX_new failed");
  // The default 12-byte GCM IV; the key schedule is made here, once.
  if (api.EVP_EncryptInit_ex(encrypt_.get(), api.EVP_aes_256_gcm(), nullptr, key.Data(), nullptr) != 1 ||
      api.EVP_DecryptInit_ex(decrypt_.get(), api.EVP_aes_256_gcm(), nullptr, key.Data(), nullptr) != 1) {
    encrypt_.reset();
    decrypt_.reset();
    ThrowOpenSSLError(env, ErrorKind::kOpenSSL, "AES-256-GCM key setup failed");
  }
}

Napi::Value RecordCipher::Seal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ClearErrorOnReturn clear;
  if (encrypt_ == nullptr) throw MakeError(env, ErrorKind::kState, "the record cipher was wiped");
  Napi::Uint8Array iv = BytesArgument(info, 0, "iv", kIvBytes);
  Napi::Uint8Array aad = BytesArgument(info, 1, "aad");
  Napi::Uint8Array plaintext = BytesArgument(info, 2, "plaintext");
  Napi::Uint8Array out = BytesArgument(info, 3, "out");
  if (!info[4].IsNumber()) throw MakeError(env, ErrorKind::kInvalidArgument, "The \"offset\" argument must be a number");
  const double offset = info[4].As<Napi::Number>().DoubleValue();
  // Compared as doubles before any cast: a NaN, a fraction or a huge number never reaches size_t.
  if (!(offset >= 0) || !(offset <= static_cast<double>(out.ByteLength())) || offset != std::floor(offset) ||
      out.ByteLength() - static_cast<size_t>(offset) < plaintext.ByteLength() + kTagBytes) {
    throw MakeError(env, ErrorKind::kInvalidArgument, "The \"out\" argument has no room for the ciphertext and tag at \"offset\"");
  }
  const OpenSSLApi& api = ossl();
  EVP_CIPHER_CTX* ctx = encrypt_.get();
  unsigned char* target = out.Data() + static_cast<size_t>(offset);
  int written = 0;
  int final_length = 0;
  int ignored = 0;
  // A null cipher and key keep the schedule; only the IV is set.
  if (api.EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, iv.Data()) != 1 ||
      (aad.ByteLength() > 0 && api.EVP_EncryptUpdate(ctx, nullptr, &ignored, aad.Data(), Length(aad)) != 1) ||
      api.EVP_EncryptUpdate(ctx, target, &written, plaintext.Data(), Length(plaintext)) != 1 ||
      api.EVP_EncryptFinal_ex(ctx, target + written, &final_length) != 1 ||
      api.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kTagBytes), target + written + final_length) != 1) {
    api.OPENSSL_cleanse(target, plaintext.ByteLength() + kTagBytes);
    ThrowOpenSSLError(env, ErrorKind::kOpenSSL, "AES-256-GCM sealing failed");
  }
  return Napi::Number::New(env, static_cast<double>(written + final_length) + static_cast<double>(kTagBytes));
}

Napi::Value RecordCipher::Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ClearErrorOnReturn clear;
  if (decrypt_ == nullptr) throw MakeError(env, ErrorKind::kState, "the record cipher was wiped");
  Napi::Uint8Array iv = BytesArgument(info, 0, "iv", kIvBytes);
  Napi::Uint8Array aad = BytesArgument(info, 1, "aad");
  Napi::Uint8Array ciphertext = BytesArgument(info, 2, "ciphertext");
  Napi::Uint8Array tag = BytesArgument(info, 3, "tag", kTagBytes);
  Napi::Uint8Array out = BytesArgument(info, 4, "out");
  if (out.ByteLength() != ciphertext.ByteLength()) {
    throw MakeError(env, ErrorKind::kInvalidArgument, "The \"out\" argument must be as long as the ciphertext");
  }
  const OpenSSLApi& api = ossl();
  EVP_CIPHER_CTX* ctx = decrypt_.get();
  unsigned char expected_tag[kTagBytes];
  memcpy(expected_tag, tag.Data(), kTagBytes);  // SET_TAG takes a non-const pointer
  int written = 0;
  int final_length = 0;
  int ignored = 0;
  const bool ok = api.EVP_DecryptInit_ex(ctx, nullptr, nullptr, nullptr, iv.Data()) == 1 &&
                  (aad.ByteLength() == 0 || api.EVP_DecryptUpdate(ctx, nullptr, &ignored, aad.Data(), Length(aad)) == 1) &&
                  api.EVP_DecryptUpdate(ctx, out.Data(), &written, ciphertext.Data(), Length(ciphertext)) == 1 &&
                  api.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kTagBytes), expected_tag) == 1 &&
                  api.EVP_DecryptFinal_ex(ctx, out.Data() + written, &final_length) == 1;
  // A tag that does not verify is the caller's error to name (tampered, another key), not OpenSSL's:
  // no plaintext of it is left behind.
  if (!ok) api.OPENSSL_cleanse(out.Data(), out.ByteLength());
  return Napi::Boolean::New(env, ok);
}

Napi::Value RecordCipher::Wipe(const Napi::CallbackInfo& info) {
  encrypt_.reset();
  decrypt_.reset();
  return info.Env().Undefined();
}

void InitRecordCipher(Napi::Env env, Napi::Object exports) { RecordCipher::Init(env, exports); }

}  // namespace tls_session
