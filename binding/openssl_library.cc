#include "openssl_library.h"

#include <dlfcn.h>
#include <elf.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
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

struct link_map* LinkMapOf(void* handle) {
  struct link_map* map = nullptr;
  if (handle == nullptr || dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0) return nullptr;
  return map;
}

// The file a loaded handle maps, as an absolute resolved path.
std::string HandlePath(void* handle) {
  struct link_map* map = LinkMapOf(handle);
  return map != nullptr ? RealPath(map->l_name) : "";
}

std::string OriginOf(const void* fn) {
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

// Where one loaded object lies: its PT_LOAD segments (tested per relocation, without
// dladdr/realpath: thousands of those cost ~200 ms at load), which of them are writable, and
// the pages the loader made read-only after relocation (PT_GNU_RELRO, rounded as glibc does).
// Read from the object's own ELF and program headers, mapped at dladdr's dli_fbase:
// dl_iterate_phdr only lists the caller's namespace (glibc 2.36, measured), and the private
// copy lives in another one.
struct ObjectLayout {
  MappedRanges load;
  MappedRanges writable;
  uintptr_t relro_start = 0;
  uintptr_t relro_end = 0;
};

ObjectLayout LayoutOf(const struct link_map* map) {
  ObjectLayout out;
  Dl_info info;
  struct link_map* owner = nullptr;
  if (map == nullptr || dladdr1(map->l_ld, &info, reinterpret_cast<void**>(&owner), RTLD_DL_LINKMAP) == 0 || owner != map ||
      info.dli_fbase == nullptr) {
    return out;
  }
  const auto* ehdr = static_cast<const ElfW(Ehdr)*>(info.dli_fbase);
  if (memcmp(ehdr->e_ident, ELFMAG, SELFMAG) != 0 || ehdr->e_phentsize != sizeof(ElfW(Phdr))) return out;
  const auto* phdr = reinterpret_cast<const ElfW(Phdr)*>(static_cast<const char*>(info.dli_fbase) + ehdr->e_phoff);
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  for (int i = 0; i < ehdr->e_phnum; i++) {
    const uintptr_t start = map->l_addr + phdr[i].p_vaddr;
    const uintptr_t end = start + phdr[i].p_memsz;
    if (phdr[i].p_type == PT_LOAD) {
      out.load.ranges.emplace_back(start, end);
      if ((phdr[i].p_flags & PF_W) != 0) out.writable.ranges.emplace_back(start, end);
    } else if (phdr[i].p_type == PT_GNU_RELRO) {
      out.relro_start = start & ~(page - 1);
      out.relro_end = end & ~(page - 1);
    }
  }
  return out;
}

// One symbol relocation of a loaded object, with the GOT/data slot the loader wrote.
struct Relocation {
  const char* name;
  const char* version;  // the version it asks an imported symbol at (from DT_VERNEED), or null
  bool defined_here;    // the symbol table entry is a definition, not an import
  uint32_t type;
  ElfW(Sxword) addend;
  void** slot;
};

// Calls visit(const Relocation&) for every relocation of `map` that names a symbol, until it
// returns false. Returns false if the dynamic section lacks a symbol table.
template <typename Visit>
bool ForEachSymbolRelocation(const struct link_map* map, Visit&& visit) {
  const ElfW(Addr) base = map->l_addr;
  // The loader rewrote some d_ptr entries to absolute addresses (DT_SYMTAB...), not others.
  auto absolute = [base](ElfW(Addr) ptr) { return ptr < base ? base + ptr : ptr; };
  const ElfW(Sym)* symtab = nullptr;
  const char* strtab = nullptr;
  const ElfW(Half)* versym = nullptr;
  const char* verneed = nullptr;
  size_t verneed_count = 0;
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
      case DT_VERSYM:
        versym = reinterpret_cast<const ElfW(Half)*>(absolute(dyn->d_un.d_ptr));
        break;
      case DT_VERNEED:
        verneed = reinterpret_cast<const char*>(absolute(dyn->d_un.d_ptr));
        break;
      case DT_VERNEEDNUM:
        verneed_count = dyn->d_un.d_val;
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
  if (symtab == nullptr || strtab == nullptr) return false;
  auto version_of = [&](uint32_t symbol_index) -> const char* {
    if (versym == nullptr || verneed == nullptr) return nullptr;
    const ElfW(Half) wanted = versym[symbol_index] & 0x7fff;
    if (wanted < 2) return nullptr;  // local or global: no version asked
    const char* need = verneed;
    for (size_t i = 0; i < verneed_count; i++) {
      const auto* vn = reinterpret_cast<const ElfW(Verneed)*>(need);
      const char* aux = need + vn->vn_aux;
      for (unsigned j = 0; j < vn->vn_cnt; j++) {
        const auto* vna = reinterpret_cast<const ElfW(Vernaux)*>(aux);
        if (vna->vna_other == wanted) return strtab + vna->vna_name;
        aux += vna->vna_next;
      }
      if (vn->vn_next == 0) break;
      need += vn->vn_next;
    }
    return nullptr;
  };
  for (int t = 0; t < 2; t++) {
    if (tables[t] == nullptr) continue;
    for (size_t i = 0; i < sizes[t] / sizeof(ElfW(Rela)); i++) {
      const ElfW(Rela)& rela = tables[t][i];
      const uint32_t symbol_index = ELF64_R_SYM(rela.r_info);
      if (symbol_index == 0) continue;
      const char* name = strtab + symtab[symbol_index].st_name;
      if (name[0] == '\0') continue;
      Relocation r{name,
                   version_of(symbol_index),
                   symtab[symbol_index].st_shndx != SHN_UNDEF,
                   static_cast<uint32_t>(ELF64_R_TYPE(rela.r_info)),
                   rela.r_addend,
                   reinterpret_cast<void**>(base + rela.r_offset)};
      if (!visit(r)) return true;
    }
  }
  return true;
}

// dladdr names `address` as the start of a symbol called `name` (another version of it).
bool IsStartOfSymbol(const void* address, const char* name) {
  Dl_info info;
  return dladdr(address, &info) != 0 && info.dli_saddr == address && info.dli_sname != nullptr && strcmp(info.dli_sname, name) == 0;
}

// Proves that the object `map` (libssl, libcrypto, or another object private to the pair's
// namespace) does not reach another OpenSSL, nor a private copy of libc. The entry points'
// dladdr proof is not enough: without RTLD_DEEPBIND, d2i_SSL_SESSION is the system's but its
// internal call to SSL_SESSION_new binds to Node's exported copy (measured). So every symbol
// relocation is read from its GOT/data slot, and:
//  - one whose symbol the pair defines (dlsym in libssl's own scope) must hold exactly that
//    definition. Being merely inside the pair is not enough: a slot a lazily bound library
//    (no BIND_NOW, RTLD_LAZY) has not called yet still points at its own PLT stub, and its
//    first call resolves it through the global scope, e.g. to Node's copy, or to an OpenSSL a
//    later RTLD_GLOBAL module brings (measured: dlopen(RTLD_NOW|RTLD_NOLOAD) on such an object
//    binds nothing, glibc 2.36);
//  - one bound into `private_copies` (the namespace's own libc) is refused: see RebindImports.
// Returns the number of relocations checked, or -1 with *why set.
int ProveRelocations(const struct link_map* map, void* scope, const MappedRanges& pair, const MappedRanges& private_copies,
                     std::string* why) {
  int checked = 0;
  bool ok = true;
  const std::string file = RealPath(map->l_name);
  ForEachSymbolRelocation(map, [&](const Relocation& r) {
    if (!IsSymbolBinding(r.type)) {
      // A TLS or copy relocation against an import cannot be rebound to the process's libc.
      if (!private_copies.ranges.empty() && !r.defined_here) {
        *why = file + " has a relocation of type " + std::to_string(r.type) + " against " + r.name +
               ", which cannot be moved out of the private namespace";
        ok = false;
      }
      return ok;
    }
    void* bound = *r.slot;
    if (bound == nullptr) return true;  // an unresolved weak reference (__gmon_start__, ...)
    checked++;
    void* intended = dlsym(scope, r.name);  // the definition in libssl and its dependencies
    if (intended != nullptr && pair.Contains(intended)) {
      if (bound == static_cast<char*>(intended) + r.addend) return true;
      if (pair.Contains(bound) && IsStartOfSymbol(bound, r.name)) return true;  // another version of it
      if (pair.Contains(bound)) {
        *why = file + "'s reference to " + r.name +
               " is not bound yet (lazy binding: its slot still points at its own PLT stub), so its first call "
               "would resolve it through the global scope, where Node's or another module's OpenSSL may come first";
      } else {
        std::string bound_file = OriginOf(bound);
        *why = file + "'s reference to " + r.name + " was bound to " + (bound_file.empty() ? "<unknown>" : bound_file) + " instead of " +
               OriginOf(intended) + " (another OpenSSL copy in this process, e.g. Node's bundled one, interposed it)";
      }
      ok = false;
      return false;
    }
    if (private_copies.Contains(bound)) {
      *why = file + "'s reference to " + r.name + " is bound to the namespace's private copy of " + OriginOf(bound);
      ok = false;
      return false;
    }
    return true;
  });
  return ok ? checked : -1;
}

// A private copy, in the pair's namespace, of a file the default namespace has loaded too.
struct Twin {
  std::string name;  // its l_name
  MappedRanges private_ranges;
  void* process_handle;  // the default namespace's copy
};

// Sorts the objects of the namespace `ssl_map` lives in: `own` gets libssl, libcrypto and any
// object only this namespace has; `twins` gets each private copy of a file the default
// namespace has loaded too (libc.so.6; libpthread, libdl before glibc 2.34). The dynamic
// linker is one object shared by all namespaces: neither.
bool ScanNamespace(struct link_map* ssl_map, struct link_map* crypto_map, std::vector<const struct link_map*>* own,
                   std::vector<Twin>* twins, std::string* why) {
  own->assign({ssl_map, crypto_map});
  const struct link_map* head = ssl_map;
  while (head->l_prev != nullptr) head = head->l_prev;
  for (const struct link_map* m = head; m != nullptr; m = m->l_next) {
    if (m == ssl_map || m == crypto_map) continue;
    void* process = (m->l_name != nullptr && m->l_name[0] != '\0') ? dlopen(m->l_name, RTLD_LAZY | RTLD_NOLOAD) : nullptr;
    if (process == nullptr) {
      own->push_back(m);
      continue;
    }
    const struct link_map* process_map = LinkMapOf(process);
    if (process_map != nullptr && process_map->l_addr == m->l_addr) continue;  // the very same object
    ObjectLayout layout = LayoutOf(m);
    if (layout.load.ranges.empty()) {
      *why = std::string("cannot find the mapped segments of the namespace's copy of ") + m->l_name;
      return false;
    }
    twins->push_back(Twin{m->l_name, layout.load, process});
  }
  return true;
}

// dlmopen gives the namespace its own libc.so.6, and a second libc is not sound for OpenSSL
// (measured, glibc 2.36): its pthread_key_create hands out keys from its own table while the
// per-thread values live in the one thread descriptor, so OpenSSL's keys collide with the
// process's (OpenSSL read another module's thread-specific value as its error state and
// crashed); its ctype tables are set up only on the thread that loaded it (__ctype_b_loc() is
// NULL on every other thread); its environ goes stale when the process's setenv reallocates.
// So, before any OpenSSL code runs beyond its constructors, every import of `map` that the
// loader bound into such a private copy is rebound to the same symbol (name and version) in the
// process's copy, exactly what a RTLD_DEEPBIND load binds it to: the namespace then keeps only
// OpenSSL's own symbol scope, and shares the process's heap, thread-specific data, locale and
// environment. RELRO pages are made writable for the writes and read-only again. Returns the
// number of slots rebound, or -1 with *why set.
int RebindImports(const struct link_map* map, const std::vector<Twin>& twins, std::string* why) {
  const ObjectLayout layout = LayoutOf(map);
  std::vector<std::pair<void**, void*>> writes;
  bool ok = true;
  ForEachSymbolRelocation(map, [&](const Relocation& r) {
    if (!IsSymbolBinding(r.type)) return true;
    for (const Twin& twin : twins) {
      if (!twin.private_ranges.Contains(*r.slot)) continue;
      dlerror();
      void* target = r.version != nullptr ? dlvsym(twin.process_handle, r.name, r.version) : dlsym(twin.process_handle, r.name);
      if (target == nullptr) {
        *why = std::string("cannot rebind ") + r.name + (r.version != nullptr ? std::string("@") + r.version : "") + ": the process's " +
               twin.name + " does not define it";
        ok = false;
        return false;
      }
      writes.emplace_back(r.slot, static_cast<char*>(target) + r.addend);
      break;
    }
    return true;
  });
  if (!ok) return -1;
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  bool in_relro = false;
  for (const auto& [slot, target] : writes) {
    const uintptr_t slot_page = reinterpret_cast<uintptr_t>(slot) & ~(page - 1);
    if (slot_page >= layout.relro_start && slot_page < layout.relro_end) {
      in_relro = true;
    } else if (!layout.writable.Contains(slot)) {
      *why = "a relocation slot of " + RealPath(map->l_name) + " lies outside its writable segments";
      return -1;
    }
  }
  void* relro = reinterpret_cast<void*>(layout.relro_start);
  const size_t relro_size = layout.relro_end - layout.relro_start;
  if (in_relro && mprotect(relro, relro_size, PROT_READ | PROT_WRITE) != 0) {
    *why = "cannot make the RELRO pages of " + RealPath(map->l_name) + " writable: " + strerror(errno);
    return -1;
  }
  for (const auto& [slot, target] : writes) *slot = target;
  if (in_relro && mprotect(relro, relro_size, PROT_READ) != 0) {
    *why = "cannot make the RELRO pages of " + RealPath(map->l_name) + " read-only again: " + strerror(errno);
    return -1;
  }
  return static_cast<int>(writes.size());
}

// glibc's struct mallinfo2 (2.33+), declared here so older headers build too.
struct PrivateMallinfo2 {
  size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};

// After OpenSSL initialised in the namespace: its private libc copies hold no OpenSSL state.
// Their thread-specific key table is still empty (a probe key gets index 0; nothing, not even
// a constructor that ran before the rebinding, took one), and their heap holds no allocation.
bool PrivateCopiesUnused(Lmid_t lmid, const std::vector<Twin>& twins, std::string* why) {
  for (const Twin& twin : twins) {
    void* copy = dlmopen(lmid, twin.name.c_str(), RTLD_LAZY | RTLD_NOLOAD);
    if (copy == nullptr) {
      *why = "cannot inspect the namespace's private " + twin.name;
      return false;
    }
    using KeyCreate = int (*)(pthread_key_t*, void (*)(void*));
    using KeyDelete = int (*)(pthread_key_t);
    auto create = reinterpret_cast<KeyCreate>(dlsym(copy, "pthread_key_create"));
    auto remove = reinterpret_cast<KeyDelete>(dlsym(copy, "pthread_key_delete"));
    if (create != nullptr && remove != nullptr) {
      pthread_key_t probe = 0;
      if (create(&probe, nullptr) == 0) {
        remove(probe);
        if (probe != 0) {
          *why = "the namespace's private " + twin.name + " handed out " + std::to_string(probe) +
                 " thread-specific keys, which collide with the process's";
          return false;
        }
      }
    }
    using Mallinfo2 = PrivateMallinfo2 (*)();
    auto info = reinterpret_cast<Mallinfo2>(dlsym(copy, "mallinfo2"));
    if (info != nullptr) {
      PrivateMallinfo2 heap = info();
      size_t in_use = heap.uordblks + heap.hblkhd;
      auto process_info = reinterpret_cast<Mallinfo2>(dlsym(twin.process_handle, "mallinfo2"));
      // Under a tool that replaces both copies' malloc (one heap), the numbers say nothing.
      bool shared = false;
      if (process_info != nullptr) {
        PrivateMallinfo2 process_heap = process_info();
        shared = memcmp(&heap, &process_heap, sizeof heap) == 0;
      }
      if (in_use != 0 && !shared) {
        *why = "the namespace's private " + twin.name + " heap holds " + std::to_string(in_use) + " bytes";
        return false;
      }
    }
  }
  return true;
}

bool EnvFlagSet(const char* name) {
  const char* value = getenv(name);
  return value != nullptr && value[0] != '\0' && strcmp(value, "0") != 0;
}

}  // namespace

