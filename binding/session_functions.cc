#include "session_functions.h"

#include <string>
#include <vector>

#include "addon_data.h"
#include "openssl_errors.h"
#include "openssl_library.h"

namespace tls_session {
namespace {

// Hard upper bound; lib/session.ts applies the user's (smaller) cap first.
constexpr size_t kMaxDerBytes = 16 * 1024 * 1024;
constexpr size_t kSessionBaseBytes = 1024;

const char* ProtocolName(int version) {
  switch (version) {
    case TLS1_3_VERSION:
      return "TLSv1.3";
    case TLS1_2_VERSION:
      return "TLSv1.2";
    case TLS1_1_VERSION:
      return "TLSv1.1";
    case TLS1_VERSION:
      return "TLSv1";
    case SSL3_VERSION:
      return "SSLv3";
    case DTLS1_BAD_VER:
      return "DTLSv0.9";
    case DTLS1_VERSION:
      return "DTLSv1";
    case DTLS1_2_VERSION:
      return "DTLSv1.2";
    default:
      return "unknown";
  }
}

SessionTable& Sessions(Napi::Env env) { return AddonData::Get(env)->sessions(); }

// Bytes argument: a Uint8Array (Buffer included). lib/session.ts validates first; this check
// keeps a direct call into the binding from crashing.
struct Bytes {
  uint8_t* data;
  size_t length;
};

Bytes BytesArgument(const Napi::CallbackInfo& info, size_t index, const char* name) {
  // napi_get_buffer_info is the cheapest way to the bytes (no backing-store handle); it accepts
  // any ArrayBufferView and fails for anything else. lib/ has already required a Uint8Array.
  void* data = nullptr;
  size_t length = 0;
  if (napi_get_buffer_info(info.Env(), info[index], &data, &length) != napi_ok) {
    throw MakeError(info.Env(), ErrorKind::kInvalidArgument, std::string("The \"") + name + "\" argument must be a Uint8Array");
  }
  return Bytes{static_cast<uint8_t*>(data), length};
}

double NumberArgument(const Napi::CallbackInfo& info, size_t index, const char* name) {
  double value = 0;
  if (napi_get_value_double(info.Env(), info[index], &value) != napi_ok) {
    throw MakeError(info.Env(), ErrorKind::kInvalidArgument, std::string("The \"") + name + "\" argument must be a number");
  }
  return value;
}

// d2i_SSL_SESSION over exactly `length` bytes: trailing data is an error, not ignored.
SessionPointer DecodeExactly(Napi::Env env, const uint8_t* data, size_t length) {
  std::string problem;
  SessionPointer session = DecodeExactDer(data, length, &problem);
  if (!problem.empty()) throw MakeError(env, ErrorKind::kDecode, problem);
  if (session == nullptr) ThrowOpenSSLError(env, ErrorKind::kDecode, "d2i_SSL_SESSION rejected the bytes");
  return session;
}

Napi::Value Decode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Bytes bytes = BytesArgument(info, 0, "bytes");
  size_t length = bytes.length;
  if (length == 0) throw MakeError(env, ErrorKind::kDecode, "empty input: a DER-encoded SSL_SESSION needs at least one byte");
  if (length > kMaxDerBytes) throw MakeError(env, ErrorKind::kDecode, "input of " + std::to_string(length) + " bytes is over the limit");
  ClearErrorOnReturn clear_errors;
  return AdoptSession(env, DecodeExactly(env, bytes.data, length), length);
}

Napi::Value Encode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SSL_SESSION* session = SessionArgument(info, 0);
  ClearErrorOnReturn clear_errors;
  int length = ossl().i2d_SSL_SESSION(session, nullptr);
  if (length <= 0) ThrowOpenSSLError(env, ErrorKind::kOpenSSL, "i2d_SSL_SESSION could not encode the session");
  Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, static_cast<size_t>(length));
  unsigned char* cursor = out.Data();
  if (ossl().i2d_SSL_SESSION(session, &cursor) != length) {
    ThrowOpenSSLError(env, ErrorKind::kOpenSSL, "i2d_SSL_SESSION wrote an unexpected length");
  }
  return out;
}

