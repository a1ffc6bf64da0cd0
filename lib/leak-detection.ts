/**
 * The garbage-collection safety net for owned sessions, and what it reports.
 *
 * Every owned Session is registered here. When the GC collects a Session that was never
 * freed, the registry's callback releases its native reference and, depending on the mode,
 * warns with code TLS_SESSION_LEAK.
 *
 * free() does not unregister. Registering with an unregister token costs V8 about twice as
 * much as without (measured: ~700 vs ~350 ns, more than the rest of Session.fromDER's own
 * overhead), and it is not needed for safety: native handles are never reused (see
 * binding/session_table.cc), so the callback for a session freed earlier finds its handle
 * retired and releases nothing. The native table has the last word; exactly once holds.
 */
import { native, ReleaseReason, type NativeHandle } from './binding';
import { TlsSessionError } from './errors';

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
    process.emitWarning(`A tls-session Session was garbage-collected without free(); it was created at:\n${stack}`,
      { code: LEAK_WARNING_CODE, type: 'TlsSessionLeakWarning' });
  } else if (mode !== 'off') {
    if (pendingLeaks++ === 0) setTimeout(reportLeakBurst, 0).unref();
  }
});

function reportLeakBurst(): void {
  const count = pendingLeaks;
  pendingLeaks = 0;
  if (count === 0 || mode === 'off') return;
  process.emitWarning(`${count} tls-session Session(s) were garbage-collected without free(); ` +
    "free them (or use `using`), or call setLeakDetection('trace') to see where they were created.",
    { code: LEAK_WARNING_CODE, type: 'TlsSessionLeakWarning' });
}

export function setLeakDetection(next: LeakDetectionMode): void {
  if (next !== 'off' && next !== 'count' && next !== 'trace') {
    throw new TlsSessionError('ERR_INVALID_ARG_VALUE', `setLeakDetection: mode must be 'off', 'count' or 'trace'; received ${String(next)}`);
  }
  mode = next;
}

export function getLeakDetection(): LeakDetectionMode {
  return mode;
}

/** Registers `owner` so that its reference is released if it is collected without free(). */
export function trackOwner(owner: object, handle: NativeHandle): void {
  // The stack is formatted at once: an unformatted Error keeps its frames' receivers (the
  // session itself) alive, and the safety net would never fire.
  registry.register(owner, mode === 'trace' ? { handle, createdAt: new Error('created here').stack ?? '' } : handle);
}
