// The JavaScript functions over the session table (lib/binding.ts types them).
#ifndef TLS_SESSION_SESSION_FUNCTIONS_H_
#define TLS_SESSION_SESSION_FUNCTIONS_H_

#include <napi.h>

#include <cstdint>
#include <string>

#include "openssl_pointers.h"
#include "session_table.h"

namespace tls_session {

void InitSessionFunctions(Napi::Env env, Napi::Object exports);

// Hands `session` to JavaScript (the environment's session table owns it from here) and
// returns its handle. `der_length` (0 if unknown) sharpens the native-size estimate. Throws
// when the table is full; the session is freed then.
Napi::Value AdoptSession(Napi::Env env, SessionPointer session, size_t der_length = 0);

// The session behind handle argument `index`, or throws ERR_TLS_SESSION_FREED /
// ERR_TLS_SESSION_VIEW_EXPIRED.
SSL_SESSION* SessionArgument(const Napi::CallbackInfo& info, size_t index);

// True for a Uint8Array (Buffer included): the one shape bytes cross the boundary in.
bool IsUint8Array(Napi::Value value);

// d2i_SSL_SESSION over exactly `length` bytes, then the checks OpenSSL does not make. Returns
// the new (owned) session, or nullptr: when OpenSSL rejects the bytes (*problem stays empty;
// OpenSSL's error queue is left for the caller), or when bytes follow the DER or the session's
// time or timeout, as the DER says them (ReadDerSessionTimes), is out of range or not what this
// OpenSSL holds after decoding (*problem says which; the decoded session is freed).
SessionPointer DecodeExactDer(const uint8_t* data, size_t length, std::string* problem);

// Latest instant a session may start or end, in seconds since the epoch: JavaScript's Date
// range (8.64e15 ms). Beyond it expiresAt is an Invalid Date and expiry checks fail open.
constexpr int64_t kMaxSessionSeconds = 8640000000000;

// The largest time or timeout in seconds that OpenSSL 3.2 and later hold unchanged: they keep
// session times as nanoseconds in a uint64_t (OSSL_TIME). OpenSSL 3.0 and 3.1 hold any int64.
constexpr int64_t kMaxOsslTimeSeconds = 18446744073;

// Reads the [1] time and [2] timeout INTEGERs of an SSL_SESSION's DER (OpenSSL's
// SSL_SESSION_ASN1, ssl/ssl_asn1.c) from the bytes themselves, the same on every OpenSSL
// version; absent fields read as 0. False when the bytes do not have that shape (definite
// lengths only).
bool ReadDerSessionTimes(const uint8_t* data, size_t length, int64_t* time, int64_t* timeout);

// The DER encoding of `certificate` as a new Buffer, or undefined if it cannot be encoded.
Napi::Value CertificateToBuffer(Napi::Env env, X509* certificate);

// An estimate of the native memory behind a session, for V8's external-memory accounting.
size_t EstimateSessionBytes(const SSL_SESSION* session, size_t der_length);

}  // namespace tls_session

#endif  // TLS_SESSION_SESSION_FUNCTIONS_H_