// i2d_SSL_SESSION into a Buffer that JavaScript allocated (from its pool: much cheaper than
// a native-backed Buffer per call). Writes only when the length is exactly right; returns
// the length either way so the caller can retry with the right size.
Napi::Value EncodeInto(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SSL_SESSION* session = SessionArgument(info, 0);
  Bytes dest = BytesArgument(info, 1, "dest");
  ClearErrorOnReturn clear_errors;
  int length = ossl().i2d_SSL_SESSION(session, nullptr);
  if (length <= 0) ThrowOpenSSLError(env, ErrorKind::kOpenSSL, "i2d_SSL_SESSION could not encode the session");
  if (static_cast<size_t>(length) == dest.length) {
    unsigned char* cursor = dest.data;
    if (ossl().i2d_SSL_SESSION(session, &cursor) != length) {
      ThrowOpenSSLError(env, ErrorKind::kOpenSSL, "i2d_SSL_SESSION wrote an unexpected length");
    }
  }
  return Napi::Number::New(env, length);
}

Napi::Value UpRef(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SSL_SESSION* session = SessionArgument(info, 0);
  ClearErrorOnReturn clear_errors;
  if (ossl().SSL_SESSION_up_ref(session) != 1) ThrowOpenSSLError(env, ErrorKind::kOpenSSL, "SSL_SESSION_up_ref failed");
  return AdoptSession(env, SessionPointer(session));  // the reference up_ref just took
}

Napi::Value Release(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double handle = NumberArgument(info, 0, "handle");
  double reason = NumberArgument(info, 1, "reason");
  if (reason != 0 && reason != 1) throw MakeError(env, ErrorKind::kInvalidArgument, "unknown release reason");
  bool released = Sessions(env).Release(handle, reason == 0 ? ReleaseReason::kExplicit : ReleaseReason::kGc);
  return Napi::Boolean::New(env, released);
}

Napi::Value Lend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SSL_SESSION* session = SessionArgument(info, 0);
  SessionHandle handle = Sessions(env).Lend(session);
  if (handle == 0) throw MakeError(env, ErrorKind::kOpenSSL, "too many live sessions in this environment");
  return Napi::Number::New(env, handle);
}

Napi::Value IsLive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Napi::Boolean::New(env, Sessions(env).Find(NumberArgument(info, 0, "handle")) != nullptr);
}

Napi::Value Metadata(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SSL_SESSION* session = SessionArgument(info, 0);
  ClearErrorOnReturn clear_errors;
  const auto& api = ossl();
  Napi::Object out = Napi::Object::New(env);

  unsigned int id_length = 0;
  const unsigned char* id = api.SSL_SESSION_get_id(session, &id_length);
  out.Set("id", Napi::Buffer<uint8_t>::Copy(env, id, id_length));
  unsigned int context_length = 0;
  const unsigned char* context = api.SSL_SESSION_get0_id_context(session, &context_length);
  out.Set("idContext", Napi::Buffer<uint8_t>::Copy(env, context, context_length));
  out.Set("protocol", ProtocolName(api.SSL_SESSION_get_protocol_version(session)));
  const SSL_CIPHER* cipher = api.SSL_SESSION_get0_cipher(session);
  const char* cipher_name = cipher != nullptr ? api.SSL_CIPHER_get_name(cipher) : nullptr;
  out.Set("cipher", cipher_name != nullptr ? Napi::Value(Napi::String::New(env, cipher_name)) : env.Undefined());
  out.Set("startTime", Napi::Number::New(env, static_cast<double>(api.SSL_SESSION_get_time(session))));
  out.Set("timeout", Napi::Number::New(env, static_cast<double>(api.SSL_SESSION_get_timeout(session))));
  out.Set("isResumable", Napi::Boolean::New(env, api.SSL_SESSION_is_resumable(session) == 1));
  out.Set("hasTicket", Napi::Boolean::New(env, api.SSL_SESSION_has_ticket(session) == 1));
  out.Set("ticketLifetimeHint", Napi::Number::New(env, static_cast<double>(api.SSL_SESSION_get_ticket_lifetime_hint(session))));
  out.Set("maxEarlyData", Napi::Number::New(env, static_cast<double>(api.SSL_SESSION_get_max_early_data(session))));
  const char* hostname = api.SSL_SESSION_get0_hostname(session);
  if (hostname != nullptr) out.Set("hostname", hostname);
  const unsigned char* alpn = nullptr;
  size_t alpn_length = 0;
  api.SSL_SESSION_get0_alpn_selected(session, &alpn, &alpn_length);
  if (alpn != nullptr && alpn_length > 0) out.Set("alpnProtocol", std::string(reinterpret_cast<const char*>(alpn), alpn_length));
  X509* peer = api.SSL_SESSION_get0_peer(session);  // borrowed from the session
  if (peer != nullptr) out.Set("peerCertificate", CertificateToBuffer(env, peer));
  return out;
}

