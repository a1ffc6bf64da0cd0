/**
 * attachSessionStore: makes a tls.Server (https.Server, http2 secure server) keep its TLS 1.2
 * session-ID sessions in a SessionStore, so they survive restarts and are shared by a fleet.
 * TLS 1.3 resumes through tickets in Node 20 and never through these events: use TicketKeyRing.
 *
 * Nothing here throws into Node's callbacks: every failure is counted, reported to onError,
 * and answered with "no session" so the client simply gets a full handshake.
 */
import type * as tls from 'node:tls';
import { performance } from 'node:perf_hooks';
import { invalidArgType, outOfRange } from '../errors';
import { Session } from '../session';
import { withDeadline } from './deadline';
import { NodeInternalsError, PersistConfigError, RecordFormatError, RecordRejectedError } from './errors';
import { decodeSessionRecord, encodeSessionRecord } from './record';
import { bindSessionIdContext, deriveScope, missingServerInternals, sessionIdContextFor } from './scope';
import { Sealer, Secret, unwrapPlain, wrapPlain } from './seal';
import { StatsCollector, SessionStoreStats } from './stats';
import type { SessionStore } from './store';

export interface AttachSessionStoreOptions {
  store: SessionStore;
  /** Seal records with AES-256-GCM: a 32-byte Buffer, or [{ id, key }, …] (first seals, all open). */
  secret?: Secret;
  /** Which virtual host the sessions belong to (default: derived from the server's certificates). */
  scope?: string;
  /** Largest session DER stored or accepted (default 16 KiB). */
  maxSessionBytes?: number;
  /** Longest a store call may delay a handshake (default 50 ms). */
  budgetMs?: number;
  /** Prefix of every store key (default 'session:'). */
  keyPrefix?: string;
  /** Told about every store failure and refused record; must not throw (if it does, that is ignored). */
  onError?: (error: Error) => void;
}

export interface SessionStoreHandle {
  /** The scope sessions are bound to. */
  readonly scope: string;
  /** The session ID context now set on the server (derived from the scope). */
  readonly sessionIdContext: string;
  stats(): SessionStoreStats;
  /** Removes the listeners and restores the server's previous session ID context. */
  detach(): void;
}

type NewSessionCallback = (err?: Error | null) => void;
type ResumeSessionCallback = (err: Error | null, sessionData: Buffer | null) => void;

const DEFAULT_MAX_SESSION_BYTES = 16 * 1024;

/**
 * Makes `server` keep its TLS 1.2 session-ID sessions in `options.store`. Validates everything
 * up front (typed errors), then attaches; the returned handle detaches again.
 */
export function attachSessionStore(server: tls.Server, options: AttachSessionStoreOptions): SessionStoreHandle {
  if (server === null || typeof server !== 'object' || typeof (server as tls.Server).on !== 'function') {
    throw invalidArgType('server', 'a tls.Server, https.Server or http2 secure server', server);
  }
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'an object', options);
  const { store } = options;
  if (!store || typeof store.get !== 'function' || typeof store.set !== 'function' || typeof store.delete !== 'function') {
    throw invalidArgType('options.store', 'a SessionStore', store);
  }
  const maxSessionBytes = options.maxSessionBytes ?? DEFAULT_MAX_SESSION_BYTES;
  const budgetMs = options.budgetMs ?? 50;
  const keyPrefix = options.keyPrefix ?? 'session:';
  if (!Number.isInteger(maxSessionBytes) || maxSessionBytes < 64)
    throw outOfRange('options.maxSessionBytes', 'an integer >= 64', maxSessionBytes);
  if (!Number.isInteger(budgetMs) || budgetMs < 1) throw outOfRange('options.budgetMs', 'an integer >= 1', budgetMs);
  if (typeof keyPrefix !== 'string') throw invalidArgType('options.keyPrefix', 'of type string', keyPrefix);
  if (options.scope !== undefined && (typeof options.scope !== 'string' || options.scope.length === 0)) {
    throw new PersistConfigError('options.scope must be a non-empty string');
  }
  // Node internals this relies on (the session ID context): checked now, so a Node that changed
  // them fails here with a typed error instead of silently never resuming at handshake time.
  const missing = missingServerInternals(server, { derivingScope: options.scope === undefined });
  if (missing.length > 0) throw new NodeInternalsError(missing);
  const sealer = options.secret !== undefined ? new Sealer(options.secret, 'session-record') : undefined;
  const scope = options.scope ?? deriveScope(server);
  return new SessionStoreAttachment(server, { store, sealer, scope, maxSessionBytes, budgetMs, keyPrefix, onError: options.onError });
}

