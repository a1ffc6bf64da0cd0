/**
 * attachSessionStore: makes a tls.Server (https.Server, http2 secure server) keep its TLS 1.2
 * session-ID sessions in a SessionStore, so they survive restarts and are shared by a fleet.
 * TLS 1.3 resumes through tickets in Node 20 and never through these events: use TicketKeyRing.
 *
 * Nothing here throws into Node's callbacks: every failure is counted, reported to onError,
 * and answered with "no session" so the client simply gets a full handshake.
 *
 * Which stored sessions this Node can resume follows what Node writes into its server sessions
 * (node-internals.ts, sessionBinding: probed once per process). A record this Node cannot use
 * (another scope; issued by a Node release that binds sessions differently) is counted as
 * `incompatible` and left in the store for the members that can: only records that are broken
 * whatever reads them (tampered, undecodable, expired) are deleted.
 */
import type * as tls from 'node:tls';
import { performance } from 'node:perf_hooks';
import { invalidArgType, outOfRange } from '../../errors';
import { Session } from '../../session';
import { clockOption, type Clock } from '../clock';
import { NodeInternalsError, RecordFormatError, RecordRejectedError, StoreTimeoutError } from '../errors';
import { channels, errorCode, observeServer, type LookupMissReason, type ServerObserver } from '../../metrics/events';
import { decodeSessionRecord, decodeStoredServerSession, sealServerSessionRecord, sessionDerForScope } from '../records/server-session';
import { readSessionHeader, TLS1_3_VERSION } from '../../session-header';
import { boundSessionIdContext, missingServerInternals, sessionBinding, type SessionBinding } from '../../node-internals';
import { bindSessionIdContext, deriveScope, sessionIdContextFor } from './session-id-context';
import { openEnvelope, Sealer, Secret } from '../records/envelope';
import { StatsCollector, SessionStoreStats } from '../counters';
import { assertSessionStore, type SessionStore } from '../stores/contract';
import { choiceOption, functionOption, integerOption, optionsObject, stringOption } from '../options';
import { StoreGateway } from '../stores/gateway';
import type { WrittenKeys } from '../stores/written-keys';

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
  /**
   * Which ClientHello session IDs are looked up in the store (default 'written'). Every TLS 1.3
   * ClientHello carries 32 random bytes as legacy session ID and Node asks resumeSession about
   * them: lookups that always miss.
   * - 'written': only IDs some member of the fleet stored, as far as the store can tell
   *   (SessionStore#trackWrittenKeys: RedisStore's written-key filter, which every member
   *   publishes to and a new member loads); a store without it, or whose filter is still loading
   *   or reconnecting, is asked about every ID.
   * - 'all': every ID.
   * - 'issued': only IDs of sessions this server stored (an in-process filter, bounded by
   *   `issuedIdLimit`), whatever the store: sessions another process issued (a fleet member,
   *   the server before a restart) are then not resumed here.
   */
  lookup?: 'written' | 'all' | 'issued';
  /** Most session IDs the 'issued' filter remembers (default 100 000; the oldest go first). */
  issuedIdLimit?: number;
  /**
   * How many accepted records this server remembers with their session (default 10 000, at most
   * 16 MiB; 0: none). A record fetched again byte for byte is not opened nor checked again (only
   * its expiry is): a session resumed repeatedly pays the decryption once. A record changed in
   * the store in any way takes the full path and is refused as before.
   */
  recordCacheSize?: number;
  /**
   * The clock expiry is decided by: milliseconds since the epoch (default Date.now), as Go's
   * tls.Config.Time. For tests and simulations; OpenSSL still checks a session's lifetime against
   * the real time when it resumes it, and a store's own TTLs (Redis) run on the store's clock.
   */
  now?: Clock;
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
/** The latest end of a session Session.fromDER accepts (binding/session_functions.h kMaxSessionSeconds): the fast path refuses the same. */
const MAX_SESSION_SECONDS = 8_640_000_000_000;

