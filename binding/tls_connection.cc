#include "tls_connection.h"

#include <algorithm>
#include <climits>
#include <mutex>
#include <string>

#include "addon_data.h"
#include "openssl_errors.h"
#include "session_functions.h"
#include "tls_context.h"

namespace tls_session {
namespace {

constexpr size_t kReadChunk = 16 * 1024;

// Process-wide ex_data slot pointing an SSL back at its TlsConnection (nullptr once detached).
int ConnectionIndex() {
  static int index = -1;
  static std::once_flag once;
  // SSL_get_ex_new_index is a macro: this is its expansion.
  std::call_once(once, [] { index = ossl().CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_SSL, 0, nullptr, nullptr, nullptr, nullptr); });
  return index;
}

}  // namespace

void TlsConnection::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor =
      DefineClass(env, "NativeTlsConnection",
                  {InstanceMethod<&TlsConnection::Cycle>("cycle"), InstanceMethod<&TlsConnection::Write>("write"),
                   InstanceMethod<&TlsConnection::Shutdown>("shutdown"), InstanceMethod<&TlsConnection::Info>("info"),
                   InstanceMethod<&TlsConnection::GetSession>("getSession"), InstanceMethod<&TlsConnection::SetSession>("setSession"),
                   InstanceMethod<&TlsConnection::Free>("free")});
  exports.Set("NativeTlsConnection", ctor);
}

TlsConnection* TlsConnection::FromSsl(SSL* ssl) {
  return ssl != nullptr ? static_cast<TlsConnection*>(ossl().SSL_get_ex_data(ssl, ConnectionIndex())) : nullptr;
}

