// Process-wide counts of SSL_SESSION references the addon took and released, by path.
#ifndef TLS_SESSION_SESSION_LEDGER_H_
#define TLS_SESSION_SESSION_LEDGER_H_

#include <atomic>
#include <cstdint>

namespace tls_session {

enum class ReleaseReason : int { kExplicit = 0, kGc = 1, kTeardown = 2 };

struct LedgerSnapshot {
  uint64_t acquired;
  uint64_t released_explicit;
  uint64_t released_gc;
  uint64_t released_teardown;
};

class SessionLedger {
 public:
  static void Acquired() { acquired_.fetch_add(1, std::memory_order_relaxed); }
  static void Released(ReleaseReason reason) { released_[static_cast<int>(reason)].fetch_add(1, std::memory_order_relaxed); }
  static LedgerSnapshot Snapshot();

 private:
  static std::atomic<uint64_t> acquired_;
  static std::atomic<uint64_t> released_[3];
};

}  // namespace tls_session

#endif  // TLS_SESSION_SESSION_LEDGER_H_