/**
 * Makes `server` keep its TLS 1.2 session-ID sessions in `options.store`. Validates everything
 * up front (typed errors), then attaches; the returned handle detaches again.
 */
export function attachSessionStore(server: tls.Server, options: AttachSessionStoreOptions): SessionStoreHandle {
  if (server === null || typeof server !== 'object' || typeof (server as tls.Server).on !== 'function') {
    throw invalidArgType('server', 'a tls.Server, https.Server or http2 secure server', server);
  }
  optionsObject(options);
  const { store } = options;
  assertSessionStore(store, 'options.store');
  const maxSessionBytes = integerOption(options.maxSessionBytes, 'options.maxSessionBytes', DEFAULT_MAX_SESSION_BYTES, 64);
  const budgetMs = integerOption(options.budgetMs, 'options.budgetMs', 50, 1);
  const keyPrefix = stringOption(options.keyPrefix, 'options.keyPrefix', 'session:');
  const givenScope = options.scope === undefined ? undefined : stringOption(options.scope, 'options.scope', '', { nonEmpty: true });
  // Node internals this relies on (the session ID context): checked now, so a Node that changed
  // them fails here with a typed error instead of silently never resuming at handshake time.
  const missing = missingServerInternals(server, { derivingScope: givenScope === undefined });
  if (missing.length > 0) throw new NodeInternalsError(missing);
  const lookup = choiceOption(options.lookup, 'options.lookup', ['written', 'all', 'issued'] as const, 'written');
  const issuedIdLimit = integerOption(options.issuedIdLimit, 'options.issuedIdLimit', 100_000, 1);
  const recordCacheSize = integerOption(options.recordCacheSize, 'options.recordCacheSize', 10_000, 0);
  functionOption(options.onError, 'options.onError');
  const now = clockOption(options.now);
  const sealer = options.secret !== undefined ? new Sealer(options.secret, 'session-record') : undefined;
  const scope = givenScope ?? deriveScope(server);
  return new SessionStoreAttachment(server, {
    store,
    sealer,
    scope,
    maxSessionBytes,
    budgetMs,
    keyPrefix,
    onError: options.onError,
    issuedIdLimit: lookup === 'issued' ? issuedIdLimit : undefined,
    consultWritten: lookup === 'written',
    recordCacheSize,
    now,
  });
}

interface AttachmentConfig {
  store: SessionStore;
  sealer: Sealer | undefined;
  scope: string;
  maxSessionBytes: number;
  budgetMs: number;
  keyPrefix: string;
  onError: ((error: Error) => void) | undefined;
  /** Set for lookup 'issued': how many issued IDs to remember. */
  issuedIdLimit: number | undefined;
  /** lookup 'written': ask the store's filter of written keys first (when it has one). */
  consultWritten: boolean;
  recordCacheSize: number;
  now: Clock;
}

/** A record this attachment accepted, and what it holds. */
interface KnownRecord {
  record: Buffer;
  der: Buffer;
  expiresAtMs: number;
}

const RECORD_CACHE_MAX_BYTES = 16 * 1024 * 1024;

