#include "tls_context.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "addon_data.h"
#include "openssl_errors.h"
#include "session_functions.h"
#include "tls_connection.h"

namespace tls_session {
namespace {

// Process-wide ex_data slot pointing an SSL_CTX back at its TlsContext (nullptr once detached).
int ContextIndex() {
  static int index = -1;
  static std::once_flag once;
  // SSL_CTX_get_ex_new_index is a macro: this is its expansion.
  std::call_once(once, [] { index = ossl().CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_SSL_CTX, 0, nullptr, nullptr, nullptr, nullptr); });
  return index;
}

// The server's ALPN list lives in the SSL_CTX's ex_data, freed with the SSL_CTX itself: the
// select callback can run after the TlsContext object is gone (connections keep the SSL_CTX).
void FreeAlpn(void* parent, void* ptr, CRYPTO_EX_DATA* ad, int index, long argl, void* argp) { delete static_cast<std::string*>(ptr); }

int AlpnIndex() {
  static int index = -1;
  static std::once_flag once;
  std::call_once(once, [] { index = ossl().CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_SSL_CTX, 0, nullptr, nullptr, nullptr, FreeAlpn); });
  return index;
}

// ---- Session-ticket keys (SetTicketKeys, OnTicketKey) ----

// One key in Node's tls.Server#setTicketKeys layout (src/crypto/crypto_context.cc): a 16-byte
// name (sent in clear at the start of every ticket), a 16-byte HMAC-SHA256 secret, a 16-byte
// AES-128-CBC key. The same 48 bytes drive a Node server and this engine.
constexpr size_t kTicketPart = 16;
struct TicketKey {
  unsigned char name[kTicketPart];
  unsigned char hmac[kTicketPart];
  unsigned char aes[kTicketPart];
};
static_assert(sizeof(TicketKey) == 3 * kTicketPart, "TicketKey must be exactly Node's 48-byte layout");
// lib/tls/context.ts checks the same bound first (MAX_TICKET_KEYS).
constexpr uint32_t kMaxTicketKeys = 64;

// A list of keys whose memory is wiped (OPENSSL_cleanse) before it is given back, whether the
// list is replaced, its SSL_CTX freed, or a half-copied list refused. Never copied.
class TicketKeyList {
 public:
  explicit TicketKeyList(size_t count) : keys_(count) {}
  ~TicketKeyList() {
    if (!keys_.empty()) ossl().OPENSSL_cleanse(keys_.data(), keys_.size() * sizeof(TicketKey));
  }
  TicketKeyList(const TicketKeyList&) = delete;
  TicketKeyList& operator=(const TicketKeyList&) = delete;

  size_t size() const { return keys_.size(); }
  TicketKey& operator[](size_t i) { return keys_[i]; }
  const TicketKey& operator[](size_t i) const { return keys_[i]; }

 private:
  std::vector<TicketKey> keys_;  // never resized after construction: no copy is left behind
};

// What an SSL_CTX with ticket keys carries in its ex_data: the keys and what the callback did
// with them. It lives and dies with the SSL_CTX (like the ALPN list), not with the TlsContext:
// connections may outlive ctx.close() and still issue or open tickets.
struct TicketKeyState {
  std::unique_ptr<TicketKeyList> keys;  // never null once stored
  double issued = 0;                    // tickets sealed with keys[0]
  double decrypted = 0;                 // tickets opened with keys[0]
  double renewed = 0;                   // tickets opened with an older key (OpenSSL asked to renew them)
  double rejected = 0;                  // tickets whose key name is not in the list (full handshake)
  double failed = 0;                    // RAND/EVP failures (the callback returned -1)
};

void FreeTicketKeys(void* parent, void* ptr, CRYPTO_EX_DATA* ad, int index, long argl, void* argp) {
  delete static_cast<TicketKeyState*>(ptr);  // the list's destructor cleanses the keys
}

int TicketKeyIndex() {
  static int index = -1;
  static std::once_flag once;
  std::call_once(once,
                 [] { index = ossl().CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_SSL_CTX, 0, nullptr, nullptr, nullptr, FreeTicketKeys); });
  return index;
}

TicketKeyState* TicketKeysOf(SSL_CTX* ctx) {
  return ctx != nullptr ? static_cast<TicketKeyState*>(ossl().SSL_CTX_get_ex_data(ctx, TicketKeyIndex())) : nullptr;
}

