/**
 * Scope: which virtual host a session belongs to. The default is derived from the server's
 * certificate(s), so every server of a fleet serving the same certificate agrees on it, and
 * servers with different certificates never resume each other's sessions.
 *
 * OpenSSL also binds every session to the SSL_CTX's session ID context. Node's default for it
 * is a hash of process.argv, so two fleet members started with different arguments refuse each
 * other's sessions. We replace it with a value derived from the scope (on the main context,
 * every SNI context, and any context set later with setSecureContext), which makes a fleet agree
 * and makes OpenSSL itself refuse a session of another scope.
 */
import { createHash } from 'node:crypto';
import type * as tls from 'node:tls';
import { ScopeError } from './errors';

/** The parts of Node's (undocumented) native SecureContext we use. */
interface NativeSecureContext {
  setSessionIdContext(context: string): void;
  getCertificate(): Buffer | null | undefined;
}

/** tls.Server internals we touch; stable since Node 12 and present on https/http2 secure servers. */
interface ServerInternals {
  _sharedCreds?: { context?: NativeSecureContext };
  _contexts?: Array<[RegExp, NativeSecureContext | { context: NativeSecureContext }]>;
  sessionIdContext?: string;
  setSecureContext(options: tls.SecureContextOptions): void;
  addContext(hostname: string, context: tls.SecureContextOptions): void;
}

function internals(server: tls.Server): ServerInternals {
  return server as unknown as ServerInternals;
}

function nativeOf(context: NativeSecureContext | { context: NativeSecureContext }): NativeSecureContext | undefined {
  if ('setSessionIdContext' in context) return context;
  return (context as { context?: NativeSecureContext }).context;
}

/**
 * The pieces of Node's tls.Server internals that bindSessionIdContext (and, when the scope is to
 * be derived, deriveScope) needs and this server lacks, each named as `server.…`; empty when all
 * are there. Present on Node 20, 22, 24 and 26 (measured); a later Node may change them.
 */
export function missingServerInternals(server: tls.Server, { derivingScope }: { derivingScope: boolean }): string[] {
  const target = internals(server);
  const missing: string[] = [];
  const creds = target._sharedCreds;
  if (creds === null || typeof creds !== 'object') {
    missing.push('server._sharedCreds');
  } else if (creds.context === null || typeof creds.context !== 'object') {
    missing.push('server._sharedCreds.context');
  } else {
    if (typeof creds.context.setSessionIdContext !== 'function') missing.push('server._sharedCreds.context.setSessionIdContext()');
    if (derivingScope && typeof creds.context.getCertificate !== 'function') missing.push('server._sharedCreds.context.getCertificate()');
  }
  if (!Array.isArray(target._contexts)) {
    missing.push('server._contexts (the SNI context list)');
  } else {
    for (const entry of target._contexts as unknown[]) {
      const pair = Array.isArray(entry) ? entry : [];
      const source = (pair[0] as { source?: unknown } | undefined)?.source; // a RegExp (of Node's realm: no instanceof)
      const label = `server._contexts entry ${typeof source === 'string' ? source : '?'}`;
      const native = pair[1] !== null && typeof pair[1] === 'object' ? nativeOf(pair[1] as NativeSecureContext) : undefined;
      if (typeof native?.setSessionIdContext !== 'function') missing.push(`${label}: setSessionIdContext()`);
      else if (derivingScope && typeof native.getCertificate !== 'function') missing.push(`${label}: getCertificate()`);
    }
  }
  if (typeof target.setSecureContext !== 'function') missing.push('server.setSecureContext()');
  if (typeof target.addContext !== 'function') missing.push('server.addContext()');
  return missing;
}

/**
 * 'x509:' + SHA-256 over the default certificate and each SNI context (pattern + certificate),
 * as configured when called. Throws ScopeError when the server has no certificate to read.
 */
export function deriveScope(server: tls.Server): string {
  const main = internals(server)._sharedCreds?.context;
  const certificate = main?.getCertificate();
  if (!main || !Buffer.isBuffer(certificate) || certificate.length === 0) {
    throw new ScopeError('cannot derive a scope: the server has no certificate yet; pass options.scope (a string shared by the fleet)');
  }
  const hash = createHash('sha256').update(certificate);
  for (const [pattern, context] of internals(server)._contexts ?? []) {
    const sniCertificate = nativeOf(context)?.getCertificate();
    hash.update(`\0sni:${pattern.source}\0`);
    if (Buffer.isBuffer(sniCertificate)) hash.update(sniCertificate);
  }
  return `x509:${hash.digest('hex')}`;
}

/** The 32-byte session ID context (hex, as Node's own default is) that stands for a scope. */
export function sessionIdContextFor(scope: string): string {
  return createHash('sha256').update('tls-session/sid_ctx/v1\0').update(scope, 'utf8').digest('hex').slice(0, 32);
}

/**
 * Sets the session ID context on the server's contexts and keeps it on contexts made later
 * (setSecureContext, addContext). Returns a function that restores the previous state.
 */
export function bindSessionIdContext(server: tls.Server, sessionIdContext: string): () => void {
  const target = internals(server);
  const previousContext = target.sessionIdContext;
  const apply = (value: string): void => {
    target.sessionIdContext = value;
    target._sharedCreds?.context?.setSessionIdContext(value);
    for (const [, context] of target._contexts ?? []) nativeOf(context)?.setSessionIdContext(value);
  };
  apply(sessionIdContext);

  const restoreSetSecureContext = wrapMethod(
    target,
    'setSecureContext',
    (original) =>
      function (this: ServerInternals, options) {
        original.call(this, { ...options, sessionIdContext });
        apply(sessionIdContext);
      },
  );
  const restoreAddContext = wrapMethod(
    target,
    'addContext',
    (original) =>
      function (this: ServerInternals, hostname, context) {
        original.call(this, hostname, context);
        apply(sessionIdContext);
      },
  );

  return () => {
    restoreSetSecureContext();
    restoreAddContext();
    if (previousContext !== undefined) apply(previousContext);
  };
}

/** Shadows a method on the instance; the returned function removes the shadow again. */
function wrapMethod<K extends 'setSecureContext' | 'addContext'>(
  target: ServerInternals,
  name: K,
  wrap: (original: ServerInternals[K]) => ServerInternals[K],
): () => void {
  const own = Object.prototype.hasOwnProperty.call(target, name) ? target[name] : undefined;
  target[name] = wrap(target[name]);
  return () => {
    if (own) target[name] = own;
    else delete (target as Partial<ServerInternals>)[name];
  };
}