/** One server's listeners over one store: newSession stores, resumeSession fetches and checks. */
class SessionStoreAttachment implements SessionStoreHandle {
  readonly scope: string;
  readonly sessionIdContext: string;
  readonly #server: tls.Server;
  readonly #config: AttachmentConfig;
  /** The session ID context set on the server's contexts, as bytes. */
  readonly #idContextBytes: Buffer;
  /** How this Node binds server sessions; undefined until the probe settles (lookups wait for it). */
  #binding: SessionBinding | undefined;
  /** SNI name (latin1) -> session ID context a session for it carries, under 'sni-sha256'. */
  readonly #boundIdContexts = new Map<string, Buffer>();
  readonly #stats = new StatsCollector();
  readonly #restoreSessionIdContext: () => void;
  readonly #scopeBytes: Buffer;
  /** Every store call goes through it: after ready(), within budgetMs, one failure path. */
  readonly #gateway: StoreGateway;
  /** lookup 'issued': store keys of the sessions this attachment stored, oldest first (Map keeps insertion order). */
  readonly #issued: Map<string, number> | undefined;
  /**
   * The store's fleet-wide filter of written keys (undefined: the store has none). Tracked
   * whatever the lookup, so that this member's writes are announced to the others' filters;
   * kept here as a filter ({ filter: true }) and consulted under lookup 'written' only.
   */
  readonly #written: WrittenKeys | undefined;
  readonly #consultWritten: boolean;
  /** Writes not yet handed to the store: written behind Node's callback, all at once per event-loop turn. */
  #pendingWrites: Array<{ key: string; record: Buffer; ttlSeconds: number }> = [];
  /** Records accepted here, by store key, oldest first (recordCacheSize, RECORD_CACHE_MAX_BYTES). */
  readonly #known: Map<string, KnownRecord> | undefined;
  #knownBytes = 0;
  #flushScheduled = false;
  /**
   * Until the store's ready() and the session-binding probe settle, store calls wait for them
   * (bounded by the store's start-up budget; the probe, once per process, by 2 s).
   */
  #storeReady: Promise<void> | undefined;
  #attached = true;
  /** Publishes diagnostics_channel events (lib/metrics/events.ts); idle while nobody subscribes. */
  readonly #observer: ServerObserver;

  constructor(server: tls.Server, config: AttachmentConfig) {
    this.#server = server;
    this.#config = config;
    this.scope = config.scope;
    this.sessionIdContext = sessionIdContextFor(config.scope);
    this.#idContextBytes = Buffer.from(this.sessionIdContext, 'latin1');
    this.#scopeBytes = Buffer.from(config.scope, 'utf8');
    if (this.#scopeBytes.length > 0xffff)
      throw outOfRange('options.scope', 'at most 65535 bytes of UTF-8', `${this.#scopeBytes.length} bytes`);
    this.#gateway = new StoreGateway(config.store, {
      onError: config.onError,
      onFailure: () => {
        this.#stats.errors += 1;
      },
    });
    this.#issued = config.issuedIdLimit !== undefined ? new Map() : undefined;
    this.#written = this.#gateway.trackWrittenKeys(config.keyPrefix, { filter: config.consultWritten });
    this.#consultWritten = config.consultWritten && this.#written !== undefined;
    // A Map in insertion order, the oldest dropped first (a session resumes repeatedly soon after
    // it is issued): cheaper per entry than lru-cache's size accounting.
    this.#known = config.recordCacheSize > 0 ? new Map() : undefined;
    this.#restoreSessionIdContext = bindSessionIdContext(server, this.sessionIdContext);
    server.on('newSession', this.#onNewSession);
    server.on('resumeSession', this.#onResumeSession);
    this.#observer = observeServer(server);
    this.#storeReady = this.#waitForStore();
  }

  #rememberRecord(key: string, entry: KnownRecord): void {
    const known = this.#known;
    if (!known) return;
    const previous = known.get(key);
    if (previous) {
      known.delete(key);
      this.#knownBytes -= previous.record.length + previous.der.length;
    }
    known.set(key, entry);
    this.#knownBytes += entry.record.length + entry.der.length;
    while (known.size > this.#config.recordCacheSize || this.#knownBytes > RECORD_CACHE_MAX_BYTES) {
      const [oldestKey, oldest] = known.entries().next().value as [string, KnownRecord];
      known.delete(oldestKey);
      this.#knownBytes -= oldest.record.length + oldest.der.length;
    }
  }

