#include "openssl_library.h"

#include <dlfcn.h>
#include <elf.h>
#include <limits.h>
#include <link.h>
#include <stdlib.h>

#include <cstring>
#include <mutex>
#include <utility>

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
  // The main program is reported by the name it was started with (e.g. "node").
  if (strchr(info.dli_fname, '/') == nullptr) return RealPath("/proc/self/exe");
  return RealPath(info.dli_fname);
}

// Relocation types that bind a symbol to an address, per architecture.
bool IsSymbolBinding(uint32_t type) {
#if defined(__x86_64__)
  return type == R_X86_64_JUMP_SLOT || type == R_X86_64_GLOB_DAT || type == R_X86_64_64;
#elif defined(__aarch64__)
  return type == R_AARCH64_JUMP_SLOT || type == R_AARCH64_GLOB_DAT || type == R_AARCH64_ABS64;
#else
  return false;  // other architectures: only the dladdr proof of entry points
#endif
}

// Proves that the library mapped by `handle` did not have its own references bound to
// another OpenSSL. The entry points' dladdr proof is not enough: without RTLD_DEEPBIND,
// d2i_SSL_SESSION is the system's but its internal call to SSL_SESSION_new binds to Node's
// exported copy (measured). So every symbol relocation of the library (already resolved:
// RTLD_NOW) is read from its GOT, and one that lands outside libssl/libcrypto while libssl or
// libcrypto defines that symbol is interposition. Returns the number of relocations checked.
// Address ranges of the loaded segments of one shared object (to test addresses without
// dladdr/realpath per relocation: thousands of those cost ~200 ms at load).
struct MappedRanges {
  std::vector<std::pair<uintptr_t, uintptr_t>> ranges;
  bool Contains(const void* address) const {
    auto a = reinterpret_cast<uintptr_t>(address);
    for (const auto& r : ranges) {
      if (a >= r.first && a < r.second) return true;
    }
    return false;
  }
};

MappedRanges RangesOf(void* handle) {
  MappedRanges out;
  struct link_map* map = nullptr;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || map == nullptr) return out;
  struct Search {
    ElfW(Addr) base;
    const char* name;
    MappedRanges* out;
  } search{map->l_addr, map->l_name, &out};
  dl_iterate_phdr(
      [](struct dl_phdr_info* info, size_t, void* data) {
        auto* s = static_cast<Search*>(data);
        if (info->dlpi_addr != s->base || info->dlpi_name == nullptr || strcmp(info->dlpi_name, s->name) != 0) return 0;
        for (int i = 0; i < info->dlpi_phnum; i++) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type == PT_LOAD) s->out->ranges.emplace_back(info->dlpi_addr + ph.p_vaddr, info->dlpi_addr + ph.p_vaddr + ph.p_memsz);
        }
        return 1;
      },
      &search);
  return out;
}

