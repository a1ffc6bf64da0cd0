#include "openssl_library.h"

#include <dlfcn.h>
#include <link.h>
#include <limits.h>
#include <stdlib.h>

#include <cstring>
#include <mutex>

namespace tls_session {
namespace {

const OpenSSLLibrary* g_library = nullptr;
std::string g_load_error;
std::once_flag g_load_once;

const char kFix[] =
    "Install the system OpenSSL 3 library (Debian/Ubuntu: apt-get install libssl3), or set "
    "TLS_SESSION_LIBSSL=/path/to/libssl.so.3 to use another OpenSSL 3 build.";

std::string RealPath(const char* path) {
  char resolved[PATH_MAX];
  if (path != nullptr && realpath(path, resolved) != nullptr) return resolved;
  return path != nullptr ? path : "";
}

// The file a loaded handle maps, as an absolute resolved path.
std::string HandlePath(void* handle) {
  struct link_map* map = nullptr;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || map == nullptr) return "";
  return RealPath(map->l_name);
}

std::string OriginOf(void* fn) {
  Dl_info info;
  if (fn == nullptr || dladdr(fn, &info) == 0 || info.dli_fname == nullptr) return "";
  return RealPath(info.dli_fname);
}

bool EnvFlagSet(const char* name) {
  const char* value = getenv(name);
  return value != nullptr && value[0] != '\0' && strcmp(value, "0") != 0;
}

}  // namespace

const OpenSSLApi& ossl() { return g_library->api(); }

const OpenSSLLibrary* OpenSSLLibrary::Load(std::string* error) {
  std::call_once(g_load_once, [] {
    auto* library = new OpenSSLLibrary();  // process lifetime: never unloaded
    if (library->LoadImpl(&g_load_error)) {
      g_library = library;
    } else {
      delete library;
    }
  });
  if (g_library == nullptr && error != nullptr) *error = g_load_error;
  return g_library;
}

bool OpenSSLLibrary::LoadImpl(std::string* error) {
  const char* requested = getenv("TLS_SESSION_LIBSSL");
  const std::string libssl_name = (requested != nullptr && requested[0] != '\0') ? requested : "libssl.so.3";

  // A libssl that something else already loaded into the global scope resolves its libcrypto
  // calls there, i.e. possibly into Node's bundled copy; dlopen flags cannot re-scope it.
  if (void* existing = dlopen(libssl_name.c_str(), RTLD_NOW | RTLD_NOLOAD)) {
    std::string path = HandlePath(existing);
    dlclose(existing);
    *error = "tls-session: " + path +
             " was already loaded into this process by another module, without symbol isolation, so its "
             "calls may reach Node's bundled OpenSSL. Load tls-session before that module, or set "
             "TLS_SESSION_LIBSSL to a separate copy of libssl.so.3.";
    return false;
  }

  // RTLD_DEEPBIND makes libssl and the libcrypto it pulls in resolve their own symbols before
  // the process's global scope (where Node exports its bundled OpenSSL). ASan refuses
  // DEEPBIND, so sanitizer runs turn it off and rely on the dladdr proof below.
  deepbind_ = !EnvFlagSet("TLS_SESSION_NO_DEEPBIND");
  int flags = RTLD_NOW | RTLD_LOCAL | (deepbind_ ? RTLD_DEEPBIND : 0);
  libssl_handle_ = dlopen(libssl_name.c_str(), flags);
  if (libssl_handle_ == nullptr) {
    const char* why = dlerror();
    *error = "tls-session: cannot load the system OpenSSL library '" + libssl_name + "': " +
             (why != nullptr ? why : "unknown dlopen error") + ". " + kFix;
    return false;
  }
  libssl_path_ = HandlePath(libssl_handle_);

  // The libcrypto that this libssl depends on is already mapped: find it by soname.
  libcrypto_handle_ = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_NOLOAD);
  if (libcrypto_handle_ == nullptr) {
    *error = "tls-session: " + libssl_path_ + " did not bring libcrypto.so.3 with it; it is not an OpenSSL 3 libssl. " + kFix;
    return false;
  }
  libcrypto_path_ = HandlePath(libcrypto_handle_);

  bool ok = true;
  auto bind = [&](void* handle, const std::string& file, const char* name, void** slot) {
    if (!ok) return;
    dlerror();
    void* fn = dlsym(handle, name);
    if (fn == nullptr) {
      *error = std::string("tls-session: symbol ") + name + " is missing from " + file +
               "; an OpenSSL 3 libssl/libcrypto is required. " + kFix;
      ok = false;
      return;
    }
    std::string origin = OriginOf(fn);
    if (origin != file) {
      *error = std::string("tls-session: symbol ") + name + " resolved to " + (origin.empty() ? "<unknown>" : origin) +
               " instead of " + file + "; refusing to mix OpenSSL copies. " + kFix;
      ok = false;
      return;
    }
    *slot = fn;
  };
#define TLS_SESSION_BIND_SSL(name) bind(libssl_handle_, libssl_path_, #name, reinterpret_cast<void**>(&api_.name));
#define TLS_SESSION_BIND_CRYPTO(name) \
  bind(libcrypto_handle_, libcrypto_path_, #name, reinterpret_cast<void**>(&api_.name));
  TLS_SESSION_LIBSSL_SYMBOLS(TLS_SESSION_BIND_SSL)
  TLS_SESSION_LIBCRYPTO_SYMBOLS(TLS_SESSION_BIND_CRYPTO)
#undef TLS_SESSION_BIND_SSL
#undef TLS_SESSION_BIND_CRYPTO
  if (!ok) return false;

  version_number_ = api_.OpenSSL_version_num();
  version_text_ = api_.OpenSSL_version(OPENSSL_VERSION);
  if ((version_number_ >> 28) < 3) {
    *error = "tls-session: " + libcrypto_path_ + " is " + version_text_ + "; OpenSSL 3 is required. " + kFix;
    return false;
  }
  api_.OPENSSL_init_ssl(0, nullptr);
  return true;
}

std::vector<SymbolOrigin> OpenSSLLibrary::ProveOrigins() const {
  std::vector<SymbolOrigin> origins;
  auto add = [&](const char* name, void* fn, const char* expected, const std::string& file) {
    std::string origin = OriginOf(fn);
    origins.push_back(SymbolOrigin{name, expected, origin, origin == file});
  };
#define TLS_SESSION_PROVE_SSL(name) add(#name, reinterpret_cast<void*>(api_.name), "libssl", libssl_path_);
#define TLS_SESSION_PROVE_CRYPTO(name) add(#name, reinterpret_cast<void*>(api_.name), "libcrypto", libcrypto_path_);
  TLS_SESSION_LIBSSL_SYMBOLS(TLS_SESSION_PROVE_SSL)
  TLS_SESSION_LIBCRYPTO_SYMBOLS(TLS_SESSION_PROVE_CRYPTO)
#undef TLS_SESSION_PROVE_SSL
#undef TLS_SESSION_PROVE_CRYPTO
  return origins;
}

}  // namespace tls_session
