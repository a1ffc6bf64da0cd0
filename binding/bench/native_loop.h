// The benchmark build's extra function (binding/bench/native_loop.cc); see CMakeLists.txt.
#ifndef TLS_SESSION_BENCH_NATIVE_LOOP_H_
#define TLS_SESSION_BENCH_NATIVE_LOOP_H_

#include <napi.h>

namespace tls_session {

void InitBenchFunctions(Napi::Env env, Napi::Object exports);

}  // namespace tls_session

#endif  // TLS_SESSION_BENCH_NATIVE_LOOP_H_
