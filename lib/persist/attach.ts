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
import { PersistConfigError, RecordFormatError, RecordRejectedError } from './errors';
import { decodeSessionRecord, encodeSessionRecord } from './record';
import { bindSessionIdContext, deriveScope, sessionIdContextFor } from './scope';
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
  if (!Number.isInteger(maxSessionBytes) || maxSessionBytes < 64) throw outOfRange('options.maxSessionBytes', 'an integer >= 64', maxSessionBytes);
  if (!Number.isInteger(budgetMs) || budgetMs < 1) throw outOfRange('options.budgetMs', 'an integer >= 1', budgetMs);
  if (typeof keyPrefix !== 'string') throw invalidArgType('options.keyPrefix', 'of type string', keyPrefix);
  if (options.scope !== undefined && (typeof options.scope !== 'string' || options.scope.length === 0)) {
    throw new PersistConfigError('options.scope must be a non-empty string');
  }
  const sealer = options.secret !== undefined ? new Sealer(options.secret, 'session-record') : undefined;
  const scope = options.scope ?? deriveScope(server);
  const sessionIdContext = sessionIdContextFor(scope);
  const expectedIdContext = Buffer.from(sessionIdContext, 'latin1');
  const stats = new StatsCollector();

  const report = (error: Error): void => {
    try {
      options.onError?.(error);
    } catch {
      /* a throwing onError must not reach Node's callbacks */
    }
  };
  const storeKey = (sessionId: Buffer): string => keyPrefix + sessionId.toString('hex');
  const deleteQuietly = (key: string): void => {
    withDeadline('delete', budgetMs, store.delete(key)).catch((error: Error) => {
      stats.errors += 1;
      report(error);
    });
  };

  /** Validates and measures the session; returns the TTL to store it with, or undefined to skip. */
  const admit = (sessionData: Buffer): number | undefined => {
    if (sessionData.length > maxSessionBytes) {
      stats.rejected += 1;
      report(new RecordFormatError(`new session of ${sessionData.length} bytes is over maxSessionBytes (${maxSessionBytes})`));
      return undefined;
    }
    const session = Session.fromDER(sessionData, { maxBytes: maxSessionBytes });
    try {
      if (session.protocol === 'TLSv1.3') {
        stats.skippedTls13 += 1;
        return undefined;
      }
      const ttlSeconds = Math.floor((session.expiresAt.getTime() - Date.now()) / 1000);
      if (ttlSeconds < 1) {
        stats.expired += 1;
        return undefined;
      }
      return ttlSeconds;
    } finally {
      session.free();
    }
  };

  const onNewSession = (sessionId: Buffer, sessionData: Buffer, callback: NewSessionCallback): void => {
    let called = false;
    const done = (): void => {
      if (called) return;
      called = true;
      callback();
    };
    const work = async (): Promise<void> => {
      let ttlSeconds: number | undefined;
      try {
        ttlSeconds = admit(sessionData);
      } catch (error) {
        stats.rejected += 1;
        report(error as Error);
        return;
      }
      if (ttlSeconds === undefined) return;
      const key = storeKey(sessionId);
      const payload = encodeSessionRecord({ scope, der: sessionData });
      const record = sealer ? sealer.seal(key, payload) : wrapPlain(payload);
      const started = performance.now();
      try {
        await withDeadline('set', budgetMs, store.set(key, record, ttlSeconds));
        stats.stored += 1;
      } catch (error) {
        stats.errors += 1;
        report(error as Error);
      } finally {
        stats.setLatency.record(performance.now() - started);
      }
    };
    work().catch(report).finally(done);
  };

  /** Opens and checks a fetched record; returns the DER to hand to Node or throws RecordRejectedError. */
  const accept = (key: string, sessionId: Buffer, record: Buffer): Buffer => {
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
      if (!session.id.equals(sessionId)) throw new RecordRejectedError('rejected', 'stored session has another session ID than the key it is stored under');
      if (!session.idContext.equals(expectedIdContext)) throw new RecordRejectedError('rejected', 'stored session has another session ID context (scope)');
      if (!session.isResumable) throw new RecordRejectedError('rejected', 'stored session is not resumable');
      if (session.isExpired()) throw new RecordRejectedError('expired', 'stored session has expired');
    } finally {
      session.free();
    }
    return Buffer.from(der);
  };

  const onResumeSession = (sessionId: Buffer, callback: ResumeSessionCallback): void => {
    let called = false;
    const done = (sessionData: Buffer | null): void => {
      if (called) return;
      called = true;
      callback(null, sessionData);
    };
    const work = async (): Promise<Buffer | null> => {
      const key = storeKey(sessionId);
      const started = performance.now();
      let record: Buffer | undefined;
      try {
        record = await withDeadline('get', budgetMs, store.get(key));
      } catch (error) {
        stats.errors += 1;
        stats.misses += 1;
        report(error as Error);
        return null;
      } finally {
        stats.getLatency.record(performance.now() - started);
      }
      if (record === undefined) {
        stats.misses += 1;
        return null;
      }
      try {
        const der = accept(key, sessionId, record);
        stats.hits += 1;
        return der;
      } catch (error) {
        const refused = error instanceof RecordRejectedError ? error : new RecordRejectedError('rejected', (error as Error).message);
        if (refused.reason === 'expired') stats.expired += 1;
        else stats.rejected += 1;
        report(refused);
        deleteQuietly(key);
        return null;
      }
    };
    work().then(done, (error: Error) => {
      report(error);
      done(null);
    });
  };

  const restoreSessionIdContext = bindSessionIdContext(server, sessionIdContext);
  server.on('newSession', onNewSession);
  server.on('resumeSession', onResumeSession);

  let attached = true;
  return {
    scope,
    sessionIdContext,
    stats: () => stats.snapshot(),
    detach: () => {
      if (!attached) return;
      attached = false;
      server.removeListener('newSession', onNewSession);
      server.removeListener('resumeSession', onResumeSession);
      restoreSessionIdContext();
    },
  };
}
