#include "session_ledger.h"

namespace tls_session {

std::atomic<uint64_t> SessionLedger::acquired_{0};
std::atomic<uint64_t> SessionLedger::released_[3] = {{0}, {0}, {0}};

LedgerSnapshot SessionLedger::Snapshot() {
  // Released before acquired: a concurrent worker can then only make `live` look higher, never negative.
  LedgerSnapshot s{};
  s.released_explicit = released_[0].load(std::memory_order_relaxed);
  s.released_gc = released_[1].load(std::memory_order_relaxed);
  s.released_teardown = released_[2].load(std::memory_order_relaxed);
  s.acquired = acquired_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace tls_session
