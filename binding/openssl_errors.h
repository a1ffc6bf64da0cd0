// The one place where OpenSSL's error queue becomes a JavaScript error.
#ifndef TLS_SESSION_OPENSSL_ERRORS_H_
#define TLS_SESSION_OPENSSL_ERRORS_H_

#include <napi.h>

#include <string>

namespace tls_session {

// The JavaScript error classes (lib/errors.ts) that native code throws.
// What went wrong, as native code classifies it. lib/binding.ts maps each kind to one
// JavaScript class (and so one code) in a single table; no call site re-wraps errors.
//   kDecode        bytes that are not one valid session           SessionDecodeError
//   kFreed         a freed Session's handle                       SessionFreedError
//   kViewExpired   a SessionView past its loan                    SessionViewExpiredError
//   kOpenSSL       OpenSSL failed where no other kind applies     OpenSSLError
//   kInvalidArgument  a wrong type from a direct binding call     TypeError ERR_INVALID_ARG_TYPE
//   kState         closed, destroyed, re-entrant, too late        TlsStateError
//   kConfig        a certificate, key, CA, cipher list refused    TlsConfigError
//   kProtocol      the TLS protocol failed (handshake, read)      TlsProtocolError
enum class ErrorKind { kDecode, kFreed, kViewExpired, kOpenSSL, kInvalidArgument, kState, kConfig, kProtocol };
constexpr int kErrorKindCount = 8;

// Clears this thread's OpenSSL error queue on every return, so no path leaves a stale error
// behind for the next call to misreport. Only this addon uses the system libcrypto's queue
// (Node's bundled copy has its own), so clearing on exit keeps it empty on entry.
class ClearErrorOnReturn {
 public:
  ClearErrorOnReturn();
  ~ClearErrorOnReturn();
  ClearErrorOnReturn(const ClearErrorOnReturn&) = delete;
  ClearErrorOnReturn& operator=(const ClearErrorOnReturn&) = delete;
};

// For code that runs inside an OpenSSL call (the session callbacks): whatever it adds to the
// error queue is popped on return, and the outer operation's errors stay (ERR_set_mark /
// ERR_pop_to_mark). Clearing there would erase the handshake's own errors.
class MarkPopErrorOnReturn {
 public:
  MarkPopErrorOnReturn();
  ~MarkPopErrorOnReturn();
  MarkPopErrorOnReturn(const MarkPopErrorOnReturn&) = delete;
  MarkPopErrorOnReturn& operator=(const MarkPopErrorOnReturn&) = delete;
};

// Drains the queue and returns OpenSSL's reason for the earliest error ("" when empty).
std::string TakeOpenSSLReason();

// Builds the JavaScript error of `kind` (instance of the registered class). `reason` is
// OpenSSL's text, kept in `opensslReason` and appended to the message.
Napi::Error MakeError(Napi::Env env, ErrorKind kind, const std::string& message, const std::string& reason = "");

// Throws MakeError(kind, message, TakeOpenSSLReason()).
[[noreturn]] void ThrowOpenSSLError(Napi::Env env, ErrorKind kind, const std::string& message);

}  // namespace tls_session

#endif  // TLS_SESSION_OPENSSL_ERRORS_H_
