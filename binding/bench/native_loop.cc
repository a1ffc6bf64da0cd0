// The baseline of `npm run bench`: d2i + i2d (length, then bytes) + free in a plain C++ loop on
// the same system libssl the addon binds. Compiled only into the benchmark build of the addon
// (CMake option TLS_SESSION_BENCH, `npm run bench`), never into the shipped one.
#include "native_loop.h"

#include <chrono>
#include <vector>

#include "../openssl_library.h"
#include "../openssl_pointers.h"

namespace tls_session {
namespace {

// benchNativeLoop(bytes, iterations) -> nanoseconds for all iterations.
Napi::Value NativeLoop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || !info[1].IsNumber())
    throw Napi::TypeError::New(env, "benchNativeLoop(bytes: Uint8Array, iterations: number)");
  Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
  long iterations = static_cast<long>(info[1].As<Napi::Number>().Int64Value());
  const auto& api = ossl();
  std::vector<unsigned char> out(bytes.ByteLength() * 2 + 64);
  auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < iterations; i++) {
    const unsigned char* in = bytes.Data();
    SessionPointer session(api.d2i_SSL_SESSION(nullptr, &in, static_cast<long>(bytes.ByteLength())));
    if (session == nullptr) throw Napi::Error::New(env, "d2i_SSL_SESSION rejected the benchmark bytes");
    int length = api.i2d_SSL_SESSION(session.get(), nullptr);
    if (length > 0 && static_cast<size_t>(length) > out.size()) out.resize(static_cast<size_t>(length));
    unsigned char* cursor = out.data();
    api.i2d_SSL_SESSION(session.get(), &cursor);
  }
  auto elapsed = std::chrono::steady_clock::now() - start;
  api.ERR_clear_error();
  return Napi::Number::New(env, static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count()));
}

}  // namespace

void InitBenchFunctions(Napi::Env env, Napi::Object exports) {
  exports.Set("benchNativeLoop", Napi::Function::New(env, NativeLoop, "benchNativeLoop"));
}

}  // namespace tls_session
