// Per-environment state (main thread and each worker get their own): the session table and
// the JavaScript error classes. Torn down by an environment cleanup hook.
#ifndef TLS_SESSION_ADDON_DATA_H_
#define TLS_SESSION_ADDON_DATA_H_

#include <napi.h>

#include <memory>

#include "openssl_errors.h"
#include "session_table.h"
#include "tls_engine.h"

namespace tls_session {

class AddonData {
 public:
  explicit AddonData(Napi::Env env);
  ~AddonData();
  AddonData(const AddonData&) = delete;
  AddonData& operator=(const AddonData&) = delete;

  static AddonData* Get(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

  SessionTable& sessions() { return sessions_; }
  // The TLS engine's live SSL_CTX/SSL owners (binding/tls_engine.h), released at teardown.
  TlsEngine& tls_engine() { return tls_engine_; }
  Napi::FunctionReference* ErrorConstructor(ErrorKind kind);
  void SetErrorConstructor(ErrorKind kind, Napi::Function ctor);

  // Releases every session reference this environment still holds. Idempotent.
  void Teardown();

 private:
  Napi::Env env_;
  SessionTable sessions_;
  TlsEngine tls_engine_;
  Napi::FunctionReference error_constructors_[kErrorKindCount];
  bool torn_down_ = false;
};

}  // namespace tls_session

#endif  // TLS_SESSION_ADDON_DATA_H_