// (context, { servername?, verifyHost?, verifyIp? }, sessionHandle?)
TlsConnection::TlsConnection(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TlsConnection>(info), data_(AddonData::Get(info.Env())) {
  Napi::Env env = info.Env();
  TlsContext* context = TlsContext::FromValue(env, info[0]);
  if (!info[1].IsObject()) throw MakeError(env, ErrorKind::kInvalidArgument, "NativeTlsConnection options must be an object");
  Napi::Object options = info[1].As<Napi::Object>();
  const auto& api = ossl();
  ClearErrorOnReturn clear_errors;
  server_ = context->is_server();
  ssl_.reset(api.SSL_new(context->ctx()));  // the SSL takes its own reference to the SSL_CTX
  if (ssl_ == nullptr) ThrowOpenSSLError(env, ErrorKind::kOpenSSL, "SSL_new failed");
  BIOPointer in(api.BIO_new(api.BIO_s_mem()));
  BIOPointer out(api.BIO_new(api.BIO_s_mem()));
  if (in == nullptr || out == nullptr) ThrowOpenSSLError(env, ErrorKind::kOpenSSL, "BIO_new failed");
  network_in_ = in.get();
  network_out_ = out.get();
  api.SSL_set_bio(ssl_.get(), in.release(), out.release());  // hand-over: the SSL owns both BIOs from here
  if (server_) {
    api.SSL_set_accept_state(ssl_.get());
  } else {
    api.SSL_set_connect_state(ssl_.get());
    Napi::Value servername = options.Get("servername");
    // SSL_set_tlsext_host_name is a macro over SSL_ctrl; OpenSSL copies the name.
    if (servername.IsString()) {
      std::string name = servername.As<Napi::String>().Utf8Value();
      if (api.SSL_ctrl(ssl_.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, const_cast<char*>(name.c_str())) != 1) {
        ThrowOpenSSLError(env, ErrorKind::kOpenSSL, "invalid servername");
      }
    }
    Napi::Value host = options.Get("verifyHost");
    if (host.IsString() && api.SSL_set1_host(ssl_.get(), host.As<Napi::String>().Utf8Value().c_str()) != 1) {
      ThrowOpenSSLError(env, ErrorKind::kOpenSSL, "invalid host name to verify");
    }
    Napi::Value ip = options.Get("verifyIp");
    if (ip.IsString() &&
        api.X509_VERIFY_PARAM_set1_ip_asc(api.SSL_get0_param(ssl_.get()), ip.As<Napi::String>().Utf8Value().c_str()) != 1) {
      ThrowOpenSSLError(env, ErrorKind::kOpenSSL, "invalid IP address to verify");
    }
    if (info.Length() > 2 && !info[2].IsUndefined()) {
      SSL_SESSION* session = SessionArgument(info, 2);
      // OpenSSL takes its own reference; the caller's Session keeps (and frees) theirs.
      if (api.SSL_set_session(ssl_.get(), session) != 1) ThrowOpenSSLError(env, ErrorKind::kOpenSSL, "SSL_set_session failed");
    }
  }
  api.SSL_set_ex_data(ssl_.get(), ConnectionIndex(), this);
  engine().Add(this);
  engine().ReportNativeSize(env, kNativeBytes);
}

TlsConnection::~TlsConnection() {
  // Already released (free() or teardown): AddonData may be gone, touch nothing.
  if (ssl_ == nullptr) return;
  // GC finalizer: SSL_free may fire the remove callback; no JavaScript from there.
  TlsEngine::NoJsScope no_js(&engine());
  ReleaseNative();
}

TlsEngine& TlsConnection::engine() { return data_->tls_engine(); }

void TlsConnection::ReleaseNative() {
  new_sessions_.clear();
  if (ssl_ == nullptr) return;
  // Detach first: callbacks fired while (or after) the SSL is freed must not reach this object.
  ossl().SSL_set_ex_data(ssl_.get(), ConnectionIndex(), nullptr);
  network_in_ = network_out_ = nullptr;
  engine().Remove(this);
  engine().ReportNativeSize(Env(), -kNativeBytes);
  engine().Free(std::move(ssl_));
}

void TlsConnection::QueueNewSession(SSL_SESSION* session) {
  if (server_) return;  // like tls.TLSSocket: 'session' is a client event
  SSL* ssl = ssl_.get();
  SessionPointer owned;
  if (ossl().SSL_get_session(ssl) == session) {
    owned.reset(ossl().SSL_get1_session(ssl));  // the session just negotiated, one reference for us
  } else if (ossl().SSL_SESSION_up_ref(session) == 1) {
    owned.reset(session);
  }
  if (owned != nullptr) new_sessions_.push_back(std::move(owned));
}

SSL* TlsConnection::LiveSsl(Napi::Env env) {
  if (ssl_ == nullptr) throw MakeError(env, ErrorKind::kState, "the TLS connection was destroyed");
  if (engine().InOpenSSL()) throw MakeError(env, ErrorKind::kState, "the TLS connection cannot be driven from inside a session callback");
  return ssl_.get();
}

Napi::Value TlsConnection::TakeOutput(Napi::Env env) {
  size_t pending = network_out_ != nullptr ? ossl().BIO_ctrl_pending(network_out_) : 0;
  if (pending == 0) return env.Undefined();
  Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, pending);
  size_t done = 0;
  while (done < pending) {
    int n = ossl().BIO_read(network_out_, out.Data() + done, static_cast<int>(std::min<size_t>(pending - done, INT_MAX)));
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  return done == pending ? Napi::Value(out) : Napi::Value(Napi::Buffer<uint8_t>::Copy(env, out.Data(), done));
}

Napi::Error TlsConnection::Failure(Napi::Env env, const char* what, int ssl_error) {
  failed_ = true;
  std::string reason = TakeOpenSSLReason();
  std::string message = std::string(what) + " failed";
  // The usual sequel of a refused renegotiation is the peer's fatal alert: say why it came.
  if (renegotiation_refused_) message += " after the peer asked to renegotiate (tls-session refuses TLS renegotiation)";
  long verify = ssl_ != nullptr ? ossl().SSL_get_verify_result(ssl_.get()) : X509_V_OK;
  if (reason.empty()) message += " (SSL_get_error " + std::to_string(ssl_error) + ")";
  if (verify == X509_V_OK) return MakeError(env, ErrorKind::kProtocol, message, reason);
  // The certificate check's own words, in the message and as `verifyError`.
  std::string verify_error = ossl().X509_verify_cert_error_string(verify);
  Napi::Error error = MakeError(env, ErrorKind::kProtocol, message + ": " + verify_error, reason);
  error.Set("verifyError", Napi::String::New(env, verify_error));
  return error;
}

Napi::Array TlsConnection::TakeNewSessions(Napi::Env env) {
  std::vector<SessionPointer> sessions;
  sessions.swap(new_sessions_);
  Napi::Array out = Napi::Array::New(env);
  uint32_t count = 0;
  for (SessionPointer& session : sessions) {
    // A session that cannot be handed over is freed by its owner (AdoptSession or `sessions`).
    out.Set(count++, AdoptSession(env, std::move(session)));
  }
  return out;
}

// cycle(input?) -> { out?, data?, secure?, closed?, sessions, error? }
Napi::Value TlsConnection::Cycle(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SSL* ssl = LiveSsl(env);
  if (failed_) throw MakeError(env, ErrorKind::kState, "the TLS connection already failed");
  ClearErrorOnReturn clear_errors;
  const auto& api = ossl();
  Napi::Object result = Napi::Object::New(env);
  // While this scope lives, a destroy() from a callback only detaches: the SSL and its BIOs
  // stay valid until the scope ends, so `ssl` and the BIOs below remain usable.
  TlsEngine::CallScope scope(&engine());
  BIO* in = network_in_;
  BIO* out = network_out_;
  started_ = true;
  if (IsUint8Array(info[0])) {
    Napi::Uint8Array input = info[0].As<Napi::Uint8Array>();
    size_t done = 0;
    while (done < input.ByteLength()) {  // a memory BIO grows: every write is complete
      int n = api.BIO_write(in, input.Data() + done, static_cast<int>(std::min<size_t>(input.ByteLength() - done, INT_MAX)));
      if (n <= 0) ThrowOpenSSLError(env, ErrorKind::kOpenSSL, "BIO_write failed");
      done += static_cast<size_t>(n);
    }
  }
  bool ok = true;
  if (!handshake_done_) {
    int r = api.SSL_do_handshake(ssl);
    if (r == 1) {
      handshake_done_ = true;
      result.Set("secure", true);
    } else {
      int e = api.SSL_get_error(ssl, r);
      if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
        result.Set("error", Failure(env, "TLS handshake", e).Value());
        ok = false;
      }
    }
  }
  if (ok && handshake_done_ && !peer_closed_) {
    // Application data, and post-handshake messages (TLS 1.3 NewSessionTicket: new sessions).
    std::string plain;
    unsigned char chunk[kReadChunk];
    for (;;) {
      size_t n = 0;
      int r = api.SSL_read_ex(ssl, chunk, sizeof(chunk), &n);
      if (r == 1) {
        plain.append(reinterpret_cast<const char*>(chunk), n);
        continue;
      }
      int e = api.SSL_get_error(ssl, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
      if (e == SSL_ERROR_ZERO_RETURN) {
        peer_closed_ = true;
        result.Set("closed", true);
        break;
      }
      result.Set("error", Failure(env, "TLS read", e).Value());
      break;
    }
    if (!plain.empty()) result.Set("data", Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(plain.data()), plain.size()));
  }
  // Alerts included: a failed handshake still owes the peer its alert.
  size_t pending = api.BIO_ctrl_pending(out);
  if (pending > 0) {
    Napi::Buffer<uint8_t> bytes = Napi::Buffer<uint8_t>::New(env, pending);
    int n = api.BIO_read(out, bytes.Data(), static_cast<int>(pending));
    if (n > 0) result.Set("out", Napi::Buffer<uint8_t>::Copy(env, bytes.Data(), static_cast<size_t>(n)));
  }
  result.Set("sessions", TakeNewSessions(env));
  return result;
}

