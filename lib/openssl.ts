/** Which OpenSSL the binding calls, with the dladdr proof behind it. */
import { native, type OpenSSLLoadWay, type SymbolOrigin } from './binding';

export interface OpenSSLInfo {
  /** OpenSSL_version(OPENSSL_VERSION) of the bound library, e.g. 'OpenSSL 3.0.22 25 Aug 2026'. */
  readonly version: string;
  /** OpenSSL_version_num() of the bound library. */
  readonly versionNumber: number;
  /** Absolute path of the libssl file that provides the libssl functions. */
  readonly libssl: string;
  /** Absolute path of the libcrypto file that provides the libcrypto functions. */
  readonly libcrypto: string;
  /** How many of libssl's and libcrypto's own symbol references were proven, at load, to be bound inside the pair (not to Node's copy). */
  readonly relocationsChecked: number;
  /**
   * How the library was obtained: `'isolated'` (loaded by tls-session with RTLD_DEEPBIND, the
   * usual case), `'reused'` (the libssl.so.3 another module had already loaded, proven
   * self-contained), or `'private-namespace'` (another module had loaded libssl.so.3 bound to
   * Node's OpenSSL, so tls-session uses a private copy in its own link-map namespace).
   */
  readonly loadedAs: OpenSSLLoadWay;
  /** Why each way tried before `loadedAs` was not taken (empty when `loadedAs` is `'isolated'`). */
  readonly fallbackReasons: readonly string[];
  /** The link-map namespace of the bound copy: 0 is the process's own, above 0 a private one (dlmopen). */
  readonly linkMapNamespace: number;
  /** Imports of the private copy rebound from the namespace's own libc to the process's (`'private-namespace'` only; else 0). */
  readonly importsRebound: number;
}

export const openssl: OpenSSLInfo = Object.freeze({
  version: native.openssl.version,
  versionNumber: native.openssl.versionNumber,
  libssl: native.openssl.libssl,
  libcrypto: native.openssl.libcrypto,
  relocationsChecked: native.openssl.relocationsChecked,
  loadedAs: native.openssl.loadedAs,
  fallbackReasons: Object.freeze([...native.openssl.fallbackReasons]),
  linkMapNamespace: native.openssl.linkMapNamespace,
  importsRebound: native.openssl.importsRebound,
});

/**
 * Re-runs dladdr on every OpenSSL function the binding calls and reports the file that
 * provides it. The binding refuses to load unless every row is `ok`; this shows it.
 */
export function proveOpenSSLBinding(): SymbolOrigin[] {
  return native.proveSymbols();
}

export type { OpenSSLLoadWay, SymbolOrigin };