int ProveRelocations(void* handle, void* scope_handle, const MappedRanges& pair, std::string* error) {
  struct link_map* map = nullptr;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || map == nullptr) return 0;
  const ElfW(Addr) base = map->l_addr;
  auto absolute = [base](ElfW(Addr) ptr) { return ptr < base ? base + ptr : ptr; };
  const ElfW(Sym)* symtab = nullptr;
  const char* strtab = nullptr;
  const ElfW(Rela) * tables[2] = {nullptr, nullptr};
  size_t sizes[2] = {0, 0};
  for (const ElfW(Dyn)* dyn = map->l_ld; dyn->d_tag != DT_NULL; ++dyn) {
    switch (dyn->d_tag) {
      case DT_SYMTAB:
        symtab = reinterpret_cast<const ElfW(Sym)*>(absolute(dyn->d_un.d_ptr));
        break;
      case DT_STRTAB:
        strtab = reinterpret_cast<const char*>(absolute(dyn->d_un.d_ptr));
        break;
      case DT_JMPREL:
        tables[0] = reinterpret_cast<const ElfW(Rela)*>(absolute(dyn->d_un.d_ptr));
        break;
      case DT_PLTRELSZ:
        sizes[0] = dyn->d_un.d_val;
        break;
      case DT_RELA:
        tables[1] = reinterpret_cast<const ElfW(Rela)*>(absolute(dyn->d_un.d_ptr));
        break;
      case DT_RELASZ:
        sizes[1] = dyn->d_un.d_val;
        break;
      default:
        break;
    }
  }
  if (symtab == nullptr || strtab == nullptr) return 0;
  int checked = 0;
  for (int t = 0; t < 2; t++) {
    if (tables[t] == nullptr) continue;
    for (size_t i = 0; i < sizes[t] / sizeof(ElfW(Rela)); i++) {
      const ElfW(Rela)& rela = tables[t][i];
      uint32_t symbol_index = ELF64_R_SYM(rela.r_info);
      if (symbol_index == 0 || !IsSymbolBinding(ELF64_R_TYPE(rela.r_info))) continue;
      const char* name = strtab + symtab[symbol_index].st_name;
      void* bound = *reinterpret_cast<void* const*>(base + rela.r_offset);
      if (bound == nullptr || name[0] == '\0') continue;
      checked++;
      if (pair.Contains(bound)) continue;
      void* intended = dlsym(scope_handle, name);  // the definition in libssl and its dependencies
      if (intended != nullptr && pair.Contains(intended)) {
        std::string bound_file = OriginOf(bound);
        *error = std::string("tls-session: ") + RealPath(map->l_name) + "'s reference to " + name + " was bound to " +
                 (bound_file.empty() ? "<unknown>" : bound_file) + " instead of " + OriginOf(intended) +
                 " (another OpenSSL copy in this process, e.g. Node's bundled one, interposed it). "
                 "Do not set TLS_SESSION_NO_DEEPBIND, and load tls-session before anything else loads libssl.so.3.";
        return -1;
      }
    }
  }
  return checked;
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
    *error = "tls-session: cannot load the system OpenSSL library '" + libssl_name +
             "': " + (why != nullptr ? why : "unknown dlopen error") + ". " + kFix;
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
      *error =
          std::string("tls-session: symbol ") + name + " is missing from " + file + "; an OpenSSL 3 libssl/libcrypto is required. " + kFix;
      ok = false;
      return;
    }
    std::string origin = OriginOf(fn);
    if (origin != file) {
      *error = std::string("tls-session: symbol ") + name + " resolved to " + (origin.empty() ? "<unknown>" : origin) + " instead of " +
               file + "; refusing to mix OpenSSL copies. " + kFix;
      ok = false;
      return;
    }
    *slot = fn;
  };
#define TLS_SESSION_BIND_SSL(name) bind(libssl_handle_, libssl_path_, #name, reinterpret_cast<void**>(&api_.name));
#define TLS_SESSION_BIND_CRYPTO(name) bind(libcrypto_handle_, libcrypto_path_, #name, reinterpret_cast<void**>(&api_.name));
  TLS_SESSION_LIBSSL_SYMBOLS(TLS_SESSION_BIND_SSL)
  TLS_SESSION_LIBCRYPTO_SYMBOLS(TLS_SESSION_BIND_CRYPTO)
#undef TLS_SESSION_BIND_SSL
#undef TLS_SESSION_BIND_CRYPTO
  if (!ok) return false;

  MappedRanges pair = RangesOf(libssl_handle_);
  MappedRanges crypto_ranges = RangesOf(libcrypto_handle_);
  pair.ranges.insert(pair.ranges.end(), crypto_ranges.ranges.begin(), crypto_ranges.ranges.end());
  if (pair.ranges.empty()) {
    *error = "tls-session: cannot find the mapped segments of " + libssl_path_ + " and " + libcrypto_path_ + ".";
    return false;
  }
  for (void* handle : {libssl_handle_, libcrypto_handle_}) {
    int checked = ProveRelocations(handle, libssl_handle_, pair, error);
    if (checked < 0) return false;
    relocations_checked_ += checked;
  }

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
