/**
 * TlsContext: an SSL_CTX on the system OpenSSL and its session cache, with the reference rules
 * of OpenSSL's session callbacks kept exactly (docs/TLS_ENGINE.md, "Callback reference rules"):
 * 'newSession' hands you an owned Session (free it), 'removeSession' lends a SessionView for
 * the duration of the listener, and the lookup function's result is never taken from you.
 */
import { TICKET_KEY_BYTES, TICKET_KEY_PART_BYTES } from '../ticket-key-layout';
import { EventEmitter } from 'node:events';
import { invalidArgType, outOfRange } from '../errors';
import { adoptOwnedHandle, Session, SessionReader, SessionView } from '../session';
import { handleOf, inEngine, tlsNative } from './engine';
import { TlsStateError } from './errors';
import {
  ContextEvent,
  type NativeCacheStats,
  type NativeTicketKeyStats,
  type NativeTlsContext,
  type NativeTlsContextOptions,
} from '../binding';

export type TlsRole = 'client' | 'server';
export type TlsVersion = 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
export type SessionCacheMode = 'off' | 'client' | 'server' | 'both';
type Pem = string | Buffer | Uint8Array;

export interface TlsContextOptions {
  role: TlsRole;
  /** PEM certificate, leaf first; further certificates are sent as its chain. */
  cert?: Pem;
  /** PEM private key (never logged or echoed in errors). */
  key?: Pem;
  /** Passphrase of an encrypted `key`. */
  passphrase?: string;
  /** PEM CA certificate(s) to verify the peer with. A client without `ca` uses the system's default CAs. */
  ca?: Pem | Pem[];
  /** Client: verify the server (default true). Server: with `requestCert`, refuse clients without a valid certificate (default true). */
  rejectUnauthorized?: boolean;
  /** Server: ask clients for a certificate (default false). */
  requestCert?: boolean;
  minVersion?: TlsVersion;
  maxVersion?: TlsVersion;
  /** TLS 1.2 and below cipher list (OpenSSL syntax). */
  ciphers?: string;
  /** TLS 1.3 cipher suites (OpenSSL syntax). */
  ciphersuites?: string;
  /** In preference order (the server's order wins on a server). */
  alpnProtocols?: string[];
  sessionCache?: {
    /** Which side's sessions the internal cache keeps: default the context's role. */
    mode?: SessionCacheMode;
    /** Maximum entries (SSL_CTX_sess_set_cache_size; 0 = unlimited; OpenSSL's default 20480). */
    size?: number;
    /** Session lifetime in seconds (SSL_CTX_set_timeout; OpenSSL's default 300). */
    timeout?: number;
  };
  /** Issue (server) / accept session tickets (default true). Off: TLS 1.2 resumes by session ID, TLS 1.3 by stateful tickets. */
  tickets?: boolean;
  /** Server: the session ID context sessions are bound to (at most 32 bytes; default 'tls-session'). */
  sessionIdContext?: string | Buffer;
}

/** Supplies a server with a session it does not have in its internal cache. Synchronous. */
export type SessionLookup = (id: Buffer) => Session | SessionView | Uint8Array | undefined | null;

/** SSL_CTX_sess_* counters and the cache's size and timeout, as the native context reports them. */
export type SessionCacheStats = NativeCacheStats;

/** What the context's ticket-key callback did since its creation (all 0 and `keys: 0` until setTicketKeys). */
export type TicketKeyStats = NativeTicketKeyStats;

/** The most keys `setTicketKeys` takes (one current, the rest still open tickets). */
const MAX_TICKET_KEYS = 64;

const VERSIONS: readonly string[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];
const CACHE_MODES: readonly string[] = ['off', 'client', 'server', 'both'];

function pemBytes(value: Pem | undefined, name: string): Buffer | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string') return Buffer.from(value);
  if (value instanceof Uint8Array) return Buffer.from(value); // a copy: ours is zeroed after use
  throw invalidArgType(name, 'a PEM string, Buffer or Uint8Array', value);
}

function optionalString(value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw invalidArgType(name, 'a string', value);
  return value;
}

