// TlsConnection: one SSL on the system OpenSSL, driven through two memory BIOs. JavaScript
// (lib/tls/connection.ts) moves the bytes between the BIOs and a socket.
#ifndef TLS_SESSION_TLS_CONNECTION_H_
#define TLS_SESSION_TLS_CONNECTION_H_

#include <napi.h>

#include <memory>
#include <vector>

#include "openssl_library.h"
#include "openssl_pointers.h"
#include "tls_engine.h"

namespace tls_session {

class AddonData;

class TlsConnection : public Napi::ObjectWrap<TlsConnection>, public TlsEngine::Owner {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  // The connection an SSL belongs to, or nullptr once it was released.
  static TlsConnection* FromSsl(SSL* ssl);

  explicit TlsConnection(const Napi::CallbackInfo& info);
  ~TlsConnection() override;

  // From new_session_cb: keeps one reference (SSL_get1_session) for the 'session' event.
  void QueueNewSession(SSL_SESSION* session);
  // From the info callback: this side answered a renegotiation request with no_renegotiation.
  void NoteRenegotiationRefused() { renegotiation_refused_ = true; }

  void ReleaseNative() override;

 private:
  // Feeds network bytes, advances the handshake, reads application data.
  Napi::Value Cycle(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value Shutdown(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value GetSession(const Napi::CallbackInfo& info);
  Napi::Value SetSession(const Napi::CallbackInfo& info);
  Napi::Value Free(const Napi::CallbackInfo& info);

  TlsEngine& engine();
  // The SSL, or throws when it was freed or OpenSSL is already on the stack.
  SSL* LiveSsl(Napi::Env env);
  // Everything OpenSSL wrote for the network since the last call (nullptr-free Buffer or undefined).
  Napi::Value TakeOutput(Napi::Env env);
  Napi::Error Failure(Napi::Env env, const char* what, int ssl_error);
  Napi::Array TakeNewSessions(Napi::Env env);

  // An SSL with its record buffers (up to ~17 KiB each way) and two memory BIOs, roughly.
  static constexpr int64_t kNativeBytes = 48 * 1024;

  AddonData* data_;
  SSLPointer ssl_;              // released to TlsEngine::Free (ReleaseNative)
  BIO* network_in_ = nullptr;   // owned by ssl_: bytes from the peer
  BIO* network_out_ = nullptr;  // owned by ssl_: bytes for the peer
  bool server_ = false;
  bool started_ = false;
  bool handshake_done_ = false;
  bool failed_ = false;
  bool peer_closed_ = false;
  bool renegotiation_refused_ = false;
  std::vector<SessionPointer> new_sessions_;  // handed to JS by Cycle (TakeNewSessions)
};

}  // namespace tls_session

#endif  // TLS_SESSION_TLS_CONNECTION_H_