Napi::Value Ledger(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  LedgerSnapshot s = SessionLedger::Snapshot();
  Napi::Object out = Napi::Object::New(env);
  out.Set("acquired", Napi::Number::New(env, static_cast<double>(s.acquired)));
  out.Set("explicit", Napi::Number::New(env, static_cast<double>(s.released_explicit)));
  out.Set("gc", Napi::Number::New(env, static_cast<double>(s.released_gc)));
  out.Set("teardown", Napi::Number::New(env, static_cast<double>(s.released_teardown)));
  out.Set("liveInThisEnvironment", Napi::Number::New(env, static_cast<double>(Sessions(env).live_owned())));
  out.Set("v8ExternalMemory", Napi::Number::New(env, static_cast<double>(Sessions(env).v8_external_memory())));
  out.Set("nativeBytes", Napi::Number::New(env, static_cast<double>(Sessions(env).owned_native_bytes())));
  return out;
}

}  // namespace

size_t EstimateSessionBytes(const SSL_SESSION* session, size_t der_length) {
  // V8 starts a collection when the external memory it is told of grows by 64 MiB since the
  // last one, so an estimate 2x too low lets twice as much native memory pile up behind dropped
  // sessions. Measured (glibc mallinfo2 around d2i_SSL_SESSION, system OpenSSL 3.0): a session
  // without a certificate holds ~1.0 KiB (158 B of DER); with a peer certificate the parsed X509
  // and its public key add 2.3-4.3 KiB beyond the DER: RSA-2048 5.0 KiB in all (987 B of DER),
  // RSA-4096 6.1 (1,499 B), P-256 5.5 (584 B), P-384 5.8 (646 B), Ed25519 3.8 (527 B). So: base
  // + DER + 4 KiB per certificate: within 3% for EC certificates, 7-19% over for RSA, 47% over
  // for Ed25519 (over is the safe side). Each owned reference counts the whole session, as an
  // up_ref'd one may be the last to go.
  constexpr size_t kPeerCertificateBytes = 4096;
  // A TLS 1.2 session's own fields, encoded.
  constexpr size_t kDerWithoutCertificateBytes = 160;
  // Borrowed from the session.
  X509* peer = ossl().SSL_SESSION_get0_peer(const_cast<SSL_SESSION*>(session));
  if (der_length == 0) {
    // No DER at hand (an up_ref, a session from a handshake): the certificate's DER stands in.
    der_length = kDerWithoutCertificateBytes;
    int certificate_length = peer != nullptr ? ossl().i2d_X509(peer, nullptr) : 0;
    if (certificate_length > 0) der_length += static_cast<size_t>(certificate_length);
  }
  return kSessionBaseBytes + der_length + (peer != nullptr ? kPeerCertificateBytes : 0);
}