const OpenSSLApi& ossl() { return g_library->api(); }

const char* OpenSSLLibrary::LoadWayName(LoadWay way) {
  switch (way) {
    case LoadWay::kIsolated:
      return "isolated";
    case LoadWay::kReused:
      return "reused";
    case LoadWay::kPrivateNamespace:
      return "private-namespace";
  }
  return "unknown";
}

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

// Three ways, in this order; each is taken only if the proofs in Adopt pass:
//  1. libssl.so.3 is already loaded (by another addon, libpq, ...): reuse that copy;
//  2. otherwise dlopen it ourselves with RTLD_DEEPBIND ("isolated");
//  3. if that was not possible or not sound, a private copy in a new link-map namespace.
// A failure that another way cannot cure (no such file, a missing symbol, not OpenSSL 3) stops
// at once; otherwise the error lists why each way was not taken.
bool OpenSSLLibrary::LoadImpl(std::string* error) {
  const char* requested = getenv("TLS_SESSION_LIBSSL");
  const std::string libssl_name = (requested != nullptr && requested[0] != '\0') ? requested : "libssl.so.3";
  const bool no_deepbind = EnvFlagSet("TLS_SESSION_NO_DEEPBIND");
  std::string why;

  deepbind_ = false;
  if (void* existing = dlopen(libssl_name.c_str(), RTLD_NOW | RTLD_NOLOAD)) {
    const std::string path = HandlePath(existing);
    Outcome outcome = Adopt(existing, LoadWay::kReused, false, &why);
    if (outcome == Outcome::kLoaded) return true;
    dlclose(existing);
    if (outcome == Outcome::kFatal) {
      *error = "tls-session: " + why;
      return false;
    }
    fallback_reasons_.push_back("reusing " + path + ", which another module had already loaded: " + why);
  } else {
    deepbind_ = !no_deepbind;
    Outcome outcome = LoadIsolated(libssl_name, &why);
    if (outcome == Outcome::kLoaded) return true;
    deepbind_ = false;
    if (outcome == Outcome::kFatal) {
      *error = "tls-session: " + why;
      return false;
    }
    fallback_reasons_.push_back(std::string("loading it with dlopen") + (no_deepbind ? "" : " (RTLD_DEEPBIND)") + ": " + why);
  }

  if (no_deepbind) {
    // Sanitizer runs: ASan refuses RTLD_DEEPBIND, and the private namespace bypasses its
    // interceptors just as much.
    fallback_reasons_.push_back("a private link-map namespace (dlmopen) is not tried when TLS_SESSION_NO_DEEPBIND is set");
  } else {
    Outcome outcome = LoadPrivateNamespace(libssl_name, &why);
    if (outcome == Outcome::kLoaded) return true;
    if (outcome == Outcome::kFatal) {
      *error = "tls-session: " + why;
      return false;
    }
    fallback_reasons_.push_back("a private copy in a new link-map namespace (dlmopen): " + why);
  }

  *error = "tls-session: cannot use " + libssl_name + " soundly. ";
  for (size_t i = 0; i < fallback_reasons_.size(); i++) error->append(std::to_string(i + 1) + ") " + fallback_reasons_[i] + ". ");
  error->append(
      "Do not set TLS_SESSION_NO_DEEPBIND, load tls-session before anything else loads libssl.so.3, or set TLS_SESSION_LIBSSL "
      "to a separate copy of libssl.so.3.");
  return false;
}

