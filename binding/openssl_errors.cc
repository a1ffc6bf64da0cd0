#include "openssl_errors.h"

#include "addon_data.h"
#include "openssl_library.h"

namespace tls_session {

ClearErrorOnReturn::ClearErrorOnReturn() = default;
// Peeking first is cheaper than a clear, which walks all of the queue's slots.
ClearErrorOnReturn::~ClearErrorOnReturn() {
  if (ossl().ERR_peek_error() != 0) ossl().ERR_clear_error();
}

MarkPopErrorOnReturn::MarkPopErrorOnReturn() { ossl().ERR_set_mark(); }
MarkPopErrorOnReturn::~MarkPopErrorOnReturn() { ossl().ERR_pop_to_mark(); }

std::string TakeOpenSSLReason() {
  unsigned long code = ossl().ERR_get_error();
  if (code == 0) return "";
  char text[256];
  ossl().ERR_error_string_n(code, text, sizeof(text));
  ossl().ERR_clear_error();
  return text;
}

Napi::Error MakeError(Napi::Env env, ErrorKind kind, const std::string& message, const std::string& reason) {
  std::string full = reason.empty() ? message : message + " (OpenSSL: " + reason + ")";
  AddonData* data = AddonData::Get(env);
  Napi::FunctionReference* ctor = data != nullptr ? data->ErrorConstructor(kind) : nullptr;
  if (ctor == nullptr || ctor->IsEmpty()) {
    // Only before lib/binding.ts registered the classes: still typed by `code`.
    static const char* const kCodes[] = {"ERR_TLS_SESSION_DECODE",  "ERR_TLS_SESSION_FREED",   "ERR_TLS_SESSION_VIEW_EXPIRED",
                                         "ERR_TLS_SESSION_OPENSSL", "ERR_INVALID_ARG_TYPE",    "ERR_TLS_SESSION_STATE",
                                         "ERR_TLS_SESSION_CONFIG",  "ERR_TLS_SESSION_PROTOCOL"};
    Napi::Error error = kind == ErrorKind::kInvalidArgument ? Napi::TypeError::New(env, full) : Napi::Error::New(env, full);
    error.Set("code", kCodes[static_cast<int>(kind)]);
    return error;
  }
  Napi::Value reason_value = reason.empty() ? env.Undefined() : Napi::String::New(env, reason);
  Napi::Object instance = ctor->New({Napi::String::New(env, full), reason_value});
  return Napi::Error(env, instance);
}

void ThrowOpenSSLError(Napi::Env env, ErrorKind kind, const std::string& message) {
  throw MakeError(env, kind, message, TakeOpenSSLReason());
}

}  // namespace tls_session