bool IsUint8Array(Napi::Value value) { return value.IsTypedArray() && value.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array; }

SessionPointer DecodeExactDer(const uint8_t* data, size_t length, std::string* problem) {
  problem->clear();
  const unsigned char* cursor = data;
  SessionPointer session(ossl().d2i_SSL_SESSION(nullptr, &cursor, static_cast<long>(length)));
  if (session == nullptr) return nullptr;
  if (cursor != data + length) {
    *problem = std::to_string(data + length - cursor) + " trailing byte(s) after the DER-encoded SSL_SESSION";
    return nullptr;
  }
  // OpenSSL decodes any 64-bit time and timeout; a session that starts before 1970 or ends
  // past what a Date can hold is a forgery or corruption, never resumable. The check reads what
  // the DER says, not what OpenSSL made of it: OpenSSL 3.0 keeps the seconds as they are, but
  // 3.2 and later convert them to nanoseconds in a uint64_t (OSSL_TIME) and wrap what does not
  // fit (a time of 2^53 s comes back as some other, plausible-looking time).
  int64_t time = 0;
  int64_t timeout = 0;
  if (!ReadDerSessionTimes(data, length, &time, &timeout)) {
    *problem = "the session's time and timeout could not be read from the DER (not the SSL_SESSION layout OpenSSL writes)";
    return nullptr;
  }
  if (time < 0 || timeout < 0 || time > kMaxSessionSeconds || timeout > kMaxSessionSeconds - time) {
    *problem = "the session's time (" + std::to_string(time) + ") and timeout (" + std::to_string(timeout) +
               ") are out of range: both must be >= 0 and time + timeout <= " + std::to_string(kMaxSessionSeconds) + " seconds since 1970";
    return nullptr;
  }
  // What OpenSSL holds must be what the DER says (0 means absent: OpenSSL then takes now / 3 s),
  // or its expiry checks would use another time than expiresAt shows.
  int64_t held_time = static_cast<int64_t>(ossl().SSL_SESSION_get_time(session.get()));
  int64_t held_timeout = static_cast<int64_t>(ossl().SSL_SESSION_get_timeout(session.get()));
  if ((time != 0 && held_time != time) || (timeout != 0 && held_timeout != timeout)) {
    *problem = "the session's time (" + std::to_string(time) + ") and timeout (" + std::to_string(timeout) + ") are out of range for " +
               ossl().OpenSSL_version(OPENSSL_VERSION) + ", which holds them as " + std::to_string(held_time) + " and " +
               std::to_string(held_timeout) + " (it keeps session times in nanoseconds, up to " + std::to_string(kMaxOsslTimeSeconds) +
               " seconds since 1970)";
    return nullptr;
  }
  return session;
}