OpenSSLLibrary::Outcome OpenSSLLibrary::LoadIsolated(const std::string& libssl_name, std::string* why) {
  // A libcrypto.so.3 that another module loaded on its own is already relocated, and libssl
  // would link to that very object: prove it before adding libssl to the default namespace.
  if (void* crypto = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_NOLOAD)) {
    const struct link_map* map = LinkMapOf(crypto);
    std::string reason;
    int checked = map != nullptr ? ProveRelocations(map, crypto, LayoutOf(map).load, MappedRanges(), &reason) : -1;
    const std::string path = HandlePath(crypto);
    dlclose(crypto);
    if (checked < 0) {
      *why = path + " was already loaded by another module and is not self-contained: " + reason;
      return Outcome::kUnsound;
    }
  }
  // RTLD_DEEPBIND makes libssl and the libcrypto it pulls in resolve their own symbols before
  // the process's global scope (where Node exports its bundled OpenSSL). ASan refuses
  // DEEPBIND, so sanitizer runs turn it off and rely on the proofs.
  void* handle = dlopen(libssl_name.c_str(), RTLD_NOW | RTLD_LOCAL | (deepbind_ ? RTLD_DEEPBIND : 0));
  if (handle == nullptr) {
    const char* error = dlerror();
    *why = "cannot load the system OpenSSL library '" + libssl_name + "': " + (error != nullptr ? error : "unknown dlopen error") + ". " +
           kFix;
    return Outcome::kFatal;
  }
  return Adopt(handle, LoadWay::kIsolated, false, why);
}

