#include "session_table.h"

#include <algorithm>
#include <cmath>

namespace tls_session {
namespace {

constexpr uint64_t kIndexBits = 24;
constexpr uint64_t kIndexMask = (uint64_t{1} << kIndexBits) - 1;
constexpr uint64_t kBorrowedBit = uint64_t{1} << kIndexBits;
constexpr uint32_t kGenerationLimit = uint32_t{1} << 28;  // keeps handles below 2^53
// V8 hears about native memory in steps, not on every session.
constexpr int64_t kExternalReportStep = 64 * 1024;

SessionHandle Encode(uint32_t index, uint32_t generation, bool borrowed) {
  uint64_t bits = (uint64_t{generation} << (kIndexBits + 1)) | (borrowed ? kBorrowedBit : 0) | index;
  return static_cast<double>(bits);
}

bool Decode(SessionHandle handle, uint32_t* index, uint32_t* generation, bool* borrowed) {
  if (!(handle > 0) || handle >= 9007199254740992.0 || std::floor(handle) != handle) return false;
  uint64_t bits = static_cast<uint64_t>(handle);
  *index = static_cast<uint32_t>(bits & kIndexMask);
  *borrowed = (bits & kBorrowedBit) != 0;
  *generation = static_cast<uint32_t>(bits >> (kIndexBits + 1));
  return true;
}

}  // namespace

SessionTable::~SessionTable() { ReleaseAll(); }

SessionHandle SessionTable::Insert(SessionPointer owned, SSL_SESSION* borrowed, size_t native_bytes) {
  uint32_t index;
  if (!free_slots_.empty()) {
    index = free_slots_.back();
    free_slots_.pop_back();
  } else {
    if (slots_.size() > kIndexMask) return 0;  // `owned`, if any, is freed on return
    index = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  Slot& slot = slots_[index];
  slot.owned = std::move(owned);
  slot.borrowed = borrowed;
  slot.native_bytes = static_cast<uint32_t>(std::min<size_t>(native_bytes, UINT32_MAX));
  return Encode(index, slot.generation, borrowed != nullptr);
}

SessionHandle SessionTable::AdoptOwned(SessionPointer session, size_t native_bytes) {
  SessionHandle handle = Insert(std::move(session), nullptr, native_bytes);
  if (handle == 0) return 0;  // the table was full: the reference went with `session`
  SessionLedger::Acquired();
  live_owned_++;
  ReportExternal(static_cast<int64_t>(native_bytes));
  return handle;
}

SessionHandle SessionTable::Lend(SSL_SESSION* session) {
  SessionHandle handle = Insert(nullptr, session, 0);
  if (handle != 0) loans_.push_back(static_cast<uint32_t>(static_cast<uint64_t>(handle) & kIndexMask));
  return handle;
}

bool SessionTable::IsBorrowedHandle(SessionHandle handle) {
  uint32_t index, generation;
  bool borrowed = false;
  return Decode(handle, &index, &generation, &borrowed) && borrowed;
}

const SessionTable::Slot* SessionTable::Lookup(SessionHandle handle, uint32_t* index) const {
  uint32_t generation;
  bool borrowed;
  if (!Decode(handle, index, &generation, &borrowed) || *index >= slots_.size()) return nullptr;
  const Slot& slot = slots_[*index];
  if (slot.session() == nullptr || slot.generation != generation || slot.is_borrowed() != borrowed) return nullptr;
  return &slot;
}

SSL_SESSION* SessionTable::Find(SessionHandle handle) const {
  uint32_t index;
  const Slot* slot = Lookup(handle, &index);
  return slot != nullptr ? slot->session() : nullptr;
}

SessionPointer SessionTable::Vacate(uint32_t index) {
  Slot& slot = slots_[index];
  SessionPointer owned = std::move(slot.owned);
  slot.borrowed = nullptr;
  slot.native_bytes = 0;
  // A handle is never reused: a slot whose generations are used up is retired, not wrapped.
  // So a stale handle (e.g. from the GC safety net of an already freed Session) finds nothing.
  if (++slot.generation < kGenerationLimit) free_slots_.push_back(index);
  return owned;
}

bool SessionTable::Release(SessionHandle handle, ReleaseReason reason) {
  uint32_t index;
  if (Lookup(handle, &index) == nullptr) return false;
  Slot& slot = slots_[index];
  if (slot.is_borrowed()) {
    loans_.erase(std::remove(loans_.begin(), loans_.end(), index), loans_.end());
    Vacate(index);
    return true;
  }
  int64_t bytes = slot.native_bytes;
  EndLoansOf(slot.session());  // a view must not outlive the reference it was lent from
  Vacate(index).reset();       // SSL_SESSION_free: the one release of this reference
  live_owned_--;
  SessionLedger::Released(reason);
  ReportExternal(-bytes);
  return true;
}

void SessionTable::EndLoansOf(const SSL_SESSION* session) {
  for (size_t i = 0; i < loans_.size();) {
    uint32_t index = loans_[i];
    if (slots_[index].borrowed == session) {
      loans_[i] = loans_.back();
      loans_.pop_back();
      Vacate(index);
    } else {
      ++i;
    }
  }
}

void SessionTable::ReleaseAll() {
  tearing_down_ = true;  // V8 may be gone: report no more external memory
  for (uint32_t index : loans_) Vacate(index);
  loans_.clear();
  for (uint32_t index = 0; index < slots_.size(); ++index) {
    if (slots_[index].owned == nullptr) continue;
    Vacate(index).reset();  // SSL_SESSION_free
    live_owned_--;
    SessionLedger::Released(ReleaseReason::kTeardown);
  }
}

void SessionTable::ReportExternal(int64_t delta) {
  owned_native_bytes_ += delta;
  if (tearing_down_) return;
  unreported_bytes_ += delta;
  if (unreported_bytes_ >= kExternalReportStep || unreported_bytes_ <= -kExternalReportStep) {
    napi_adjust_external_memory(env_, unreported_bytes_, &v8_external_memory_);
    unreported_bytes_ = 0;
  }
}

}  // namespace tls_session