interface AttachmentConfig {
  store: SessionStore;
  sealer: Sealer | undefined;
  scope: string;
  maxSessionBytes: number;
  budgetMs: number;
  keyPrefix: string;
  onError: ((error: Error) => void) | undefined;
}

/** One server's listeners over one store: newSession stores, resumeSession fetches and checks. */
class SessionStoreAttachment implements SessionStoreHandle {
  readonly scope: string;
  readonly sessionIdContext: string;
  readonly #server: tls.Server;
  readonly #config: AttachmentConfig;
  readonly #expectedIdContext: Buffer;
  readonly #stats = new StatsCollector();
  readonly #restoreSessionIdContext: () => void;
  /** Until the store's ready() settles, store calls wait for it (bounded by the store's start-up budget). */
  #storeReady: Promise<void> | undefined;
  #attached = true;

  constructor(server: tls.Server, config: AttachmentConfig) {
    this.#server = server;
    this.#config = config;
    this.scope = config.scope;
    this.sessionIdContext = sessionIdContextFor(config.scope);
    this.#expectedIdContext = Buffer.from(this.sessionIdContext, 'latin1');
    this.#restoreSessionIdContext = bindSessionIdContext(server, this.sessionIdContext);
    server.on('newSession', this.#onNewSession);
    server.on('resumeSession', this.#onResumeSession);
    this.#storeReady = this.#waitForStore();
  }

  /** Settles when the store's ready() does; a failure is counted and reported, never thrown. */
  #waitForStore(): Promise<void> | undefined {
    const { store } = this.#config;
    if (typeof store.ready !== 'function') return undefined;
    let readiness: Promise<void>;
    try {
      readiness = Promise.resolve(store.ready());
    } catch (error) {
      readiness = Promise.reject(error);
    }
    return readiness.then(
      () => {
        this.#storeReady = undefined;
      },
      (error: Error) => {
        this.#storeReady = undefined;
        this.#stats.errors += 1;
        this.#report(error);
      },
    );
  }

  stats(): SessionStoreStats {
    return this.#stats.snapshot();
  }

  detach(): void {
    if (!this.#attached) return;
    this.#attached = false;
    this.#server.removeListener('newSession', this.#onNewSession);
    this.#server.removeListener('resumeSession', this.#onResumeSession);
    this.#restoreSessionIdContext();
  }

  #report(error: Error): void {
    try {
      this.#config.onError?.(error);
    } catch {
      /* a throwing onError must not reach Node's callbacks */
    }
  }

  #storeKey(sessionId: Buffer): string {
    return this.#config.keyPrefix + sessionId.toString('hex');
  }