  #forgetRecord(key: string): void {
    const entry = this.#known?.get(key);
    if (!entry) return;
    this.#known!.delete(key);
    this.#knownBytes -= entry.record.length + entry.der.length;
  }

  /** Settles when the store's ready() (the gateway counts and reports its failure) and the binding probe do. */
  #waitForStore(): Promise<void> {
    const probed = sessionBinding().then((info) => {
      this.#binding = info.binding;
    });
    return Promise.all([this.#gateway.start(), probed]).then(() => {
      this.#storeReady = undefined;
    });
  }

  /**
   * The session ID context a session this Node can resume carries: the context's own value, or
   * (Node binding by SNI) its hash with the SNI name the session was issued for (in its DER).
   * OpenSSL then compares it with the connection's own, which binds the session to that name.
   */
  #expectedIdContext(hostname: Buffer | undefined): Buffer {
    const binding = this.#binding ?? 'context';
    if (binding === 'context') return this.#idContextBytes;
    const name = hostname ? hostname.toString('latin1') : '';
    let expected = this.#boundIdContexts.get(name);
    if (expected === undefined) {
      expected = boundSessionIdContext(binding, this.#idContextBytes, hostname);
      if (this.#boundIdContexts.size >= 1024) this.#boundIdContexts.clear();
      this.#boundIdContexts.set(name, expected);
    }
    return expected;
  }

  /** Why a session with this ID context cannot resume on this Node (another binding, or another scope). */
  #idContextMismatch(idContext: Buffer, hostname: Buffer | undefined): RecordRejectedError {
    const mine = this.#binding ?? 'context';
    const other: SessionBinding = mine === 'context' ? 'sni-sha256' : 'context';
    const why = idContext.equals(boundSessionIdContext(other, this.#idContextBytes, hostname))
      ? other === 'context'
        ? 'was issued by a Node release that does not bind sessions to the SNI name (e.g. 20.x, 26.12.1), and this one does'
        : 'was issued by a Node release that binds sessions to the SNI name (22.23.5+, 24.22.3+), and this one does not'
      : 'has another session ID context (another scope, or a Node release binding sessions another way)';
    return new RecordRejectedError('incompatible', `stored session ${why} (Node ${process.version}): full handshake, record kept`);
  }

  stats(): SessionStoreStats {
    return this.#stats.snapshot();
  }

  detach(): void {
    if (!this.#attached) return;
    // Writes still queued behind Node's callbacks go to the store now, while it is surely open.
    this.#flush();
    this.#attached = false;
    this.#server.removeListener('newSession', this.#onNewSession);
    this.#server.removeListener('resumeSession', this.#onResumeSession);
    this.#observer.release();
    this.#written?.release();
    this.#restoreSessionIdContext();
  }

  #report(error: Error): void {
    this.#gateway.report(error);
  }

  #storeKey(sessionId: Buffer): string {
    return this.#config.keyPrefix + sessionId.toString('hex');
  }

  #deleteQuietly(key: string): void {
    const started = performance.now();
    this.#gateway
      .call('delete', this.#config.budgetMs, (store) => store.delete(key))
      .then(
        () => this.#publishStore('delete', started),
        (error: Error) => {
          this.#gateway.fail(error);
          this.#publishStore('delete', started, error);
        },
      );
  }

  #publishStore(operation: 'set' | 'delete', started: number, error?: Error): void {
    if (!channels.serverStore.hasSubscribers) return;
    const event = { operation, ok: error === undefined, latencyMs: performance.now() - started };
    channels.serverStore.publish(error === undefined ? event : { ...event, errorCode: errorCode(error) });
  }

  /** A lookup's outcome (undefined: a hit) for the diagnostics channels. */
  #observeLookup(connection: object | undefined, reason: LookupMissReason | undefined, latencyMs: number, cached?: boolean): void {
    if (connection) this.#observer.lookup(connection, reason, latencyMs);
    if (channels.serverLookup.hasSubscribers) {
      channels.serverLookup.publish(cached ? { outcome: reason ?? 'hit', latencyMs, cached } : { outcome: reason ?? 'hit', latencyMs });
    }
  }

  /** Validates and measures the session; returns when it expires (ms since 1970), or undefined to skip it. */
  #admit(sessionData: Buffer): number | undefined {
    const { maxSessionBytes } = this.#config;
    if (sessionData.length > maxSessionBytes) {
      this.#stats.rejected += 1;
      this.#report(new RecordFormatError(`new session of ${sessionData.length} bytes is over maxSessionBytes (${maxSessionBytes})`));
      return undefined;
    }
    // These bytes come from Node's own OpenSSL (i2d_SSL_SESSION): reading the protocol and times
    // from the DER is enough. Only bytes of another shape are decoded in full (which validates).
    const header = readSessionHeader(sessionData);
    let tls13: boolean;
    let expiresAtMs: number;
    if (header) {
      tls13 = header.protocolVersion === TLS1_3_VERSION;
      expiresAtMs = (header.time + header.timeout) * 1000;
    } else {
      const session = Session.fromDER(sessionData, { maxBytes: maxSessionBytes });
      try {
        tls13 = session.protocol === 'TLSv1.3';
        expiresAtMs = session.expiresAt.getTime();
      } finally {
        session.free();
      }
    }
    if (tls13) {
      this.#stats.skippedTls13 += 1;
      return undefined;
    }
    if (Math.floor((expiresAtMs - this.#config.now()) / 1000) < 1) {
      this.#stats.expired += 1;
      return undefined;
    }
    return expiresAtMs;
  }

  // Node's listeners: arrow properties, so that detach() removes exactly these functions.
  /**
   * Node holds the server's Finished until this callback: so it is called at once, and the
   * record is written behind it (a resumption that races the write misses: a full handshake).
   */
  readonly #onNewSession = (sessionId: Buffer, sessionData: Buffer, callback: NewSessionCallback): void => {
    let queued = false;
    try {
      queued = this.#enqueue(sessionId, sessionData);
    } catch (error) {
      this.#report(error as Error);
    }
    callback();
    if (queued && !this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(this.#flush);
    }
  };

  /** Admits, encodes and seals the session and queues the write; false when nothing is to be stored. */
  #enqueue(sessionId: Buffer, sessionData: Buffer): boolean {
    let expiresAtMs: number | undefined;
    try {
      expiresAtMs = this.#admit(sessionData);
    } catch (error) {
      this.#stats.rejected += 1;
      this.#report(error as Error);
      return false;
    }
    if (expiresAtMs === undefined) return false;
    const ttlSeconds = Math.floor((expiresAtMs - this.#config.now()) / 1000);
    const { sealer } = this.#config;
    const key = this.#storeKey(sessionId);
    const record = sealServerSessionRecord(sealer, key, this.#scopeBytes, sessionData);
    this.#pendingWrites.push({ key, record, ttlSeconds });
    this.#remember(key);
    // Not kept in the record cache here: holding every new record costs more (memory, GC) than
    // the one decryption the first resumption pays; that resumption caches it.
    return true;
  }

  /** lookup 'issued': remembers a stored session's key, forgetting the oldest past the limit. */
  #remember(key: string): void {
    const issued = this.#issued;
    if (!issued) return;
    issued.delete(key);
    issued.set(key, 0);
    if (issued.size > this.#config.issuedIdLimit!) issued.delete(issued.keys().next().value!);
  }

  readonly #flush = (): void => {
    this.#flushScheduled = false;
    const writes = this.#pendingWrites;
    this.#pendingWrites = [];
    if (!this.#attached) return;
    for (const { key, record, ttlSeconds } of writes) this.#write(key, record, ttlSeconds);
  };

  #write(key: string, record: Buffer, ttlSeconds: number): void {
    const started = performance.now();
    const done = (): void => {
      this.#stats.setLatency.record(performance.now() - started);
    };
    const failed = (error: Error): void => {
      this.#gateway.fail(error);
      done();
      this.#publishStore('set', started, error);
    };
    const set = (): Promise<void> => this.#gateway.call('set', this.#config.budgetMs, (store) => store.set(key, record, ttlSeconds));
    const work = this.#storeReady ? this.#storeReady.then(set) : set();
    work.then(() => {
      this.#stats.stored += 1;
      done();
      this.#publishStore('set', started);
    }, failed);
  }

  /** Opens and checks a fetched record; returns the DER to hand to Node (and its expiry) or throws RecordRejectedError. */
  #accept(key: string, sessionId: Buffer, record: Buffer): { der: Buffer; expiresAtMs: number } {
    const { sealer } = this.#config;
    let der: Buffer | undefined;
    try {
      const payload = openEnvelope(sealer, key, record);
      der = sealer ? sessionDerForScope(payload, this.#scopeBytes) : undefined;
      if (!sealer) {
        const decoded = decodeSessionRecord(payload);
        if (decoded.scope === this.#config.scope) der = decoded.der;
      }
    } catch (error) {
      throw new RecordRejectedError('rejected', (error as Error).message, error);
    }
    if (der === undefined) throw new RecordRejectedError('incompatible', 'stored session belongs to another scope: record kept');
    // A sealed record opened under this key's AAD was written by a holder of the secret for
    // exactly this session ID: reading the ID, context and times from the DER checks it, and
    // Node (OpenSSL) decodes the bytes once, when it loads them. The reader accepts only DER the
    // full decoder accepts, with the same fields (session-header.ts); anything else, and DER
    // over maxSessionBytes (which fromDER refuses), is decoded in full below, so that a record
    // the full path refuses is counted as rejected, never as a hit, and never cached. An
    // unsealed record may have been written by anyone who can write the store: it is decoded in
    // full first.
    const header = sealer && der.length <= this.#config.maxSessionBytes ? readSessionHeader(der) : undefined;
    if (header) {
      if (header.sessionId.length === 0 || !header.sessionId.equals(sessionId))
        throw new RecordRejectedError('rejected', 'stored session has another session ID than the key it is stored under');
      if (!header.sessionIdContext.equals(this.#expectedIdContext(header.hostname)))
        throw this.#idContextMismatch(header.sessionIdContext, header.hostname);
      if (header.time + header.timeout > MAX_SESSION_SECONDS)
        throw new RecordRejectedError('rejected', "stored session's time and timeout are out of range");
      const expiresAtMs = (header.time + header.timeout) * 1000;
      if (this.#config.now() >= expiresAtMs) throw new RecordRejectedError('expired', 'stored session has expired');
      return { der, expiresAtMs };
    }
    const expiresAtMs = this.#checkDecoded(sessionId, der);
    return { der: Buffer.from(der), expiresAtMs };
  }

  /** The full check: OpenSSL decodes the session, and its ID, context, resumability and expiry are read from it. */
  #checkDecoded(sessionId: Buffer, der: Buffer): number {
    const session = decodeStoredServerSession(der, sessionId, this.#config.maxSessionBytes);
    try {
      const hostname = session.hostname === undefined ? undefined : Buffer.from(session.hostname, 'utf8');
      if (!session.idContext.equals(this.#expectedIdContext(hostname))) throw this.#idContextMismatch(session.idContext, hostname);
      if (!session.isResumable) throw new RecordRejectedError('rejected', 'stored session is not resumable');
      if (session.isExpired(new Date(this.#config.now()))) throw new RecordRejectedError('expired', 'stored session has expired');
      return session.expiresAt.getTime();
    } finally {
      session.free();
    }
  }

  readonly #onResumeSession = (sessionId: Buffer, callback: ResumeSessionCallback): void => {
    // Exactly one call back, whatever happens: anything unexpected is a miss.
    let answered = false;
    const answer = (sessionData: Buffer | null): void => {
      if (answered) return;
      answered = true;
      callback(null, sessionData);
    };
    const key = this.#storeKey(sessionId);
    // Taken now: only here is the connection's TLSWrap the current async resource.
    const connection = this.#observer.connection();
    if (this.#issued ? !this.#issued.has(key) : this.#consultWritten && !this.#written!.mayHold(key)) {
      // Not a session this server (lookup 'issued') or any member ('written') issued: every TLS
      // 1.3 ClientHello's random legacy ID. No store call.
      this.#stats.misses += 1;
      this.#stats.filtered += 1;
      this.#observeLookup(connection, 'filtered', 0);
      answer(null);
      return;
    }
    const started = performance.now();
    if (this.#storeReady === undefined && this.#gateway.answersNow()) {
      // An in-process store (SessionStore#getNow): answered in this turn, so Node goes on with
      // the handshake inside its own read callback rather than one promise later.
      let record: Buffer | undefined;
      try {
        record = this.#gateway.getNow(key);
      } catch (error) {
        answer(this.#lookupFailed(error as Error, connection, started));
        return;
      }
      answer(this.#fetched(key, sessionId, record, connection, started));
      return;
    }
    const get = (): Promise<Buffer | undefined> => this.#gateway.call('get', this.#config.budgetMs, (store) => store.get(key));
    const work = this.#storeReady ? this.#storeReady.then(get) : get();
    work.then(
      (record) => answer(this.#fetched(key, sessionId, record, connection, started)),
      (error: Error) => answer(this.#lookupFailed(error, connection, started)),
    );
  };

  /** A lookup that got an answer from the store (a record or none): timed, then judged by #found. */
  #fetched(key: string, sessionId: Buffer, record: Buffer | undefined, connection: object | undefined, started: number): Buffer | null {
    const latencyMs = performance.now() - started;
    this.#stats.getLatency.record(latencyMs);
    return this.#found(key, sessionId, record, connection, latencyMs);
  }

  /** A lookup the store failed (an error or its time budget): a miss, counted and reported. */
  #lookupFailed(error: Error, connection: object | undefined, started: number): null {
    const latencyMs = performance.now() - started;
    this.#stats.getLatency.record(latencyMs);
    this.#stats.misses += 1;
    this.#gateway.fail(error);
    this.#observeLookup(connection, error instanceof StoreTimeoutError ? 'store-timeout' : 'store-error', latencyMs);
    return null;
  }

  /** What a fetched record (or its absence) answers Node: the DER, or null (counted and reported). */
  #found(key: string, sessionId: Buffer, record: Buffer | undefined, connection: object | undefined, latencyMs: number): Buffer | null {
    if (record === undefined) {
      this.#stats.misses += 1;
      this.#observeLookup(connection, 'store-miss', latencyMs);
      return null;
    }
    // The very bytes this server accepted before: nothing to open or check but the time.
    const known = this.#known?.get(key);
    if (known && known.record.equals(record)) {
      if (this.#config.now() < known.expiresAtMs) {
        this.#stats.hits += 1;
        this.#stats.recordCacheHits += 1;
        this.#observeLookup(connection, undefined, latencyMs, true);
        return known.der;
      }
      this.#forgetRecord(key);
    }
    try {
      const { der, expiresAtMs } = this.#accept(key, sessionId, record);
      this.#rememberRecord(key, { record, der, expiresAtMs });
      this.#stats.hits += 1;
      this.#observeLookup(connection, undefined, latencyMs);
      return der;
    } catch (error) {
      const refused = error instanceof RecordRejectedError ? error : new RecordRejectedError('rejected', (error as Error).message);
      if (refused.reason === 'incompatible') {
        // Usable by another member (another scope, another Node release): not ours to delete, nor an error.
        this.#stats.incompatible += 1;
        this.#observeLookup(connection, 'incompatible', latencyMs);
        return null;
      }
      if (refused.reason === 'expired') this.#stats.expired += 1;
      else this.#stats.rejected += 1;
      this.#observeLookup(connection, refused.reason === 'expired' ? 'expired' : 'rejected', latencyMs);
      this.#report(refused);
      this.#deleteQuietly(key);
      return null;
    }
  }
}