int ProtocolVersion(Napi::Env env, Napi::Value value, const char* name) {
  if (value.IsUndefined()) return 0;  // 0: no bound, OpenSSL's default
  std::string text = value.IsString() ? value.As<Napi::String>().Utf8Value() : "";
  if (text == "TLSv1") return TLS1_VERSION;
  if (text == "TLSv1.1") return TLS1_1_VERSION;
  if (text == "TLSv1.2") return TLS1_2_VERSION;
  if (text == "TLSv1.3") return TLS1_3_VERSION;
  throw MakeError(env, ErrorKind::kInvalidArgument, std::string(name) + " must be 'TLSv1', 'TLSv1.1', 'TLSv1.2' or 'TLSv1.3'");
}

Napi::Uint8Array OptionalBytes(Napi::Env env, Napi::Object options, const char* name, bool* present) {
  Napi::Value value = options.Get(name);
  *present = !value.IsUndefined();
  if (!*present) return Napi::Uint8Array();
  if (!IsUint8Array(value)) {
    throw MakeError(env, ErrorKind::kInvalidArgument, std::string("options.") + name + " must be a Buffer or Uint8Array");
  }
  return value.As<Napi::Uint8Array>();
}

// A read-only BIO over JavaScript bytes (which must outlive it).
BIOPointer MemoryBio(Napi::Env env, Napi::Uint8Array bytes) {
  BIOPointer bio(ossl().BIO_new_mem_buf(bytes.Data(), static_cast<int>(bytes.ByteLength())));
  if (bio == nullptr) ThrowOpenSSLError(env, ErrorKind::kConfig, "BIO_new_mem_buf failed");
  return bio;
}

// Never prompts on the terminal (OpenSSL's default when no callback is given): no passphrase
// means an encrypted key fails to load with OpenSSL's reason.
int PassphraseCallback(char* buffer, int size, int rwflag, void* user) {
  const std::string* passphrase = static_cast<const std::string*>(user);
  if (passphrase == nullptr || size <= 0) return 0;
  int length = static_cast<int>(std::min<size_t>(passphrase->size(), static_cast<size_t>(size)));
  memcpy(buffer, passphrase->data(), static_cast<size_t>(length));
  return length;
}

// The cache-mode bits for the user's mode. Client contexts always keep SSL_SESS_CACHE_CLIENT
// so new_session_cb sees every client session (the connection's 'session' event); when the
// user did not ask for a client cache, nothing is stored internally.
long CacheMode(Napi::Env env, const std::string& mode, bool server, bool* emit_new) {
  long bits;
  if (mode == "off")
    bits = SSL_SESS_CACHE_OFF;
  else if (mode == "client")
    bits = SSL_SESS_CACHE_CLIENT;
  else if (mode == "server")
    bits = SSL_SESS_CACHE_SERVER;
  else if (mode == "both")
    bits = SSL_SESS_CACHE_BOTH;
  else
    throw MakeError(env, ErrorKind::kInvalidArgument, "sessionCache.mode must be 'off', 'client', 'server' or 'both'");
  long role_bit = server ? SSL_SESS_CACHE_SERVER : SSL_SESS_CACHE_CLIENT;
  *emit_new = (bits & role_bit) != 0;
  if (!server && (bits & SSL_SESS_CACHE_CLIENT) == 0) bits |= SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE;
  return bits;
}

}  // namespace

void TlsContext::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(
      env, "NativeTlsContext",
      {InstanceMethod<&TlsContext::Flush>("flush"), InstanceMethod<&TlsContext::Stats>("stats"),
       InstanceMethod<&TlsContext::SetTicketKeys>("setTicketKeys"), InstanceMethod<&TlsContext::TicketKeyStats>("ticketKeyStats"),
       InstanceMethod<&TlsContext::Close>("close"), StaticMethod<&TlsContext::LiveOwners>("liveOwners")});
  exports.Set("NativeTlsContext", ctor);
}

TlsContext* TlsContext::FromValue(Napi::Env env, Napi::Value value) {
  TlsContext* context = nullptr;
  if (value.IsObject()) {
    napi_status status = napi_unwrap(env, value, reinterpret_cast<void**>(&context));
    if (status != napi_ok) context = nullptr;
  }
  // Only TlsContext objects are wrapped with this constructor's class; anything else is refused.
  if (context == nullptr) throw MakeError(env, ErrorKind::kInvalidArgument, "expected a NativeTlsContext");
  if (context->ctx_ == nullptr) throw MakeError(env, ErrorKind::kState, "the TlsContext was closed");
  return context;
}

