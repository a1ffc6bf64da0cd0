// Per-environment table of the SSL_SESSION pointers JavaScript can reach, addressed by handles.
//
// JavaScript never holds a pointer: it holds a number (slot index + generation + ownership bit).
// A stale, forged or already-released handle finds nothing, so misuse from JavaScript cannot
// reach freed memory. An owned slot holds exactly one reference and releases it exactly once
// (explicit free, GC safety net, or environment teardown, whichever comes first). A borrowed
// slot holds none: it is a loan that the lender ends, and it ends by itself when the owned
// slot for the same session is released.
#ifndef TLS_SESSION_SESSION_TABLE_H_
#define TLS_SESSION_SESSION_TABLE_H_

#include <napi.h>

#include <cstdint>
#include <vector>

#include "openssl_library.h"
#include "openssl_pointers.h"
#include "session_ledger.h"

namespace tls_session {

using SessionHandle = double;  // exact integer below 2^53; 0 is never a valid handle

class SessionTable {
 public:
  explicit SessionTable(napi_env env) : env_(env) {}
  ~SessionTable();
  SessionTable(const SessionTable&) = delete;
  SessionTable& operator=(const SessionTable&) = delete;

  // Takes over one reference the caller already holds (d2i, get1, up_ref). `native_bytes` is
  // reported to V8 as external memory so dropped sessions are collected under pressure.
  // Returns 0 when the table is full (the reference is then freed with `session`).
  SessionHandle AdoptOwned(SessionPointer session, size_t native_bytes);
  // Lends `session` without taking a reference; the caller must EndLoan before its own
  // reference can go away.
  SessionHandle Lend(SSL_SESSION* session);

  // The live session behind `handle`, or nullptr.
  SSL_SESSION* Find(SessionHandle handle) const;
  static bool IsBorrowedHandle(SessionHandle handle);

  // Owned: releases the reference (true the first time). Borrowed: ends the loan.
  bool Release(SessionHandle handle, ReleaseReason reason);
  // Ends every loan of `session` (its lender's scope is over).
  void EndLoansOf(const SSL_SESSION* session);
  // Environment teardown: releases every owned reference and ends every loan.
  void ReleaseAll();

  size_t live_owned() const { return live_owned_; }
  // V8's external-memory total as of our last report (what napi_adjust_external_memory returned).
  int64_t v8_external_memory() const { return v8_external_memory_; }
  // The native size of the live owned sessions, as estimated and reported (in steps) to V8.
  int64_t owned_native_bytes() const { return owned_native_bytes_; }

 private:
  // An owned slot holds its reference in `owned` (freed when the slot lets go of it); a
  // borrowed slot only points at the lender's session.
  struct Slot {
    SessionPointer owned;
    SSL_SESSION* borrowed = nullptr;
    uint32_t generation = 1;
    uint32_t native_bytes = 0;
    SSL_SESSION* session() const { return owned != nullptr ? owned.get() : borrowed; }
    bool is_borrowed() const { return borrowed != nullptr; }
  };

  // Puts the session in a free slot; 0 when the table is full.
  SessionHandle Insert(SessionPointer owned, SSL_SESSION* borrowed, size_t native_bytes);
  const Slot* Lookup(SessionHandle handle, uint32_t* index) const;
  // Empties the slot (never reusing its handle) and returns the reference it owned, if any.
  SessionPointer Vacate(uint32_t index);
  void ReportExternal(int64_t delta);

  napi_env env_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
  std::vector<uint32_t> loans_;  // indices of live borrowed slots (few at a time)
  size_t live_owned_ = 0;
  int64_t unreported_bytes_ = 0;
  int64_t v8_external_memory_ = 0;
  int64_t owned_native_bytes_ = 0;
  bool tearing_down_ = false;
};

}  // namespace tls_session

#endif  // TLS_SESSION_SESSION_TABLE_H_
