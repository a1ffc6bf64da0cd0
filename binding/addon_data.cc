#include "addon_data.h"

namespace tls_session {
namespace {

void OnEnvironmentCleanup(void* arg) { static_cast<AddonData*>(arg)->Teardown(); }

}  // namespace

AddonData::AddonData(Napi::Env env) : env_(env), sessions_(env) {
  // Cleanup hooks run before instance-data finalizers at teardown (process exit, worker
  // termination): the one place leftover references are released.
  napi_add_env_cleanup_hook(env, OnEnvironmentCleanup, this);
}

AddonData::~AddonData() {
  napi_remove_env_cleanup_hook(env_, OnEnvironmentCleanup, this);
  Teardown();
}

Napi::FunctionReference* AddonData::ErrorConstructor(ErrorKind kind) { return &error_constructors_[static_cast<int>(kind)]; }

void AddonData::SetErrorConstructor(ErrorKind kind, Napi::Function ctor) {
  error_constructors_[static_cast<int>(kind)] = Napi::Persistent(ctor);
}

void AddonData::Teardown() {
  if (torn_down_) return;
  torn_down_ = true;
  // SSL/SSL_CTX first, without JavaScript (their callbacks may fire), then the sessions.
  tls_engine_.Teardown();
  sessions_.ReleaseAll();
}

}  // namespace tls_session