TlsContext::TlsContext(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TlsContext>(info), data_(AddonData::Get(info.Env())) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[1].IsFunction()) {
    throw MakeError(env, ErrorKind::kInvalidArgument, "NativeTlsContext(options, dispatch) expects an object and a function");
  }
  ClearErrorOnReturn clear_errors;
  Napi::Object options = info[0].As<Napi::Object>();
  server_ = options.Get("server").ToBoolean().Value();
  ctx_.reset(ossl().SSL_CTX_new(server_ ? ossl().TLS_server_method() : ossl().TLS_client_method()));
  if (ctx_ == nullptr) ThrowOpenSSLError(env, ErrorKind::kOpenSSL, "SSL_CTX_new failed");
  Configure(env, options);  // throws: ctx_ is freed by its deleter, nothing registered yet
  dispatch_ = Napi::Persistent(info[1].As<Napi::Function>());
  ossl().SSL_CTX_set_ex_data(ctx_.get(), ContextIndex(), this);
  engine().Add(this);
  engine().ReportNativeSize(env, kNativeBytes);
}

TlsContext::~TlsContext() {
  // Already released (close() or teardown): AddonData may be gone, touch nothing.
  if (ctx_ == nullptr) return;
  // GC finalizer: no JavaScript from the callbacks SSL_CTX_free may fire.
  TlsEngine::NoJsScope no_js(&engine());
  ReleaseNative();
}

TlsEngine& TlsContext::engine() { return data_->tls_engine(); }

void TlsContext::ReleaseNative() {
  if (ctx_ == nullptr) return;
  // Detach first: connections may keep the SSL_CTX alive, and its callbacks must no longer
  // reach this object.
  ossl().SSL_CTX_set_ex_data(ctx_.get(), ContextIndex(), nullptr);
  engine().Remove(this);
  engine().ReportNativeSize(Env(), -kNativeBytes);
  engine().Free(std::move(ctx_));
}