function optionalBoolean(value: unknown, name: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw invalidArgType(name, 'a boolean', value);
  return value;
}

function optionalCount(value: unknown, name: string, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw outOfRange(name, `an integer from 0 to ${max}`, value);
  }
  return value;
}

function alpnWire(protocols: unknown): Buffer | undefined {
  if (protocols === undefined) return undefined;
  if (!Array.isArray(protocols)) throw invalidArgType('options.alpnProtocols', 'an array of strings', protocols);
  const parts: Buffer[] = [];
  for (const p of protocols) {
    if (typeof p !== 'string') throw invalidArgType('options.alpnProtocols', 'an array of strings', protocols);
    const bytes = Buffer.from(p);
    if (bytes.length < 1 || bytes.length > 255) throw outOfRange('options.alpnProtocols', 'names of 1 to 255 bytes', p);
    parts.push(Buffer.from([bytes.length]), bytes);
  }
  return Buffer.concat(parts);
}

function toNativeOptions(options: TlsContextOptions): NativeTlsContextOptions {
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'an object', options);
  const { role } = options;
  if (role !== 'client' && role !== 'server') throw invalidArgType('options.role', "'client' or 'server'", role);
  const server = role === 'server';
  for (const name of ['minVersion', 'maxVersion'] as const) {
    const v = options[name];
    if (v !== undefined && !VERSIONS.includes(v)) throw outOfRange(`options.${name}`, VERSIONS.map((x) => `'${x}'`).join(', '), v);
  }
  const cache = options.sessionCache ?? {};
  if (cache === null || typeof cache !== 'object') throw invalidArgType('options.sessionCache', 'an object', cache);
  const mode = cache.mode ?? role;
  if (!CACHE_MODES.includes(mode)) throw outOfRange('options.sessionCache.mode', "'off', 'client', 'server' or 'both'", mode);
  const cas = options.ca === undefined ? undefined : Array.isArray(options.ca) ? options.ca : [options.ca];
  const ca = cas && Buffer.concat(cas.map((c, i) => Buffer.concat([pemBytes(c, `options.ca[${i}]`)!, Buffer.from('\n')])));
  const rejectUnauthorized = optionalBoolean(options.rejectUnauthorized, 'options.rejectUnauthorized', true);
  const requestCert = optionalBoolean(options.requestCert, 'options.requestCert', false);
  if (!server && options.requestCert !== undefined)
    throw invalidArgType('options.requestCert', 'undefined on a client context', options.requestCert);
  const key = pemBytes(options.key, 'options.key');
  const cert = pemBytes(options.cert, 'options.cert');
  if ((key === undefined) !== (cert === undefined))
    throw invalidArgType(key ? 'options.cert' : 'options.key', 'a PEM string or Buffer (cert and key go together)', undefined);
  if (server && cert === undefined) throw invalidArgType('options.cert', 'a PEM string or Buffer on a server context', undefined);
  const idContext =
    options.sessionIdContext === undefined
      ? undefined
      : Buffer.from(typeof options.sessionIdContext === 'string' ? Buffer.from(options.sessionIdContext) : options.sessionIdContext);
  if (idContext !== undefined && (idContext.length === 0 || idContext.length > 32)) {
    throw outOfRange('options.sessionIdContext', '1 to 32 bytes', idContext.length);
  }
  return {
    server,
    cert,
    key,
    passphrase: optionalString(options.passphrase, 'options.passphrase'),
    ca,
    verifyPeer: server ? requestCert : rejectUnauthorized,
    requirePeerCertificate: server && requestCert && rejectUnauthorized,
    minVersion: options.minVersion,
    maxVersion: options.maxVersion,
    ciphers: optionalString(options.ciphers, 'options.ciphers'),
    ciphersuites: optionalString(options.ciphersuites, 'options.ciphersuites'),
    alpn: alpnWire(options.alpnProtocols),
    cacheMode: mode,
    cacheSize: optionalCount(cache.size, 'options.sessionCache.size', 2 ** 31 - 1),
    cacheTimeout: optionalCount(cache.timeout, 'options.sessionCache.timeout', 2 ** 31 - 1),
    tickets: optionalBoolean(options.tickets, 'options.tickets', true),
    sessionIdContext: idContext,
  };
}

