/**
 * Scope: which virtual host a session belongs to. The default is derived from the server's
 * certificate(s), so every server of a fleet serving the same certificate agrees on it, and
 * servers with different certificates never resume each other's sessions.
 *
 * OpenSSL also binds every session to the SSL_CTX's session ID context. Node's default for it
 * is a hash of process.argv, so two fleet members started with different arguments refuse each
 * other's sessions. We replace it with a value derived from the scope (on the main context,
 * every SNI context, and any context set later with setSecureContext), which makes a fleet agree
 * and makes OpenSSL itself refuse a session of another scope. What Node then writes into a
 * session is its own affair (since 22.23.5 / 24.22.3: a hash of this value and the SNI name;
 * node-internals.ts, sessionBinding): attachSessionStore follows it, never undoes it.
 */
import { createHash } from 'node:crypto';
import type * as tls from 'node:tls';
import { nativeContextOf, serverInternals, type ServerInternals } from '../../node-internals';
import { ScopeError } from '../errors';

/**
 * 'x509:' + SHA-256 over the default certificate and each SNI context (pattern + certificate),
 * as configured when called. Throws ScopeError when the server has no certificate to read.
 */
export function deriveScope(server: tls.Server): string {
  const main = serverInternals(server)._sharedCreds?.context;
  const certificate = main?.getCertificate();
  if (!main || !Buffer.isBuffer(certificate) || certificate.length === 0) {
    throw new ScopeError('cannot derive a scope: the server has no certificate yet; pass options.scope (a string shared by the fleet)');
  }
  const hash = createHash('sha256').update(certificate);
  for (const [pattern, context] of serverInternals(server)._contexts ?? []) {
    const sniCertificate = nativeContextOf(context)?.getCertificate();
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
  const target = serverInternals(server);
  const previousContext = target.sessionIdContext;
  const apply = (value: string): void => {
    target.sessionIdContext = value;
    target._sharedCreds?.context?.setSessionIdContext(value);
    for (const [, context] of target._contexts ?? []) nativeContextOf(context)?.setSessionIdContext(value);
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