void TlsContext::Configure(Napi::Env env, Napi::Object options) {
  const auto& api = ossl();
  SSL_CTX* ctx = ctx_.get();

  int min_version = ProtocolVersion(env, options.Get("minVersion"), "minVersion");
  int max_version = ProtocolVersion(env, options.Get("maxVersion"), "maxVersion");
  // SSL_CTX_set_min/max_proto_version are macros over SSL_CTX_ctrl.
  if (min_version != 0 && api.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, min_version, nullptr) != 1) {
    ThrowOpenSSLError(env, ErrorKind::kConfig, "cannot set minVersion");
  }
  if (max_version != 0 && api.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MAX_PROTO_VERSION, max_version, nullptr) != 1) {
    ThrowOpenSSLError(env, ErrorKind::kConfig, "cannot set maxVersion");
  }

  Napi::Value ciphers = options.Get("ciphers");
  if (ciphers.IsString() && api.SSL_CTX_set_cipher_list(ctx, ciphers.As<Napi::String>().Utf8Value().c_str()) != 1) {
    ThrowOpenSSLError(env, ErrorKind::kConfig, "invalid ciphers list");
  }
  Napi::Value suites = options.Get("ciphersuites");
  if (suites.IsString() && api.SSL_CTX_set_ciphersuites(ctx, suites.As<Napi::String>().Utf8Value().c_str()) != 1) {
    ThrowOpenSSLError(env, ErrorKind::kConfig, "invalid ciphersuites list");
  }

  tickets_ = options.Get("tickets").ToBoolean().Value();
  if (!tickets_) api.SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  // TLS <= 1.2 renegotiation is refused both ways (docs/TLS_ENGINE.md): a client answers a
  // HelloRequest with a no_renegotiation warning and goes on; a server does the same to a new
  // ClientHello. Allowing it would let SSL_write want a read mid-stream, and the engine's
  // writes do not wait for reads.
  api.SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  api.SSL_CTX_set_info_callback(ctx, OnInfo);

  bool present = false;
  Napi::Uint8Array cert = OptionalBytes(env, options, "cert", &present);
  if (present) LoadCertificateChain(env, cert);
  Napi::Uint8Array key = OptionalBytes(env, options, "key", &present);
  if (present) {
    LoadPrivateKey(env, key, options.Get("passphrase"));
    if (api.SSL_CTX_check_private_key(ctx) != 1) ThrowOpenSSLError(env, ErrorKind::kConfig, "the key does not match the certificate");
  }
  Napi::Uint8Array ca = OptionalBytes(env, options, "ca", &present);
  if (present) {
    LoadCa(env, ca);
  } else if (!server_ && options.Get("verifyPeer").ToBoolean().Value() && api.SSL_CTX_set_default_verify_paths(ctx) != 1) {
    ThrowOpenSSLError(env, ErrorKind::kConfig, "cannot load the system's default CA certificates");
  }
  if (options.Get("verifyPeer").ToBoolean().Value()) {
    int mode = SSL_VERIFY_PEER;
    if (server_ && options.Get("requirePeerCertificate").ToBoolean().Value()) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    api.SSL_CTX_set_verify(ctx, mode, nullptr);
  }

  Napi::Uint8Array alpn = OptionalBytes(env, options, "alpn", &present);
  if (present && alpn.ByteLength() > 0) {
    if (server_) {
      auto* wire = new std::string(reinterpret_cast<const char*>(alpn.Data()), alpn.ByteLength());
      if (api.SSL_CTX_set_ex_data(ctx, AlpnIndex(), wire) != 1) {
        delete wire;
        ThrowOpenSSLError(env, ErrorKind::kConfig, "cannot store alpnProtocols");
      }
      api.SSL_CTX_set_alpn_select_cb(ctx, OnAlpnSelect, nullptr);
    } else if (api.SSL_CTX_set_alpn_protos(ctx, alpn.Data(), static_cast<unsigned int>(alpn.ByteLength())) != 0) {
      // Inverted convention: 0 is success for this one.
      ThrowOpenSSLError(env, ErrorKind::kConfig, "invalid alpnProtocols");
    }
  }

  Napi::Value mode_value = options.Get("cacheMode");
  std::string mode = mode_value.IsString() ? mode_value.As<Napi::String>().Utf8Value() : (server_ ? "server" : "client");
  // SSL_CTX_set_session_cache_mode / SSL_CTX_sess_set_cache_size are macros over SSL_CTX_ctrl.
  api.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_SESS_CACHE_MODE, CacheMode(env, mode, server_, &emit_new_sessions_), nullptr);
  Napi::Value size = options.Get("cacheSize");
  if (size.IsNumber()) api.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_SESS_CACHE_SIZE, size.As<Napi::Number>().Int64Value(), nullptr);
  Napi::Value timeout = options.Get("cacheTimeout");
  if (timeout.IsNumber()) api.SSL_CTX_set_timeout(ctx, timeout.As<Napi::Number>().Int64Value());
  if (server_) {
    // A server must name the context its sessions belong to, or resumption with client
    // certificates fails ("session id context uninitialized").
    Napi::Uint8Array id_context = OptionalBytes(env, options, "sessionIdContext", &present);
    static const unsigned char kDefault[] = "tls-session";
    const unsigned char* bytes = present ? id_context.Data() : kDefault;
    unsigned int length = present ? static_cast<unsigned int>(id_context.ByteLength()) : sizeof(kDefault) - 1;
    if (api.SSL_CTX_set_session_id_context(ctx, bytes, length) != 1) {
      ThrowOpenSSLError(env, ErrorKind::kConfig, "invalid sessionIdContext (at most 32 bytes)");
    }
  }
  api.SSL_CTX_sess_set_new_cb(ctx, OnNewSession);
  api.SSL_CTX_sess_set_remove_cb(ctx, OnRemoveSession);
  if (server_) api.SSL_CTX_sess_set_get_cb(ctx, OnGetSession);
}

void TlsContext::LoadCertificateChain(Napi::Env env, Napi::Value pem) {
  const auto& api = ossl();
  BIOPointer bio = MemoryBio(env, pem.As<Napi::Uint8Array>());
  X509Pointer leaf(api.PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (leaf == nullptr) ThrowOpenSSLError(env, ErrorKind::kConfig, "cert: no PEM certificate could be read");
  // Takes its own reference; ours goes with `leaf`.
  if (api.SSL_CTX_use_certificate(ctx_.get(), leaf.get()) != 1)
    ThrowOpenSSLError(env, ErrorKind::kConfig, "cert: the certificate was refused");
  // Further certificates in the same PEM are the chain sent after the leaf.
  while (X509Pointer extra{api.PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)}) {
    // SSL_CTX_add_extra_chain_cert (a macro) takes ownership on success only.
    if (api.SSL_CTX_ctrl(ctx_.get(), SSL_CTRL_EXTRA_CHAIN_CERT, 0, extra.get()) != 1) {
      ThrowOpenSSLError(env, ErrorKind::kConfig, "cert: a chain certificate was refused");
    }
    (void)extra.release();  // hand-over: the SSL_CTX owns it now
  }
  api.ERR_clear_error();  // the end of the PEM input leaves "no start line" behind
}

