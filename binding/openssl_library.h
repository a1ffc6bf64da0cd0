// Loads the system libssl/libcrypto in isolation from Node's bundled OpenSSL and binds the
// function table. Process-wide: loaded once, shared by every environment (main and workers).
#ifndef TLS_SESSION_OPENSSL_LIBRARY_H_
#define TLS_SESSION_OPENSSL_LIBRARY_H_

#include <string>
#include <vector>

#include "openssl_symbols.h"

namespace tls_session {

// Every function the addon may call, typed as the system headers declare it.
struct OpenSSLApi {
#define TLS_SESSION_DECLARE_MEMBER(name) decltype(&::name) name = nullptr;
  TLS_SESSION_LIBSSL_SYMBOLS(TLS_SESSION_DECLARE_MEMBER)
  TLS_SESSION_LIBCRYPTO_SYMBOLS(TLS_SESSION_DECLARE_MEMBER)
#undef TLS_SESSION_DECLARE_MEMBER
};

// Where one bound function really lives, as dladdr reports it now.
struct SymbolOrigin {
  std::string symbol;
  std::string expected_library;  // "libssl" or "libcrypto"
  std::string file;              // realpath of dladdr's dli_fname
  bool ok;
};

class OpenSSLLibrary {
 public:
  // Loads and proves the library once per process. Returns nullptr and sets *error (naming the
  // file or symbol and the fix) when it cannot; later calls return the same outcome.
  static const OpenSSLLibrary* Load(std::string* error);

  const OpenSSLApi& api() const { return api_; }
  const std::string& libssl_path() const { return libssl_path_; }
  const std::string& libcrypto_path() const { return libcrypto_path_; }
  const std::string& version_text() const { return version_text_; }
  unsigned long version_number() const { return version_number_; }
  bool deepbind() const { return deepbind_; }
  // Symbol relocations of libssl and libcrypto proven bound inside the pair at load.
  int relocations_checked() const { return relocations_checked_; }

  // Re-runs dladdr on every bound function.
  std::vector<SymbolOrigin> ProveOrigins() const;

 private:
  bool LoadImpl(std::string* error);

  OpenSSLApi api_;
  void* libssl_handle_ = nullptr;
  void* libcrypto_handle_ = nullptr;
  std::string libssl_path_;
  std::string libcrypto_path_;
  std::string version_text_;
  unsigned long version_number_ = 0;
  bool deepbind_ = true;
  int relocations_checked_ = 0;
};

// The bound table. Valid only after Load succeeded (the module refuses to initialise otherwise).
const OpenSSLApi& ossl();

}  // namespace tls_session

#endif  // TLS_SESSION_OPENSSL_LIBRARY_H_