bool ReadDerSessionTimes(const uint8_t* data, size_t length, int64_t* time, int64_t* timeout) {
  *time = 0;
  *timeout = 0;
  size_t pos = 0;
  // One definite-length TLV at `pos`, within `limit`: its tag and where its contents are.
  uint8_t tag = 0;
  size_t start = 0;
  size_t stop = 0;
  auto next = [&](size_t limit) -> bool {
    if (pos + 2 > limit) return false;
    tag = data[pos];
    if ((tag & 0x1f) == 0x1f) return false;  // high tag numbers: not in SSL_SESSION_ASN1
    size_t field_length = data[pos + 1];
    pos += 2;
    if (field_length & 0x80) {
      size_t count = field_length & 0x7f;
      if (count == 0 || count > 4 || pos + count > limit) return false;  // indefinite (BER) or > 4 GiB
      field_length = 0;
      for (size_t i = 0; i < count; i++) field_length = (field_length << 8) | data[pos + i];
      pos += count;
    }
    if (field_length > limit - pos) return false;
    start = pos;
    stop = pos + field_length;
    return true;
  };
  // The [n] EXPLICIT INTEGER at [start, stop): exactly one two's-complement INTEGER of 1-8 bytes.
  auto explicit_integer = [&](int64_t* out) -> bool {
    size_t outer_stop = stop;
    if (!next(outer_stop) || tag != 0x02 || stop != outer_stop) return false;
    size_t bytes = stop - start;
    if (bytes < 1 || bytes > 8) return false;
    uint64_t value = (data[start] & 0x80) ? ~uint64_t{0} : 0;  // sign extension
    for (size_t i = start; i < stop; i++) value = (value << 8) | data[i];
    *out = static_cast<int64_t>(value);
    return true;
  };
  if (!next(length) || tag != 0x30) return false;
  const size_t sequence_stop = stop;
  // version, ssl_version, cipher, session_id, master_key: skipped (d2i has checked them).
  for (int field = 0; field < 5; field++) {
    if (!next(sequence_stop)) return false;
    pos = stop;
  }
  while (pos < sequence_stop) {
    const size_t at = pos;
    if (!next(sequence_stop)) return false;
    if (tag == 0x80 || tag == 0xa0) {
      // [0] key_arg
    } else if (tag == 0xa1) {
      if (!explicit_integer(time)) return false;
    } else if (tag == 0xa2) {
      if (!explicit_integer(timeout)) return false;
      break;
    } else {
      pos = at;
      break;  // a later field: the rest were absent (0)
    }
    pos = stop;
  }
  return true;
}

Napi::Value CertificateToBuffer(Napi::Env env, X509* certificate) {
  int length = ossl().i2d_X509(certificate, nullptr);
  if (length <= 0) return env.Undefined();
  Napi::Buffer<uint8_t> der = Napi::Buffer<uint8_t>::New(env, static_cast<size_t>(length));
  unsigned char* cursor = der.Data();
  ossl().i2d_X509(certificate, &cursor);
  return der;
}

Napi::Value AdoptSession(Napi::Env env, SessionPointer session, size_t der_length) {
  size_t native_bytes = EstimateSessionBytes(session.get(), der_length);
  // The table owns the reference from here (if it is full, the reference is freed with it).
  SessionHandle handle = Sessions(env).AdoptOwned(std::move(session), native_bytes);
  if (handle == 0) throw MakeError(env, ErrorKind::kOpenSSL, "too many live sessions in this environment");
  return Napi::Number::New(env, handle);
}

SSL_SESSION* SessionArgument(const Napi::CallbackInfo& info, size_t index) {
  double handle = NumberArgument(info, index, "handle");
  SSL_SESSION* session = Sessions(info.Env()).Find(handle);
  if (session == nullptr) {
    throw SessionTable::IsBorrowedHandle(handle)
        ? MakeError(info.Env(), ErrorKind::kViewExpired, "the borrowed session view is no longer valid: its lending scope has ended")
        : MakeError(info.Env(), ErrorKind::kFreed, "the session was freed; this Session no longer owns an SSL_SESSION reference");
  }
  return session;
}

void InitSessionFunctions(Napi::Env env, Napi::Object exports) {
  exports.Set("decode", Napi::Function::New(env, Decode, "decode"));
  exports.Set("encode", Napi::Function::New(env, Encode, "encode"));
  exports.Set("encodeInto", Napi::Function::New(env, EncodeInto, "encodeInto"));
  exports.Set("upRef", Napi::Function::New(env, UpRef, "upRef"));
  exports.Set("release", Napi::Function::New(env, Release, "release"));
  exports.Set("lend", Napi::Function::New(env, Lend, "lend"));
  exports.Set("isLive", Napi::Function::New(env, IsLive, "isLive"));
  exports.Set("metadata", Napi::Function::New(env, Metadata, "metadata"));
  exports.Set("ledger", Napi::Function::New(env, Ledger, "ledger"));
}

}  // namespace tls_session