void TlsContext::LoadPrivateKey(Napi::Env env, Napi::Value pem, Napi::Value passphrase_value) {
  const auto& api = ossl();
  BIOPointer bio = MemoryBio(env, pem.As<Napi::Uint8Array>());
  std::string passphrase;
  bool has_passphrase = passphrase_value.IsString();
  if (has_passphrase) passphrase = passphrase_value.As<Napi::String>().Utf8Value();
  EVPKeyPointer key(api.PEM_read_bio_PrivateKey(bio.get(), nullptr, PassphraseCallback, has_passphrase ? &passphrase : nullptr));
  std::fill(passphrase.begin(), passphrase.end(), '\0');
  // The message never quotes the key or the passphrase, only OpenSSL's reason.
  if (key == nullptr) ThrowOpenSSLError(env, ErrorKind::kConfig, "key: no PEM private key could be read");
  // Takes its own reference; ours goes with `key`.
  if (api.SSL_CTX_use_PrivateKey(ctx_.get(), key.get()) != 1)
    ThrowOpenSSLError(env, ErrorKind::kConfig, "key: the private key was refused");
}

void TlsContext::LoadCa(Napi::Env env, Napi::Value pem) {
  const auto& api = ossl();
  BIOPointer bio = MemoryBio(env, pem.As<Napi::Uint8Array>());
  X509_STORE* store = api.SSL_CTX_get_cert_store(ctx_.get());  // borrowed from the context
  int count = 0;
  while (X509Pointer cert{api.PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)}) {
    // Takes its own reference; ours goes with `cert`.
    if (api.X509_STORE_add_cert(store, cert.get()) != 1) ThrowOpenSSLError(env, ErrorKind::kConfig, "ca: a certificate was refused");
    count++;
  }
  if (count == 0) ThrowOpenSSLError(env, ErrorKind::kConfig, "ca: no PEM certificate could be read");
  api.ERR_clear_error();
}

Napi::Value TlsContext::Flush(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (ctx_ == nullptr) throw MakeError(env, ErrorKind::kState, "the TlsContext was closed");
  // 0 would flush every session, expired or not (SSL_CTX_flush_sessions(3)).
  if (!info[0].IsNumber() || !(info[0].As<Napi::Number>().DoubleValue() >= 1)) {
    throw MakeError(env, ErrorKind::kInvalidArgument, "flush(seconds) expects a number of seconds >= 1");
  }
  // The remove callback runs with the SSL_CTX lock held inside SSL_CTX_flush_sessions.
  if (engine().InOpenSSL()) throw MakeError(env, ErrorKind::kState, "flushSessions cannot run inside a session callback");
  ClearErrorOnReturn clear_errors;
  TlsEngine::CallScope scope(&engine());
  ossl().SSL_CTX_flush_sessions(ctx_.get(), static_cast<long>(info[0].As<Napi::Number>().Int64Value()));
  return env.Undefined();
}

Napi::Value TlsContext::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (ctx_ == nullptr) throw MakeError(env, ErrorKind::kState, "the TlsContext was closed");
  ClearErrorOnReturn clear_errors;
  SSL_CTX* ctx = ctx_.get();
  const auto& api = ossl();
  // SSL_CTX_sess_number & co. are macros over SSL_CTX_ctrl; none of them takes the lock.
  auto stat = [&](int cmd) { return Napi::Number::New(env, static_cast<double>(api.SSL_CTX_ctrl(ctx, cmd, 0, nullptr))); };
  Napi::Object out = Napi::Object::New(env);
  out.Set("size", stat(SSL_CTRL_SESS_NUMBER));
  out.Set("maxSize", stat(SSL_CTRL_GET_SESS_CACHE_SIZE));
  out.Set("timeout", Napi::Number::New(env, static_cast<double>(api.SSL_CTX_get_timeout(ctx))));
  out.Set("connect", stat(SSL_CTRL_SESS_CONNECT));
  out.Set("connectGood", stat(SSL_CTRL_SESS_CONNECT_GOOD));
  out.Set("accept", stat(SSL_CTRL_SESS_ACCEPT));
  out.Set("acceptGood", stat(SSL_CTRL_SESS_ACCEPT_GOOD));
  out.Set("hits", stat(SSL_CTRL_SESS_HIT));
  out.Set("callbackHits", stat(SSL_CTRL_SESS_CB_HIT));
  out.Set("misses", stat(SSL_CTRL_SESS_MISSES));
  out.Set("timeouts", stat(SSL_CTRL_SESS_TIMEOUTS));
  out.Set("cacheFull", stat(SSL_CTRL_SESS_CACHE_FULL));
  return out;
}

