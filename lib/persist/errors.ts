/**
 * Errors of the persistence layer. Each carries a stable `code`; no message ever includes
 * key material, sealed bytes or session contents.
 */
import { TlsSessionError } from '../errors';

/** Options given to a store, attachSessionStore or TicketKeyRing are invalid (names the option). */
export class PersistConfigError extends TlsSessionError {
  constructor(message: string) {
    super('ERR_TLS_SESSION_PERSIST_CONFIG', message);
  }
}

/** A store backend (SQLite, Redis) failed an operation. */
export class StoreError extends TlsSessionError {
  constructor(message: string, code = 'ERR_TLS_SESSION_STORE') {
    super(code, message);
  }
}

/** A store operation did not finish within its time budget. */
export class StoreTimeoutError extends StoreError {
  constructor(operation: string, budgetMs: number) {
    super(`session store ${operation} did not finish within ${budgetMs} ms`, 'ERR_TLS_SESSION_STORE_TIMEOUT');
  }
}

/** The store (or a ClientSessionCache) was used after close(). */
export class StoreClosedError extends StoreError {
  constructor(message = 'the session store is closed') {
    super(message, 'ERR_TLS_SESSION_STORE_CLOSED');
  }
}

/** A stored record is not in this package's record format (truncated, unknown version, random bytes). */
export class RecordFormatError extends TlsSessionError {
  constructor(message: string) {
    super('ERR_TLS_SESSION_RECORD_FORMAT', message);
  }
}

/** A sealed record failed authentication: tampered, moved to another key, or sealed with an unknown key id. */
export class UnsealError extends TlsSessionError {
  constructor(message: string) {
    super('ERR_TLS_SESSION_UNSEAL', message);
  }
}

/** The default scope could not be derived from the server (no certificate found); pass `scope` explicitly. */
export class ScopeError extends TlsSessionError {
  constructor(message: string) {
    super('ERR_TLS_SESSION_SCOPE', message);
  }
}

/**
 * attachSessionStore needs undocumented parts of Node's tls.Server (the native SecureContext's
 * setSessionIdContext through `server._sharedCreds.context`, and the SNI list `server._contexts`)
 * and the running Node does not have them. Thrown at attach, so a Node that changed them fails
 * loudly at startup instead of silently at handshake time (sessions that never resume across
 * processes). `missing` names each piece; `nodeVersion` is process.version.
 */
export class NodeInternalsError extends TlsSessionError {
  readonly nodeVersion: string;
  readonly missing: readonly string[];
  constructor(missing: readonly string[], nodeVersion: string = process.version) {
    super(
      'ERR_TLS_SESSION_NODE_INTERNALS',
      `attachSessionStore cannot work on Node ${nodeVersion}: the tls.Server internals it sets the session ID context through ` +
        `are missing (${missing.join('; ')}). Without them sessions would silently fail to resume across processes. ` +
        'tls-session is tested on Node 20, 22, 24 and 26; please report this Node version.',
    );
    this.nodeVersion = nodeVersion;
    this.missing = Object.freeze([...missing]);
  }
}

/**
 * A stored session was refused on resumption. 'expired' and 'rejected' (tampered, undecodable,
 * not resumable): the record is deleted. 'incompatible' (another scope, or issued by a Node
 * release that binds sessions differently): the record is kept for the members that can use it.
 */
const RECORD_REFUSAL_CODES = {
  expired: 'ERR_TLS_SESSION_RECORD_EXPIRED',
  rejected: 'ERR_TLS_SESSION_RECORD_REJECTED',
  incompatible: 'ERR_TLS_SESSION_RECORD_INCOMPATIBLE',
} as const;

export class RecordRejectedError extends TlsSessionError {
  readonly reason: 'expired' | 'rejected' | 'incompatible';
  constructor(reason: 'expired' | 'rejected' | 'incompatible', message: string, cause?: unknown) {
    super(RECORD_REFUSAL_CODES[reason], message);
    this.reason = reason;
    if (cause !== undefined) (this as { cause?: unknown }).cause = cause;
  }
}

/**
 * ClientSessionCache: a connection did not complete its TLS handshake within `timeout` (connect)
 * or the connector's connect timeout (createConnector, undici's 10 s by default); the socket was
 * destroyed. `timeoutMs` is the limit that was exceeded.
 */
export class ClientConnectTimeoutError extends TlsSessionError {
  readonly timeoutMs: number;
  constructor(target: string, timeoutMs: number) {
    super('ERR_TLS_SESSION_CONNECT_TIMEOUT', `connection to ${target} did not complete its handshake within ${timeoutMs} ms`);
    this.timeoutMs = timeoutMs;
  }
}
