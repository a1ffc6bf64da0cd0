/**
 * Loads the native addon and types its surface. Nothing outside lib/ should import this:
 * handles are raw numbers and only the classes in session.ts give them meaning.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { OpenSSLError, OpenSSLLoadError, SessionDecodeError, SessionFreedError, SessionViewExpiredError } from './errors';
import { TlsConfigError, TlsProtocolError, TlsStateError } from './tls/errors';
import type { NativeBinding, NativeErrorKind } from './native-types';
// node-gyp-build ships no types; this is the one function used.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const nodeGypBuild = require('node-gyp-build') as { path(dir: string): string };

export type * from './native-types';
export { ReleaseReason, ContextEvent } from './native-types';

/** The package root: lib/ when run from source (tests), dist/lib/ when compiled. */
const packageRoot = existsSync(join(__dirname, '..', 'package.json')) ? join(__dirname, '..') : join(__dirname, '..', '..');

/**
 * Where the addon is: TLS_SESSION_ADDON overrides (e.g. the cmake-js build); else node-gyp-build
 * picks build/Release (a source build) or the prebuilt binary for this platform in prebuilds/.
 */
function addonPath(): string {
  if (process.env.TLS_SESSION_ADDON) return process.env.TLS_SESSION_ADDON;
  try {
    return nodeGypBuild.path(packageRoot);
  } catch {
    throw new OpenSSLLoadError(
      `tls-session: no native addon for ${process.platform}-${process.arch} here: no prebuilt binary matches and none was built ` +
        `from source in ${join(packageRoot, 'build', 'Release')}. Build it: \`npm rebuild tls-session\` (needs g++, make, ` +
        `python3 and the OpenSSL 3 headers, e.g. apt-get install libssl-dev).`,
    );
  }
}

class NativeArgumentError extends TypeError {
  readonly code = 'ERR_INVALID_ARG_TYPE';
}

/**
 * The one table from native error kind to JavaScript class (each class carries its `code`).
 * Native code builds these instances directly: nothing re-wraps them on the way to the caller.
 */
const ERROR_CLASSES: Record<NativeErrorKind, Function> = {
  decode: SessionDecodeError, // ERR_TLS_SESSION_DECODE
  freed: SessionFreedError, // ERR_TLS_SESSION_FREED
  viewExpired: SessionViewExpiredError, // ERR_TLS_SESSION_VIEW_EXPIRED
  openssl: OpenSSLError, // ERR_TLS_SESSION_OPENSSL
  invalidArgument: NativeArgumentError, // ERR_INVALID_ARG_TYPE
  state: TlsStateError, // ERR_TLS_SESSION_STATE
  config: TlsConfigError, // ERR_TLS_SESSION_CONFIG
  protocol: TlsProtocolError, // ERR_TLS_SESSION_PROTOCOL
};

function load(): NativeBinding {
  let binding: NativeBinding;
  const path = addonPath();
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    binding = require(path) as NativeBinding;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ERR_TLS_SESSION_LIBSSL') throw new OpenSSLLoadError(e.message);
    if (e.code === 'MODULE_NOT_FOUND' || /cannot open shared object file/.test(e.message)) {
      throw new OpenSSLLoadError(`tls-session: cannot load the native addon ${path}: ${e.message}. Run \`npm rebuild tls-session\`.`);
    }
    throw err;
  }
  binding.setErrorClasses(ERROR_CLASSES);
  return binding;
}

export const native: NativeBinding = load();