// Replaces the context's ticket keys with copies of `keys` (an array of 48-byte Uint8Arrays,
// first = current). The first call also installs OnTicketKey; until then OpenSSL uses its own
// internal keys, as before. Nothing is changed unless every key is valid.
Napi::Value TlsContext::SetTicketKeys(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (ctx_ == nullptr) throw MakeError(env, ErrorKind::kState, "the TlsContext was closed");
  if (!server_) throw MakeError(env, ErrorKind::kState, "setTicketKeys is for server contexts");
  if (!tickets_) throw MakeError(env, ErrorKind::kState, "setTicketKeys needs a context created with tickets: true");
  // The messages name positions and lengths only, never bytes.
  if (!info[0].IsArray()) throw MakeError(env, ErrorKind::kInvalidArgument, "setTicketKeys(keys) expects an array of 48-byte Uint8Arrays");
  Napi::Array array = info[0].As<Napi::Array>();
  uint32_t count = array.Length();
  if (count == 0 || count > kMaxTicketKeys) {
    throw MakeError(env, ErrorKind::kInvalidArgument, "setTicketKeys(keys) expects 1 to " + std::to_string(kMaxTicketKeys) + " keys");
  }
  auto next = std::make_unique<TicketKeyList>(count);  // cleansed on every exit, thrown or not
  for (uint32_t i = 0; i < count; i++) {
    Napi::Value value = array.Get(i);
    if (!IsUint8Array(value) || value.As<Napi::Uint8Array>().ByteLength() != sizeof(TicketKey)) {
      throw MakeError(env, ErrorKind::kInvalidArgument, "setTicketKeys: keys[" + std::to_string(i) + "] is not a 48-byte Uint8Array");
    }
    memcpy(&(*next)[i], value.As<Napi::Uint8Array>().Data(), sizeof(TicketKey));
    for (uint32_t j = 0; j < i; j++) {
      if (memcmp((*next)[j].name, (*next)[i].name, kTicketPart) == 0) {
        throw MakeError(env, ErrorKind::kInvalidArgument,
                        "setTicketKeys: keys[" + std::to_string(i) + "] has the same name as keys[" + std::to_string(j) + "]");
      }
    }
  }
  // No ClearErrorOnReturn: this may run from a listener inside a handshake, whose errors must
  // stay queued; only SSL_CTX_set_ex_data can fail here, and ThrowOpenSSLError drains its error.
  SSL_CTX* ctx = ctx_.get();
  TicketKeyState* state = TicketKeysOf(ctx);
  if (state == nullptr) {
    auto created = std::make_unique<TicketKeyState>();
    created->keys = std::move(next);
    if (ossl().SSL_CTX_set_ex_data(ctx, TicketKeyIndex(), created.get()) != 1) {
      ThrowOpenSSLError(env, ErrorKind::kOpenSSL, "cannot store the ticket keys");
    }
    (void)created.release();  // hand-over: the SSL_CTX's ex_data owns it (FreeTicketKeys)
    // Keys first, then the callback: it always finds keys. Returns 1 (a setter).
    ossl().SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, OnTicketKey);
  } else {
    // The previous list is cleansed and freed as `next` goes out of scope. No handshake can be
    // inside OnTicketKey now (it calls no JavaScript), and it keeps no pointer into the list.
    std::swap(state->keys, next);
  }
  return env.Undefined();
}

Napi::Value TlsContext::TicketKeyStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (ctx_ == nullptr) throw MakeError(env, ErrorKind::kState, "the TlsContext was closed");
  const TicketKeyState* state = TicketKeysOf(ctx_.get());
  Napi::Object out = Napi::Object::New(env);
  out.Set("keys", Napi::Number::New(env, state != nullptr ? static_cast<double>(state->keys->size()) : 0));
  out.Set("issued", Napi::Number::New(env, state != nullptr ? state->issued : 0));
  out.Set("decrypted", Napi::Number::New(env, state != nullptr ? state->decrypted : 0));
  out.Set("renewed", Napi::Number::New(env, state != nullptr ? state->renewed : 0));
  out.Set("rejected", Napi::Number::New(env, state != nullptr ? state->rejected : 0));
  out.Set("failed", Napi::Number::New(env, state != nullptr ? state->failed : 0));
  return out;
}