OpenSSLLibrary::Outcome OpenSSLLibrary::LoadPrivateNamespace(const std::string& libssl_name, std::string* why) {
  // Always a new namespace. Looking for one another copy of this addon made would mean
  // dlmopen(lmid, ..., RTLD_NOLOAD) on namespaces that may not exist, and glibc 2.36 raises
  // "invalid target namespace" with its loader lock still held: the next dlopen on any other
  // thread then blocks for ever (measured with worker threads).
  dlerror();
  void* handle = dlmopen(LM_ID_NEWLM, libssl_name.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* error = dlerror();
    *why = std::string("dlmopen failed: ") + (error != nullptr ? error : "unknown error");
    return Outcome::kUnsound;
  }
  return Adopt(handle, LoadWay::kPrivateNamespace, true, why);
}

void OpenSSLLibrary::Reset() {
  api_ = OpenSSLApi();
  libssl_handle_ = nullptr;
  libcrypto_handle_ = nullptr;
  libssl_path_.clear();
  libcrypto_path_.clear();
  libssl_ranges_ = MappedRanges();
  libcrypto_ranges_ = MappedRanges();
  version_text_.clear();
  version_number_ = 0;
  relocations_checked_ = 0;
  imports_rebound_ = 0;
  namespace_id_ = 0;
}

