/**
 * What every lib/tls module shares: the native constructors, whether OpenSSL is on the stack
 * (a callback is running inside a native call), and the handle behind a Session.
 */
import { native, type NativeHandle, type NativeTlsBinding } from '../binding';
import { liveHandleOf, SessionReader } from '../session';
import { invalidArgType } from '../errors';

export const tlsNative: NativeTlsBinding = native;

/**
 * True while a native TLS call is on the stack, i.e. inside a session callback or event
 * emitted from one, whichever call started it (a handshake, a write, destroy(), close()).
 * OpenSSL may hold the SSL_CTX lock there (remove callback), so nothing may call back into it:
 * connections defer their work, flushSessions() refuses. Native code keeps the only count.
 */
export function inEngine(): boolean {
  return tlsNative.inOpenSSL();
}

/** The native handle behind a Session or SessionView (throws its freed/expired error). */
export function handleOf(session: SessionReader, name: string): NativeHandle {
  if (!(session instanceof SessionReader)) throw invalidArgType(name, 'a Session or SessionView', session);
  return liveHandleOf(session);
}

/** Native TLS objects (contexts and connections) still holding OpenSSL state in this thread. */
export function liveTlsObjects(): number {
  return tlsNative.NativeTlsContext.liveOwners().count;
}

/** @internal Bytes of native memory the live contexts and connections reported to V8 (tests). */
export function reportedTlsNativeBytes(): number {
  return tlsNative.NativeTlsContext.liveOwners().reportedNativeBytes;
}
