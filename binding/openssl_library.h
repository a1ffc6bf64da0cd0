// Loads the system libssl/libcrypto in isolation from Node's bundled OpenSSL and binds the
// function table. Process-wide: loaded once, shared by every environment (main and workers).
#ifndef TLS_SESSION_OPENSSL_LIBRARY_H_
#define TLS_SESSION_OPENSSL_LIBRARY_H_

#include <stdint.h>

#include <string>
#include <utility>
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
  bool ok;                       // that file, and inside the very copy that was bound
};

// Address ranges of the loaded segments of one shared object (or of several).
struct MappedRanges {
  std::vector<std::pair<uintptr_t, uintptr_t>> ranges;
  bool Contains(const void* address) const {
    auto a = reinterpret_cast<uintptr_t>(address);
    for (const auto& r : ranges) {
      if (a >= r.first && a < r.second) return true;
    }
    return false;
  }
  void Add(const MappedRanges& other) { ranges.insert(ranges.end(), other.ranges.begin(), other.ranges.end()); }
};

// How the library was obtained (docs/ARCHITECTURE.md, "Binding the system OpenSSL, provably").
enum class LoadWay {
  kIsolated,          // dlopen'ed by us, RTLD_DEEPBIND: the usual case
  kReused,            // the libssl.so.3 another module had loaded, proven self-contained
  kPrivateNamespace,  // a private copy in its own link-map namespace (dlmopen)
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
  LoadWay loaded_as() const { return loaded_as_; }
  static const char* LoadWayName(LoadWay way);
  // Why each way tried before the one taken was not taken (empty for kIsolated).
  const std::vector<std::string>& fallback_reasons() const { return fallback_reasons_; }
  // Link-map namespace of the pair (0: the process's default namespace).
  long namespace_id() const { return namespace_id_; }
  // Imports of the private copy rebound to the process's own libc (kPrivateNamespace only).
  int imports_rebound() const { return imports_rebound_; }

  // Re-runs dladdr on every bound function.
  std::vector<SymbolOrigin> ProveOrigins() const;

 private:
  enum class Outcome { kLoaded, kUnsound, kFatal };

  bool LoadImpl(std::string* error);
  Outcome LoadIsolated(const std::string& libssl_name, std::string* why);
  Outcome LoadPrivateNamespace(const std::string& libssl_name, std::string* why);
  // Proves (and, for the namespace LoadPrivateNamespace just created, first rebinds) the pair
  // that `libssl_handle` maps, then binds the table. Leaves the object empty (Reset) unless it
  // returns kLoaded.
  Outcome Adopt(void* libssl_handle, LoadWay way, bool fresh_namespace, std::string* why);
  void Reset();

  OpenSSLApi api_;
  void* libssl_handle_ = nullptr;
  void* libcrypto_handle_ = nullptr;
  std::string libssl_path_;
  std::string libcrypto_path_;
  MappedRanges libssl_ranges_;
  MappedRanges libcrypto_ranges_;
  std::string version_text_;
  unsigned long version_number_ = 0;
  bool deepbind_ = true;
  int relocations_checked_ = 0;
  LoadWay loaded_as_ = LoadWay::kIsolated;
  std::vector<std::string> fallback_reasons_;
  long namespace_id_ = 0;
  int imports_rebound_ = 0;
};

// The bound table. Valid only after Load succeeded (the module refuses to initialise otherwise).
const OpenSSLApi& ossl();

}  // namespace tls_session

#endif  // TLS_SESSION_OPENSSL_LIBRARY_H_
