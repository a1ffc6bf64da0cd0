// TlsContext: one SSL_CTX on the system OpenSSL, with its session cache callbacks bridged to
// JavaScript (lib/tls/context.ts). Reference rules of each callback: docs/TLS_ENGINE.md.
#ifndef TLS_SESSION_TLS_CONTEXT_H_
#define TLS_SESSION_TLS_CONTEXT_H_

#include <napi.h>

#include <memory>
#include <string>

#include "openssl_library.h"
#include "openssl_pointers.h"
#include "tls_engine.h"

namespace tls_session {

class AddonData;

class TlsContext : public Napi::ObjectWrap<TlsContext>, public TlsEngine::Owner {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  // The live TlsContext behind a JavaScript value, or throws a typed error.
  static TlsContext* FromValue(Napi::Env env, Napi::Value value);

  explicit TlsContext(const Napi::CallbackInfo& info);
  ~TlsContext() override;

  SSL_CTX* ctx() const { return ctx_.get(); }
  bool is_server() const { return server_; }
  TlsEngine& engine();

  void ReleaseNative() override;

 private:
  enum Event { kNewSession = 0, kRemoveSession = 1, kLookup = 2 };

  void Configure(Napi::Env env, Napi::Object options);
  void LoadCertificateChain(Napi::Env env, Napi::Value pem);
  void LoadPrivateKey(Napi::Env env, Napi::Value pem, Napi::Value passphrase);
  void LoadCa(Napi::Env env, Napi::Value pem);

  Napi::Value Flush(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  // Session-ticket keys (docs/TLS_ENGINE.md, "Session tickets: keys and rotation").
  Napi::Value SetTicketKeys(const Napi::CallbackInfo& info);
  Napi::Value TicketKeyStats(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  static Napi::Value LiveOwners(const Napi::CallbackInfo& info);

  // The TlsContext an SSL_CTX belongs to, or nullptr once it was closed or collected.
  static TlsContext* FromCtx(SSL_CTX* ctx);
  // Callbacks OpenSSL calls: noexcept, whole body guarded (nothing may unwind through OpenSSL).
  static int OnNewSession(SSL* ssl, SSL_SESSION* session) noexcept;
  static SSL_SESSION* OnGetSession(SSL* ssl, const unsigned char* id, int length, int* copy) noexcept;
  static void OnRemoveSession(SSL_CTX* ctx, SSL_SESSION* session) noexcept;
  static void OnInfo(const SSL* ssl, int where, int value) noexcept;
  static int OnAlpnSelect(SSL* ssl, const unsigned char** out, unsigned char* out_length, const unsigned char* in, unsigned int in_length,
                          void* arg) noexcept;
  // SSL_CTX_set_tlsext_ticket_key_evp_cb: seals tickets with the first key, opens them with any
  // (2 = renew when it was not the first), 0 for an unknown name. Calls no JavaScript.
  static int OnTicketKey(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int encrypt) noexcept;

  Napi::Value Dispatch(Event event, Napi::Value argument);

  // What an SSL_CTX with a certificate chain, a CA store and a session cache costs, roughly
  // (reported to V8; the sessions themselves are reported by the session table).
  static constexpr int64_t kNativeBytes = 16 * 1024;

  AddonData* data_;
  SSLCtxPointer ctx_;                 // released to TlsEngine::Free (ReleaseNative)
  Napi::FunctionReference dispatch_;  // (event, argument) => result; lib/tls/context.ts
  bool server_ = false;
  bool tickets_ = true;             // options.tickets: SSL_OP_NO_TICKET is not set
  bool emit_new_sessions_ = false;  // the user's cache mode covers this context's role
};

}  // namespace tls_session

#endif  // TLS_SESSION_TLS_CONTEXT_H_