Napi::Value TlsConnection::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SSL* ssl = LiveSsl(env);
  if (!IsUint8Array(info[0])) throw MakeError(env, ErrorKind::kInvalidArgument, "write(bytes) expects a Uint8Array");
  if (!handshake_done_ || failed_) throw MakeError(env, ErrorKind::kState, "write before the handshake completed or after a failure");
  ClearErrorOnReturn clear_errors;
  TlsEngine::CallScope scope(&engine());
  Napi::Uint8Array data = info[0].As<Napi::Uint8Array>();
  size_t done = 0;
  while (done < data.ByteLength()) {
    size_t n = 0;
    int r = ossl().SSL_write_ex(ssl, data.Data() + done, data.ByteLength() - done, &n);
    if (r != 1) throw Failure(env, "TLS write", ossl().SSL_get_error(ssl, r));
    done += n;
  }
  return TakeOutput(env);
}

Napi::Value TlsConnection::Shutdown(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SSL* ssl = LiveSsl(env);
  // close_notify only on an established, healthy connection (OpenSSL refuses it mid-handshake).
  if (!handshake_done_ || failed_) return env.Undefined();
  ClearErrorOnReturn clear_errors;
  TlsEngine::CallScope scope(&engine());
  ossl().SSL_shutdown(ssl);  // 0: close_notify sent, the peer's not yet seen; both are fine here
  return TakeOutput(env);
}

