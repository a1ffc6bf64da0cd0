/** Which OpenSSL the binding calls, with the dladdr proof behind it. */
import { native, type SymbolOrigin } from './binding';

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
}

export const openssl: OpenSSLInfo = Object.freeze({
  version: native.openssl.version,
  versionNumber: native.openssl.versionNumber,
  libssl: native.openssl.libssl,
  libcrypto: native.openssl.libcrypto,
  relocationsChecked: native.openssl.relocationsChecked,
});

/**
 * Re-runs dladdr on every OpenSSL function the binding calls and reports the file that
 * provides it. The binding refuses to load unless every row is `ok`; this shows it.
 */
export function proveOpenSSLBinding(): SymbolOrigin[] {
  return native.proveSymbols();
}

export type { SymbolOrigin };
