// Per-environment bookkeeping of the TLS engine (tls_context.h, tls_connection.h): which native
// objects own OpenSSL TLS state (freed at environment teardown), whether OpenSSL callbacks may
// call JavaScript right now, and the frees that must wait until OpenSSL has returned.
#ifndef TLS_SESSION_TLS_ENGINE_H_
#define TLS_SESSION_TLS_ENGINE_H_

#include <napi.h>

#include <unordered_set>
#include <vector>

#include "openssl_library.h"
#include "openssl_pointers.h"

namespace tls_session {

class TlsEngine {
 public:
  // A native object that owns an SSL_CTX or SSL reference.
  class Owner {
   public:
    // Drops the OpenSSL reference without calling JavaScript (teardown). Idempotent.
    virtual void ReleaseNative() = 0;

   protected:
    ~Owner() = default;
  };

  TlsEngine() = default;
  TlsEngine(const TlsEngine&) = delete;
  TlsEngine& operator=(const TlsEngine&) = delete;

  void Add(Owner* owner) { owners_.insert(owner); }
  void Remove(Owner* owner) { owners_.erase(owner); }
  // Live SSL_CTX/SSL owners in this environment (the tests' leak check).
  size_t owner_count() const { return owners_.size(); }

  // OpenSSL callbacks call JavaScript only from inside a JavaScript call: never from a GC
  // finalizer or from teardown, where SSL_free/SSL_CTX_free also fire the remove callback.
  bool CanCallJs() const { return !torn_down_ && suppress_js_ == 0; }
  // True while OpenSSL is on the stack (a JavaScript callback is running inside it). The
  // remove callback can run with the SSL_CTX lock held, so nothing may re-enter OpenSSL then.
  bool InOpenSSL() const { return depth_ > 0; }

  // Marks "OpenSSL is on the stack" for its lifetime; the outermost scope runs deferred frees.
  class CallScope {
   public:
    explicit CallScope(TlsEngine* engine) : engine_(engine) { engine_->depth_++; }
    ~CallScope();
    CallScope(const CallScope&) = delete;
    CallScope& operator=(const CallScope&) = delete;

   private:
    TlsEngine* engine_;
  };

  // No JavaScript from OpenSSL callbacks for its lifetime (finalizers).
  class NoJsScope {
   public:
    explicit NoJsScope(TlsEngine* engine) : engine_(engine) { engine_->suppress_js_++; }
    ~NoJsScope() { engine_->suppress_js_--; }
    NoJsScope(const NoJsScope&) = delete;
    NoJsScope& operator=(const NoJsScope&) = delete;

   private:
    TlsEngine* engine_;
  };

  // Frees now, or after the outermost CallScope when OpenSSL is on the stack (freeing an SSL
  // from inside a callback could free the object OpenSSL is working on, or deadlock on the
  // SSL_CTX lock). The caller has already detached its ex_data from the object.
  void Free(SSLPointer ssl);
  void Free(SSLCtxPointer ctx);

  // Environment teardown: every owner releases its OpenSSL objects, no JavaScript is called.
  void Teardown();

  // Tells V8 about native memory an owner holds (+ on creation, - on release), so that dropped
  // contexts and connections are collected under memory pressure. Nothing after teardown began.
  void ReportNativeSize(napi_env env, int64_t delta);
  // What ReportNativeSize has told V8 and not taken back (the tests' check).
  int64_t reported_native_bytes() const { return reported_native_bytes_; }

 private:
  void RunDeferred();

  std::unordered_set<Owner*> owners_;
  std::vector<SSLPointer> deferred_ssl_;
  std::vector<SSLCtxPointer> deferred_ctx_;
  int depth_ = 0;
  int suppress_js_ = 0;
  bool torn_down_ = false;
  int64_t reported_native_bytes_ = 0;
};

// Exposes NativeTlsContext and NativeTlsConnection (lib/tls/*.ts wraps them).
void InitTlsEngine(Napi::Env env, Napi::Object exports);

}  // namespace tls_session

#endif  // TLS_SESSION_TLS_ENGINE_H_