OpenSSLLibrary::Outcome OpenSSLLibrary::Adopt(void* libssl_handle, LoadWay way, bool fresh_namespace, std::string* why) {
  Reset();
  Outcome outcome = [&]() -> Outcome {
    Lmid_t lmid = LM_ID_BASE;
    if (dlinfo(libssl_handle, RTLD_DI_LMID, &lmid) != 0) {
      *why = "dlinfo(RTLD_DI_LMID) failed";
      return Outcome::kUnsound;
    }
    libssl_handle_ = libssl_handle;
    libssl_path_ = HandlePath(libssl_handle_);
    // The libcrypto that this libssl depends on is already mapped, in libssl's own namespace.
    libcrypto_handle_ =
        lmid == LM_ID_BASE ? dlopen("libcrypto.so.3", RTLD_NOW | RTLD_NOLOAD) : dlmopen(lmid, "libcrypto.so.3", RTLD_NOW | RTLD_NOLOAD);
    if (libcrypto_handle_ == nullptr) {
      *why = libssl_path_ + " did not bring libcrypto.so.3 with it; it is not an OpenSSL 3 libssl. " + kFix;
      return Outcome::kFatal;
    }
    libcrypto_path_ = HandlePath(libcrypto_handle_);
    struct link_map* ssl_map = LinkMapOf(libssl_handle_);
    struct link_map* crypto_map = LinkMapOf(libcrypto_handle_);
    libssl_ranges_ = LayoutOf(ssl_map).load;
    libcrypto_ranges_ = LayoutOf(crypto_map).load;
    if (libssl_ranges_.ranges.empty() || libcrypto_ranges_.ranges.empty()) {
      *why = "cannot find the mapped segments of " + libssl_path_ + " and " + libcrypto_path_;
      return Outcome::kFatal;
    }
    MappedRanges pair = libssl_ranges_;
    pair.Add(libcrypto_ranges_);
    // libssl must link to this very libcrypto, not to another object of the same soname.
    void* probe = dlsym(libssl_handle_, "OpenSSL_version_num");
    if (probe != nullptr && !libcrypto_ranges_.Contains(probe)) {
      *why = libssl_path_ + " takes libcrypto's functions from " + OriginOf(probe) + ", not from the libcrypto.so.3 of its namespace";
      return Outcome::kUnsound;
    }

    std::vector<const struct link_map*> own{ssl_map, crypto_map};
    std::vector<Twin> twins;
    MappedRanges private_copies;
    if (way == LoadWay::kPrivateNamespace) {
      if (!ScanNamespace(ssl_map, crypto_map, &own, &twins, why)) return Outcome::kUnsound;
      for (const Twin& twin : twins) private_copies.Add(twin.private_ranges);
      if (fresh_namespace) {
        for (const struct link_map* map : own) {
          int rebound = RebindImports(map, twins, why);
          if (rebound < 0) return Outcome::kUnsound;
          imports_rebound_ += rebound;
        }
      }
    }

    // Every entry point comes from the file it is listed under, and from this very copy of it.
    Outcome bound = Outcome::kLoaded;
    auto bind = [&](void* handle, const std::string& file, const MappedRanges& ranges, const char* name, void** slot) {
      if (bound != Outcome::kLoaded) return;
      dlerror();
      void* fn = dlsym(handle, name);
      if (fn == nullptr) {
        *why = std::string("symbol ") + name + " is missing from " + file + "; an OpenSSL 3 libssl/libcrypto is required. " + kFix;
        bound = Outcome::kFatal;
        return;
      }
      std::string origin = OriginOf(fn);
      if (origin != file || !ranges.Contains(fn)) {
        *why = std::string("symbol ") + name + " resolved to " + (origin.empty() ? "<unknown>" : origin) +
               (origin == file ? " (another copy of it)" : "") + " instead of " + file + "; refusing to mix OpenSSL copies";
        bound = Outcome::kUnsound;
        return;
      }
      *slot = fn;
    };
#define TLS_SESSION_BIND_SSL(name) bind(libssl_handle_, libssl_path_, libssl_ranges_, #name, reinterpret_cast<void**>(&api_.name));
#define TLS_SESSION_BIND_CRYPTO(name) \
  bind(libcrypto_handle_, libcrypto_path_, libcrypto_ranges_, #name, reinterpret_cast<void**>(&api_.name));
    TLS_SESSION_LIBSSL_SYMBOLS(TLS_SESSION_BIND_SSL)
    TLS_SESSION_LIBCRYPTO_SYMBOLS(TLS_SESSION_BIND_CRYPTO)
#undef TLS_SESSION_BIND_SSL
#undef TLS_SESSION_BIND_CRYPTO
    if (bound != Outcome::kLoaded) return bound;

    for (const struct link_map* map : own) {
      int checked = ProveRelocations(map, libssl_handle_, pair, private_copies, why);
      if (checked < 0) return Outcome::kUnsound;
      relocations_checked_ += checked;
    }

    version_number_ = api_.OpenSSL_version_num();
    version_text_ = api_.OpenSSL_version(OPENSSL_VERSION);
    if ((version_number_ >> 28) < 3) {
      *why = libcrypto_path_ + " is " + version_text_ + "; OpenSSL 3 is required. " + kFix;
      return Outcome::kFatal;
    }
    api_.OPENSSL_init_ssl(0, nullptr);
    if (way == LoadWay::kPrivateNamespace && !PrivateCopiesUnused(lmid, twins, why)) return Outcome::kUnsound;
    namespace_id_ = static_cast<long>(lmid);
    return Outcome::kLoaded;
  }();
  if (outcome == Outcome::kLoaded) {
    loaded_as_ = way;
  } else {
    Reset();
  }
  return outcome;
}

std::vector<SymbolOrigin> OpenSSLLibrary::ProveOrigins() const {
  std::vector<SymbolOrigin> origins;
  auto add = [&](const char* name, void* fn, const char* expected, const std::string& file, const MappedRanges& ranges) {
    std::string origin = OriginOf(fn);
    origins.push_back(SymbolOrigin{name, expected, origin, origin == file && ranges.Contains(fn)});
  };
#define TLS_SESSION_PROVE_SSL(name) add(#name, reinterpret_cast<void*>(api_.name), "libssl", libssl_path_, libssl_ranges_);
#define TLS_SESSION_PROVE_CRYPTO(name) add(#name, reinterpret_cast<void*>(api_.name), "libcrypto", libcrypto_path_, libcrypto_ranges_);
  TLS_SESSION_LIBSSL_SYMBOLS(TLS_SESSION_PROVE_SSL)
  TLS_SESSION_LIBCRYPTO_SYMBOLS(TLS_SESSION_PROVE_CRYPTO)
#undef TLS_SESSION_PROVE_SSL
#undef TLS_SESSION_PROVE_CRYPTO
  return origins;
}

}  // namespace tls_session
