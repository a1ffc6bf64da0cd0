// Module entry: proves the system OpenSSL is the one bound, then exposes the functions.
#include <napi.h>

#include "addon_data.h"
#include "openssl_errors.h"
#include "openssl_library.h"
#include "record_cipher.h"
#include "session_functions.h"
#include "tls_engine.h"
#ifdef TLS_SESSION_BENCH
#include "bench/native_loop.h"
#endif

namespace tls_session {
namespace {

Napi::Value ProveSymbols(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string error;
  const OpenSSLLibrary* library = OpenSSLLibrary::Load(&error);
  std::vector<SymbolOrigin> origins = library->ProveOrigins();
  Napi::Array out = Napi::Array::New(env, origins.size());
  for (size_t i = 0; i < origins.size(); i++) {
    Napi::Object row = Napi::Object::New(env);
    row.Set("symbol", origins[i].symbol);
    row.Set("library", origins[i].expected_library);
    row.Set("file", origins[i].file);
    row.Set("ok", origins[i].ok);
    out.Set(static_cast<uint32_t>(i), row);
  }
  return out;
}

Napi::Value SetErrorClasses(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "setErrorClasses expects an object");
  Napi::Object classes = info[0].As<Napi::Object>();
  const std::pair<const char*, ErrorKind> names[] = {{"decode", ErrorKind::kDecode},
                                                     {"freed", ErrorKind::kFreed},
                                                     {"viewExpired", ErrorKind::kViewExpired},
                                                     {"openssl", ErrorKind::kOpenSSL},
                                                     {"invalidArgument", ErrorKind::kInvalidArgument},
                                                     {"state", ErrorKind::kState},
                                                     {"config", ErrorKind::kConfig},
                                                     {"protocol", ErrorKind::kProtocol}};
  for (const auto& [name, kind] : names) {
    Napi::Value ctor = classes.Get(name);
    if (!ctor.IsFunction()) throw Napi::TypeError::New(env, std::string("setErrorClasses: missing class ") + name);
    AddonData::Get(env)->SetErrorConstructor(kind, ctor.As<Napi::Function>());
  }
  return env.Undefined();
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  std::string error;
  const OpenSSLLibrary* library = OpenSSLLibrary::Load(&error);
  if (library == nullptr) {
    Napi::Error load_error = Napi::Error::New(env, error);
    load_error.Set("code", "ERR_TLS_SESSION_LIBSSL");
    throw load_error;
  }
  env.SetInstanceData(new AddonData(env));

  Napi::Object openssl = Napi::Object::New(env);
  openssl.Set("version", library->version_text());
  openssl.Set("versionNumber", Napi::Number::New(env, static_cast<double>(library->version_number())));
  openssl.Set("libssl", library->libssl_path());
  openssl.Set("libcrypto", library->libcrypto_path());
  openssl.Set("deepbind", library->deepbind());
  openssl.Set("relocationsChecked", library->relocations_checked());
  openssl.Set("loadedAs", OpenSSLLibrary::LoadWayName(library->loaded_as()));
  Napi::Array fallback_reasons = Napi::Array::New(env, library->fallback_reasons().size());
  for (size_t i = 0; i < library->fallback_reasons().size(); i++)
    fallback_reasons.Set(static_cast<uint32_t>(i), library->fallback_reasons()[i]);
  openssl.Set("fallbackReasons", fallback_reasons);
  openssl.Set("linkMapNamespace", Napi::Number::New(env, static_cast<double>(library->namespace_id())));
  openssl.Set("importsRebound", library->imports_rebound());
  openssl.Set("headerVersion", OPENSSL_VERSION_TEXT);
  exports.Set("openssl", openssl);
  exports.Set("proveSymbols", Napi::Function::New(env, ProveSymbols, "proveSymbols"));
  exports.Set("setErrorClasses", Napi::Function::New(env, SetErrorClasses, "setErrorClasses"));
  InitSessionFunctions(env, exports);
  InitTlsEngine(env, exports);
  InitRecordCipher(env, exports);
#ifdef TLS_SESSION_BENCH
  InitBenchFunctions(env, exports);  // the benchmark build only (npm run bench)
#endif
  return exports;
}

}  // namespace tls_session

static Napi::Object InitTlsSession(Napi::Env env, Napi::Object exports) { return tls_session::Init(env, exports); }

NODE_API_MODULE(tls_session, InitTlsSession)