export interface TlsContext {
  /** A new session entered the cache: you own `session` and must free() it (no listener: it is freed for you). */
  on(event: 'newSession', listener: (session: Session) => void): this;
  /** A session left the internal cache (expired, flushed, replaced, failed). The view is valid only during the listener: clone() to keep it. */
  on(event: 'removeSession', listener: (view: SessionView) => void): this;
  /** A listener or the lookup function threw; the error is reported here, after the native call returned. */
  on(event: 'error', listener: (error: Error) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
}

export class TlsContext extends EventEmitter {
  readonly role: TlsRole;
  /** Whether connections verify the peer's certificate (client: rejectUnauthorized; server: requestCert). */
  readonly verifiesPeer: boolean;
  #native: NativeTlsContext | null;
  #lookup: SessionLookup | null = null;
  readonly #tickets: boolean;

  constructor(options: TlsContextOptions) {
    super();
    const nativeOptions = toNativeOptions(options);
    this.role = options.role;
    this.verifiesPeer = nativeOptions.verifyPeer;
    this.#tickets = nativeOptions.tickets;
    // The native object keeps the dispatcher alive; a WeakRef keeps it from keeping us alive.
    const self = new WeakRef(this);
    const dispatch = (event: ContextEvent, argument: unknown): unknown => {
      const ctx = self.deref();
      if (ctx !== undefined) return ctx.#dispatch(event, argument);
      if (event === ContextEvent.NewSession) adoptOwnedHandle(argument as number).free();
      return undefined;
    };
    try {
      this.#native = new tlsNative.NativeTlsContext(nativeOptions, dispatch); // throws TlsConfigError as it is
    } finally {
      nativeOptions.key?.fill(0); // our copy of the key; the caller's is theirs
    }
  }