Napi::Value TlsContext::Close(const Napi::CallbackInfo& info) {
  ReleaseNative();  // deferred by the engine when called from inside a callback
  dispatch_.Reset();
  return info.Env().Undefined();
}

Napi::Value TlsContext::LiveOwners(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const TlsEngine& engine = AddonData::Get(env)->tls_engine();
  Napi::Object out = Napi::Object::New(env);
  out.Set("count", Napi::Number::New(env, static_cast<double>(engine.owner_count())));
  out.Set("reportedNativeBytes", Napi::Number::New(env, static_cast<double>(engine.reported_native_bytes())));
  return out;
}

TlsContext* TlsContext::FromCtx(SSL_CTX* ctx) {
  return ctx != nullptr ? static_cast<TlsContext*>(ossl().SSL_CTX_get_ex_data(ctx, ContextIndex())) : nullptr;
}

Napi::Value TlsContext::Dispatch(Event event, Napi::Value argument) {
  Napi::Env env = Env();
  return dispatch_.Call({Napi::Number::New(env, event), argument});
}

// new_session_cb: OpenSSL hands us one reference. Returning 1 = we keep it; 0 = OpenSSL frees it.
int TlsContext::OnNewSession(SSL* ssl, SSL_SESSION* session) noexcept {
  MarkPopErrorOnReturn keep_outer_errors;
  bool taken = false;  // once true the reference is ours (handed to JavaScript or freed), whatever happens
  try {
    // The connection's 'session' event takes its own reference (SSL_get1_session).
    if (TlsConnection* connection = TlsConnection::FromSsl(ssl)) connection->QueueNewSession(session);
    TlsContext* self = FromCtx(ossl().SSL_get_SSL_CTX(ssl));
    if (self == nullptr || !self->emit_new_sessions_ || self->dispatch_.IsEmpty() || !self->engine().CanCallJs()) return 0;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    taken = true;
    Napi::Value handle = AdoptSession(env, SessionPointer(session));  // hand-over from OpenSSL
    self->Dispatch(kNewSession, handle);
  } catch (...) {
    // lib/tls/context.ts reports listener errors itself; nothing else is expected here.
  }
  return taken ? 1 : 0;
}

// get_session_cb: the returned session carries a reference for OpenSSL.
SSL_SESSION* TlsContext::OnGetSession(SSL* ssl, const unsigned char* id, int length, int* copy) noexcept {
  *copy = 0;                               // we take OpenSSL's reference ourselves (dup or d2i) before returning the session
  MarkPopErrorOnReturn keep_outer_errors;  // a refused lookup is a cache miss, not a handshake error
  try {
    TlsContext* self = FromCtx(ossl().SSL_get_SSL_CTX(ssl));
    if (self == nullptr || self->dispatch_.IsEmpty() || !self->engine().CanCallJs()) return nullptr;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    Napi::Value result = self->Dispatch(kLookup, Napi::Buffer<uint8_t>::Copy(env, id, static_cast<size_t>(length)));
    if (result.IsNumber()) {
      // A Session or SessionView handle: JavaScript keeps its reference, OpenSSL gets a private
      // copy. Never the caller's own object (up_ref): OpenSSL links the returned session into
      // this context's cache, and an SSL_SESSION has one set of list links, so one object
      // served by two contexts (or handed out by one context's cache and served by another)
      // would sit in two caches and corrupt both (SSL_CTX_add_session(3)).
      SSL_SESSION* found = self->data_->sessions().Find(result.As<Napi::Number>().DoubleValue());
      return found != nullptr ? ossl().SSL_SESSION_dup(found) : nullptr;
    }
    if (IsUint8Array(result)) {
      Napi::Uint8Array der = result.As<Napi::Uint8Array>();
      std::string problem;  // a refused lookup is a cache miss: the reason is not reported
      // Hand-over: the decoded session's only reference is the one OpenSSL receives.
      return DecodeExactDer(der.Data(), der.ByteLength(), &problem).release();
    }
  } catch (...) {
  }
  return nullptr;
}

// remove_cb: the session is borrowed; OpenSSL may free it as soon as we return.
void TlsContext::OnRemoveSession(SSL_CTX* ctx, SSL_SESSION* session) noexcept {
  MarkPopErrorOnReturn keep_outer_errors;
  TlsContext* self = FromCtx(ctx);
  if (self == nullptr || self->dispatch_.IsEmpty() || !self->engine().CanCallJs()) return;
  SessionTable& table = self->data_->sessions();
  SessionHandle view = 0;
  try {
    view = table.Lend(session);
    if (view == 0) return;
    Napi::HandleScope scope(self->Env());
    self->Dispatch(kRemoveSession, Napi::Number::New(self->Env(), view));
  } catch (...) {
  }
  if (view != 0) table.Release(view, ReleaseReason::kExplicit);  // the loan ends with the callback
}