  #deleteQuietly(key: string): void {
    withDeadline('delete', this.#config.budgetMs, this.#config.store.delete(key)).catch((error: Error) => {
      this.#stats.errors += 1;
      this.#report(error);
    });
  }

  /** Validates and measures the session; returns the TTL to store it with, or undefined to skip. */
  #admit(sessionData: Buffer): number | undefined {
    const { maxSessionBytes } = this.#config;
    if (sessionData.length > maxSessionBytes) {
      this.#stats.rejected += 1;
      this.#report(new RecordFormatError(`new session of ${sessionData.length} bytes is over maxSessionBytes (${maxSessionBytes})`));
      return undefined;
    }
    const session = Session.fromDER(sessionData, { maxBytes: maxSessionBytes });
    try {
      if (session.protocol === 'TLSv1.3') {
        this.#stats.skippedTls13 += 1;
        return undefined;
      }
      const ttlSeconds = Math.floor((session.expiresAt.getTime() - Date.now()) / 1000);
      if (ttlSeconds < 1) {
        this.#stats.expired += 1;
        return undefined;
      }
      return ttlSeconds;
    } finally {
      session.free();
    }
  }

  // Node's listeners: arrow properties, so that detach() removes exactly these functions.
  readonly #onNewSession = (sessionId: Buffer, sessionData: Buffer, callback: NewSessionCallback): void => {
    this.#store(sessionId, sessionData)
      .catch((error: Error) => this.#report(error))
      .finally(() => callback());
  };

  async #store(sessionId: Buffer, sessionData: Buffer): Promise<void> {
    let ttlSeconds: number | undefined;
    try {
      ttlSeconds = this.#admit(sessionData);
    } catch (error) {
      this.#stats.rejected += 1;
      this.#report(error as Error);
      return;
    }
    if (ttlSeconds === undefined) return;
    const { sealer, store, budgetMs, scope } = this.#config;
    const key = this.#storeKey(sessionId);
    const payload = encodeSessionRecord({ scope, der: sessionData });
    const record = sealer ? sealer.seal(key, payload) : wrapPlain(payload);
    const started = performance.now();
    try {
      if (this.#storeReady) await this.#storeReady;
      await withDeadline('set', budgetMs, store.set(key, record, ttlSeconds));
      this.#stats.stored += 1;
    } catch (error) {
      this.#stats.errors += 1;
      this.#report(error as Error);
    } finally {
      this.#stats.setLatency.record(performance.now() - started);
    }
  }

  /** Opens and checks a fetched record; returns the DER to hand to Node or throws RecordRejectedError. */
  #accept(key: string, sessionId: Buffer, record: Buffer): Buffer {
    const { sealer, scope, maxSessionBytes } = this.#config;
    let der: Buffer;
    try {
      const payload = sealer ? sealer.open(key, record) : unwrapPlain(record);
      const decoded = decodeSessionRecord(payload);
      if (decoded.scope !== scope) throw new RecordRejectedError('rejected', 'stored session belongs to another scope');
      der = decoded.der;
    } catch (error) {
      if (error instanceof RecordRejectedError) throw error;
      throw new RecordRejectedError('rejected', (error as Error).message, error);
    }
    let session: Session;
    try {
      session = Session.fromDER(der, { maxBytes: maxSessionBytes });
    } catch (error) {
      throw new RecordRejectedError('rejected', `stored session does not decode: ${(error as Error).message}`, error);
    }
    try {
      if (!session.id.equals(sessionId))
        throw new RecordRejectedError('rejected', 'stored session has another session ID than the key it is stored under');
      if (!session.idContext.equals(this.#expectedIdContext))
        throw new RecordRejectedError('rejected', 'stored session has another session ID context (scope)');
      if (!session.isResumable) throw new RecordRejectedError('rejected', 'stored session is not resumable');
      if (session.isExpired()) throw new RecordRejectedError('expired', 'stored session has expired');
    } finally {
      session.free();
    }
    return Buffer.from(der);
  }

  readonly #onResumeSession = (sessionId: Buffer, callback: ResumeSessionCallback): void => {
    // Exactly one call back, whatever happens: anything unexpected is a miss.
    this.#lookup(sessionId).then(
      (sessionData) => callback(null, sessionData),
      (error: Error) => {
        this.#report(error);
        callback(null, null);
      },
    );
  };

  async #lookup(sessionId: Buffer): Promise<Buffer | null> {
    const key = this.#storeKey(sessionId);
    const started = performance.now();
    let record: Buffer | undefined;
    try {
      if (this.#storeReady) await this.#storeReady;
      record = await withDeadline('get', this.#config.budgetMs, this.#config.store.get(key));
    } catch (error) {
      this.#stats.errors += 1;
      this.#stats.misses += 1;
      this.#report(error as Error);
      return null;
    } finally {
      this.#stats.getLatency.record(performance.now() - started);
    }
    if (record === undefined) {
      this.#stats.misses += 1;
      return null;
    }
    try {
      const der = this.#accept(key, sessionId, record);
      this.#stats.hits += 1;
      return der;
    } catch (error) {
      const refused = error instanceof RecordRejectedError ? error : new RecordRejectedError('rejected', (error as Error).message);
      if (refused.reason === 'expired') this.#stats.expired += 1;
      else this.#stats.rejected += 1;
      this.#report(refused);
      this.#deleteQuietly(key);
      return null;
    }
  }
}