  /** @internal The native SSL_CTX wrapper for new connections. */
  nativeContext(): NativeTlsContext {
    if (this.#native === null) throw new TlsStateError('the TlsContext was closed');
    return this.#native;
  }

  get closed(): boolean {
    return this.#native === null;
  }

  /**
   * Server: the function OpenSSL's get_session_cb asks for a session ID it does not have. Return
   * a Session or SessionView (you keep yours: OpenSSL takes its own reference), DER bytes, or
   * undefined. Synchronous; `null` removes it.
   */
  setSessionLookup(lookup: SessionLookup | null): this {
    if (lookup !== null && typeof lookup !== 'function') throw invalidArgType('lookup', 'a function or null', lookup);
    if (this.role !== 'server' && lookup !== null) throw new TlsStateError('setSessionLookup is for server contexts');
    this.#lookup = lookup;
    return this;
  }

  /** Removes the sessions expired at `at` (default now) from the internal cache (SSL_CTX_flush_sessions). */
  flushSessions(at: Date = new Date()): void {
    if (!(at instanceof Date) || Number.isNaN(at.getTime())) throw invalidArgType('at', 'a valid Date', at);
    // OpenSSL reads time 0 as "flush every session, expired or not".
    if (at.getTime() < 1000) throw outOfRange('at', 'a Date at or after 1970-01-01T00:00:01Z', at.toISOString());
    if (inEngine()) throw new TlsStateError('flushSessions() cannot run inside a session callback or event (OpenSSL holds the cache lock)');
    const native = this.nativeContext();
    native.flush(Math.floor(at.getTime() / 1000));
  }

  sessionCacheStats(): SessionCacheStats {
    return { ...this.nativeContext().stats() };
  }

  /**
   * Server: the keys that seal and open session tickets (TLS 1.2 tickets, TLS 1.3 stateless
   * tickets), as a rotation with overlap. Each key is 48 bytes in Node's
   * `tls.Server#setTicketKeys` layout — a 16-byte name, a 16-byte HMAC-SHA256 secret, a 16-byte
   * AES-128-CBC key — so one key ring drives Node servers and this engine alike. `keys[0]` seals
   * every new ticket; the others only open tickets, and a ticket opened with one of them is
   * renewed (OpenSSL issues the client a new ticket under `keys[0]`). A ticket whose key is not
   * in the list gets a full handshake (and a new ticket). The keys are copied into native memory
   * owned by the context, wiped when replaced or freed, and never readable from JavaScript;
   * your buffers stay yours. Takes effect for the next ticket; call it again to rotate. Until
   * the first call, OpenSSL's own per-context keys are used.
   */
  setTicketKeys(keys: readonly Uint8Array[]): void {
    if (!Array.isArray(keys)) throw invalidArgType('keys', `an array of ${TICKET_KEY_BYTES}-byte Buffers`, keys);
    if (keys.length < 1 || keys.length > MAX_TICKET_KEYS) throw outOfRange('keys.length', `from 1 to ${MAX_TICKET_KEYS}`, keys.length);
    const names = new Set<string>();
    keys.forEach((key: unknown, i) => {
      // The messages give types and lengths only, never bytes.
      if (!(key instanceof Uint8Array)) throw invalidArgType(`keys[${i}]`, `a ${TICKET_KEY_BYTES}-byte Buffer or Uint8Array`, key);
      if (key.byteLength !== TICKET_KEY_BYTES) {
        throw outOfRange(
          `keys[${i}]`,
          `${TICKET_KEY_BYTES} bytes (16-byte name, 16-byte HMAC secret, 16-byte AES key)`,
          `${key.byteLength} bytes`,
        );
      }
      const name = Buffer.from(key.buffer, key.byteOffset, TICKET_KEY_PART_BYTES).toString('latin1');
      if (names.has(name)) throw outOfRange(`keys[${i}]`, 'a key whose 16-byte name differs from the other keys', 'a repeated name');
      names.add(name);
    });
    if (this.role !== 'server') throw new TlsStateError('setTicketKeys is for server contexts');
    if (!this.#tickets) throw new TlsStateError('setTicketKeys needs a context created with tickets: true');
    this.nativeContext().setTicketKeys(keys as Uint8Array[]);
  }

  /** What the ticket-key callback did since the context was created (counts survive rotations). */
  ticketKeyStats(): TicketKeyStats {
    return { ...this.nativeContext().ticketKeyStats() };
  }

  /**
   * Drops the context's SSL_CTX reference. Live connections keep it alive until they end; no
   * more events are emitted. Idempotent.
   */
  close(): void {
    const native = this.#native;
    this.#native = null;
    native?.close();
  }

  #dispatch(event: ContextEvent, argument: unknown): unknown {
    switch (event) {
      case ContextEvent.NewSession: {
        const session = adoptOwnedHandle(argument as number);
        if (this.listenerCount('newSession') === 0) session.free();
        else this.#emitSafely('newSession', session);
        return undefined;
      }
      case ContextEvent.RemoveSession:
        if (this.listenerCount('removeSession') > 0) this.#emitSafely('removeSession', SessionView.borrow(argument as number));
        return undefined;
      case ContextEvent.Lookup:
        return this.#lookupSession(argument as Buffer);
      default:
        return undefined;
    }
  }

  #lookupSession(id: Buffer): unknown {
    if (this.#lookup === null) return undefined;
    try {
      const found = this.#lookup(id);
      if (found === undefined || found === null) return undefined;
      if (found instanceof SessionReader) return handleOf(found, 'lookup result');
      if (found instanceof Uint8Array) return found;
      throw invalidArgType('lookup result', 'a Session, SessionView, Uint8Array or undefined', found);
    } catch (err) {
      this.#reportLater(err);
      return undefined;
    }
  }

  // A listener's exception must not unwind through OpenSSL: it is re-raised as 'error' once
  // the native call has returned (no 'error' listener: uncaught, like a throwing listener).
  #emitSafely(event: string, argument: unknown): void {
    try {
      this.emit(event, argument);
    } catch (err) {
      this.#reportLater(err);
    }
  }

  #reportLater(err: unknown): void {
    process.nextTick(() => this.emit('error', err));
  }
}
