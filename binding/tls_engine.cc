#include "tls_engine.h"

#include "addon_data.h"
#include "tls_connection.h"
#include "tls_context.h"

namespace tls_session {

TlsEngine::CallScope::~CallScope() {
  if (--engine_->depth_ == 0) engine_->RunDeferred();
}

void TlsEngine::Free(SSLPointer ssl) {
  if (ssl == nullptr) return;
  if (depth_ > 0) {
    deferred_ssl_.push_back(std::move(ssl));
    return;
  }
  CallScope scope(this);  // callbacks fired by SSL_free see OpenSSL on the stack
  ssl.reset();
}

void TlsEngine::Free(SSLCtxPointer ctx) {
  if (ctx == nullptr) return;
  if (depth_ > 0) {
    deferred_ctx_.push_back(std::move(ctx));
    return;
  }
  CallScope scope(this);
  ctx.reset();
}

void TlsEngine::RunDeferred() {
  // Connections first: an SSL holds a reference to its SSL_CTX. A free may fire callbacks that
  // defer more frees, hence the loop; each object is moved out of the list before it is freed.
  depth_++;
  while (!deferred_ssl_.empty() || !deferred_ctx_.empty()) {
    if (!deferred_ssl_.empty()) {
      SSLPointer ssl = std::move(deferred_ssl_.back());
      deferred_ssl_.pop_back();
      ssl.reset();
    } else {
      SSLCtxPointer ctx = std::move(deferred_ctx_.back());
      deferred_ctx_.pop_back();
      ctx.reset();
    }
  }
  depth_--;
}

// The one answer to "is OpenSSL on the stack?" for JavaScript too: a second counter in
// JavaScript disagreed whenever a native call that was not wrapped in it fired a callback.
static Napi::Value InOpenSSL(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), AddonData::Get(info.Env())->tls_engine().InOpenSSL());
}

void InitTlsEngine(Napi::Env env, Napi::Object exports) {
  TlsContext::Init(env, exports);
  TlsConnection::Init(env, exports);
  exports.Set("inOpenSSL", Napi::Function::New(env, InOpenSSL, "inOpenSSL"));
}

void TlsEngine::ReportNativeSize(napi_env env, int64_t delta) {
  if (torn_down_) return;
  int64_t total = 0;
  if (napi_adjust_external_memory(env, delta, &total) == napi_ok) reported_native_bytes_ += delta;
}

void TlsEngine::Teardown() {
  if (torn_down_) return;
  torn_down_ = true;  // from here CanCallJs() is false for good
  // ReleaseNative removes the owner from the set: iterate over a copy.
  std::vector<Owner*> owners(owners_.begin(), owners_.end());
  for (Owner* owner : owners) owner->ReleaseNative();
  owners_.clear();
  RunDeferred();
}

}  // namespace tls_session