Napi::Value TlsConnection::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (ssl_ == nullptr) return env.Null();
  ClearErrorOnReturn clear_errors;
  const auto& api = ossl();
  SSL* ssl = ssl_.get();
  Napi::Object out = Napi::Object::New(env);
  out.Set("handshakeDone", handshake_done_);
  if (!handshake_done_) return out;
  out.Set("protocol", api.SSL_get_version(ssl));
  out.Set("reused", api.SSL_session_reused(ssl) == 1);
  if (const SSL_CIPHER* cipher = api.SSL_get_current_cipher(ssl)) {
    Napi::Object c = Napi::Object::New(env);
    c.Set("name", api.SSL_CIPHER_get_name(cipher));
    const char* standard = api.SSL_CIPHER_standard_name(cipher);
    c.Set("standardName", standard != nullptr ? standard : api.SSL_CIPHER_get_name(cipher));
    c.Set("version", api.SSL_CIPHER_get_version(cipher));
    out.Set("cipher", c);
  }
  const unsigned char* alpn = nullptr;
  unsigned int alpn_length = 0;
  api.SSL_get0_alpn_selected(ssl, &alpn, &alpn_length);
  if (alpn != nullptr && alpn_length > 0) out.Set("alpnProtocol", std::string(reinterpret_cast<const char*>(alpn), alpn_length));
  if (X509Pointer peer{api.SSL_get1_peer_certificate(ssl)}) {
    Napi::Value der = CertificateToBuffer(env, peer.get());
    if (!der.IsUndefined()) out.Set("peerCertificate", der);
  }
  long verify = api.SSL_get_verify_result(ssl);
  out.Set("verifyResult", Napi::Number::New(env, static_cast<double>(verify)));
  if (verify != X509_V_OK) out.Set("verifyError", api.X509_verify_cert_error_string(verify));
  return out;
}

Napi::Value TlsConnection::GetSession(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (ssl_ == nullptr) throw MakeError(env, ErrorKind::kState, "the TLS connection was destroyed");
  ClearErrorOnReturn clear_errors;
  SessionPointer session(ossl().SSL_get1_session(ssl_.get()));
  if (session == nullptr) return env.Null();
  return AdoptSession(env, std::move(session));
}

Napi::Value TlsConnection::SetSession(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SSL* ssl = LiveSsl(env);
  if (server_) throw MakeError(env, ErrorKind::kState, "setSession is for client connections");
  if (started_) throw MakeError(env, ErrorKind::kState, "setSession must be called before the handshake starts");
  SSL_SESSION* session = SessionArgument(info, 0);
  ClearErrorOnReturn clear_errors;
  // OpenSSL takes its own reference; the caller's Session keeps (and frees) theirs.
  if (ossl().SSL_set_session(ssl, session) != 1) ThrowOpenSSLError(env, ErrorKind::kOpenSSL, "SSL_set_session failed");
  return env.Undefined();
}

Napi::Value TlsConnection::Free(const Napi::CallbackInfo& info) {
  ReleaseNative();  // deferred by the engine when called from inside a callback
  return info.Env().Undefined();
}

}  // namespace tls_session