// Records a no_renegotiation alert this side sent, so that the error that usually follows
// (the peer's fatal alert) can name the cause. No JavaScript, nothing that can throw.
void TlsContext::OnInfo(const SSL* ssl, int where, int value) noexcept {
  if ((where & SSL_CB_WRITE_ALERT) == 0 || (value & 0xff) != SSL_AD_NO_RENEGOTIATION) return;
  if (TlsConnection* connection = TlsConnection::FromSsl(const_cast<SSL*>(ssl))) connection->NoteRenegotiationRefused();
}

int TlsContext::OnAlpnSelect(SSL* ssl, const unsigned char** out, unsigned char* out_length, const unsigned char* in,
                             unsigned int in_length, void* arg) noexcept {
  auto* wire = static_cast<std::string*>(ossl().SSL_CTX_get_ex_data(ossl().SSL_get_SSL_CTX(ssl), AlpnIndex()));
  if (wire == nullptr) return SSL_TLSEXT_ERR_NOACK;
  unsigned char* selected = nullptr;
  const std::string& server = *wire;
  int status = ossl().SSL_select_next_proto(&selected, out_length, reinterpret_cast<const unsigned char*>(server.data()),
                                            static_cast<unsigned int>(server.size()), in, in_length);
  if (status != OPENSSL_NPN_NEGOTIATED) return SSL_TLSEXT_ERR_NOACK;  // no overlap: continue without ALPN
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// The ticket-key callback, inside SSL_do_handshake (or the SSL_read/SSL_write that sends a TLS
// 1.3 NewSessionTicket). Reads the keys from the SSL_CTX's ex_data, so it works the same after
// ctx.close() for connections still running; no JavaScript, nothing that can throw.
//   encrypt: keys[0] seals; a fresh random IV; returns 1.
//   decrypt: the key named by the ticket opens it; 1 when it is keys[0], 2 (renew: OpenSSL
//            issues a new ticket under keys[0]) for an older key, 0 for an unknown name (no
//            resumption from this ticket: full handshake, and the client gets a new ticket).
//   -1: RAND or EVP failed (OpenSSL fails the handshake).
int TlsContext::OnTicketKey(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac,
                            int encrypt) noexcept {
  MarkPopErrorOnReturn keep_outer_errors;
  const auto& api = ossl();
  TicketKeyState* state = TicketKeysOf(api.SSL_get_SSL_CTX(ssl));
  if (state == nullptr || state->keys->size() == 0) return 0;  // not reached: the keys are stored before the callback
  const TicketKeyList& keys = *state->keys;
  size_t found = 0;
  if (encrypt) {
    // AES-128-CBC's IV is one block (16 bytes <= EVP_MAX_IV_LENGTH).
    if (api.RAND_bytes(iv, static_cast<int>(kTicketPart)) != 1) {
      state->failed++;
      return -1;
    }
    memcpy(name, keys[0].name, kTicketPart);
  } else {
    // Names are public (they precede every ticket in clear): memcmp is fine.
    while (found < keys.size() && memcmp(keys[found].name, name, kTicketPart) != 0) found++;
    if (found == keys.size()) {
      state->rejected++;
      return 0;
    }
  }
  const TicketKey& key = keys[found];
  // The MAC context is OpenSSL's HMAC; it copies the key. The cipher context copies its schedule.
  char digest[] = "SHA256";
  OSSL_PARAM params[3] = {api.OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(key.hmac), kTicketPart),
                          api.OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), api.OSSL_PARAM_construct_end()};
  int ok = api.EVP_MAC_CTX_set_params(mac, params) == 1 &&
           (encrypt ? api.EVP_EncryptInit_ex(cipher, api.EVP_aes_128_cbc(), nullptr, key.aes, iv)
                    : api.EVP_DecryptInit_ex(cipher, api.EVP_aes_128_cbc(), nullptr, key.aes, iv)) == 1;
  if (!ok) {
    state->failed++;
    return -1;
  }
  if (encrypt) {
    state->issued++;
    return 1;
  }
  if (found == 0) {
    state->decrypted++;
    return 1;
  }
  state->renewed++;
  return 2;
}

}  // namespace tls_session
