/**
 * The garbage-collection safety net for owned sessions, and what it reports.
 *
 * Every owned Session ends up registered in a FinalizationRegistry; free() unregisters it. When
 * the GC collects a Session that was never freed, the registry's callback releases its native
 * reference (the native table makes that idempotent: a reference is never released twice) and,
 * depending on the mode, warns with code TLS_SESSION_LEAK.
 *
 * Registration is deferred to the end of the current turn of the event loop (or to every
 * PENDING_LIMIT sessions): V8 charges ~600 ns per registration, more than the rest of
 * fromDER + toDER + free together, and most sessions (decode, use, free in one callback) are
 * freed before then and never need it. Until registered, a session is held by the pending list,
 * so it cannot be collected unnoticed; one dropped without free() is registered at the flush
 * and collected later. In 'trace' mode registration is immediate, to keep the creation stack.
 *
 * Memory (`npm run bench:gc`): the registry's callbacks run only after a full collection, and
 * only between tasks — never inside a synchronous loop, whatever is registered. V8 starts a full
 * collection when the external memory the binding reports (EstimateSessionBytes, a measured
 * size) has grown by 64 MiB, so that plus one turn's sessions is what dropped sessions pile up
 * to. Deferral does not raise that peak (measured: the same with immediate registration); it
 * only lets the sessions of the turn a collection happens in (at most PENDING_LIMIT) wait for
 * the next one.
 */
import { native, ReleaseReason, type NativeHandle } from './binding';
import { invalidArgValue } from './errors';

/** 'off': silent. 'count' (default): one summary warning per burst of leaks. 'trace': one warning per leak, with the stack that created the session. */
export type LeakDetectionMode = 'off' | 'count' | 'trace';

const LEAK_WARNING_CODE = 'TLS_SESSION_LEAK';
let mode: LeakDetectionMode = 'count';
let pendingLeaks = 0;

/** In 'trace' mode the held value also carries the creation site. */
type Held = NativeHandle | { handle: NativeHandle; createdAt: string };

const registry = new FinalizationRegistry<Held>((held) => {
  const handle = typeof held === 'number' ? held : held.handle;
  if (!native.release(handle, ReleaseReason.Gc)) return;
  if (mode === 'trace' && typeof held !== 'number') {
    const stack = held.createdAt.split('\n').slice(1).join('\n');
    process.emitWarning(`A tls-session Session was garbage-collected without free(); it was created at:\n${stack}`, {
      code: LEAK_WARNING_CODE,
      type: 'TlsSessionLeakWarning',
    });
  } else if (mode !== 'off') {
    if (pendingLeaks++ === 0) setTimeout(reportLeakBurst, 0).unref();
  }
});

function reportLeakBurst(): void {
  const count = pendingLeaks;
  pendingLeaks = 0;
  if (count === 0 || mode === 'off') return;
  process.emitWarning(
    `${count} tls-session Session(s) were garbage-collected without free(); ` +
      "free them (or use `using`), or call setLeakDetection('trace') to see where they were created.",
    { code: LEAK_WARNING_CODE, type: 'TlsSessionLeakWarning' },
  );
}

export function setLeakDetection(next: LeakDetectionMode): void {
  if (next !== 'off' && next !== 'count' && next !== 'trace') {
    throw invalidArgValue('mode', "'off', 'count' or 'trace'", String(next));
  }
  mode = next;
}

export function getLeakDetection(): LeakDetectionMode {
  return mode;
}

/** Set on an owner once it is in the registry, so free() unregisters only what was registered. */
export const kRegistered: unique symbol = Symbol('tls-session.registered');

/** What the safety net needs to know of an owner. */
export interface TrackedOwner {
  readonly freed: boolean;
  [kRegistered]: boolean;
}

const PENDING_LIMIT = 4096;
const pendingOwners: TrackedOwner[] = [];
const pendingHandles: NativeHandle[] = [];
let flushScheduled = false;

function flushPending(): void {
  flushScheduled = false;
  for (let i = 0; i < pendingOwners.length; i++) {
    const owner = pendingOwners[i]!;
    if (!owner.freed) {
      registry.register(owner, pendingHandles[i]!, owner);
      owner[kRegistered] = true;
    }
  }
  pendingOwners.length = 0;
  pendingHandles.length = 0;
}

/** Makes sure `owner`'s reference is released if it is collected without free(). */
export function trackOwner(owner: TrackedOwner, handle: NativeHandle): void {
  if (mode === 'trace') {
    // The stack is formatted at once: an unformatted Error keeps its frames' receivers (the
    // session itself) alive, and the safety net would never fire.
    registry.register(owner, { handle, createdAt: new Error('created here').stack ?? '' }, owner);
    owner[kRegistered] = true;
    return;
  }
  pendingOwners.push(owner);
  pendingHandles.push(handle);
  if (pendingOwners.length >= PENDING_LIMIT) {
    flushPending();
  } else if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flushPending).unref();
  }
}

/** free() ran: the registry must not hold the owner any longer. */
export function untrackOwner(owner: TrackedOwner): void {
  if (owner[kRegistered]) registry.unregister(owner);
}
