/**
 * ClientSessionCache: TLS client sessions that outlive the process. Node's clients keep
 * sessions in memory only (https.Agent's maxCachedSessions, undici's connector), so a CLI, a cron
 * job or a restarted worker pays a full handshake to a server it talked to a second ago. This
 * keeps them in a SessionStore (SqliteStore on one machine, RedisStore for a fleet of clients).
 *
 * - Keyed by the peer and the security context (client-peer.ts): a session is never offered to
 *   another host, port, servername, ALPN list, version range, CA set or client identity.
 * - TLS 1.3 tickets are single-use (RFC 8446 §C.4): a small pool per peer, each connection takes
 *   one with the store's atomic take(). TLS 1.2 sessions are kept under one key and reused.
 * - The lookup has a budget (default 50 ms): a slow or dead store costs at most that, then the
 *   connection goes ahead with a full handshake. Store failures never reject a connection.
 * - Sessions arrive after the handshake (TLS 1.3 sends tickets then); writes are tracked so that
 *   flush()/close() can wait for them before a short-lived process exits.
 */
import type * as https from 'node:https';
import * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { invalidArgType, outOfRange } from '../errors';
import { buildNodeEnvelope, hasNodeEnvelopeMagic, nodeSessionFormat, parseNodeEnvelope } from '../node-session';
import { Session } from '../session';
import { clientPeerOf, type ClientPeer } from './client-peer';
import { decodeClientRecord, encodeClientRecord, type ClientSessionUse } from './client-record';
import { withDeadline } from './deadline';
import { RecordRejectedError, StoreClosedError, StoreTimeoutError } from './errors';
import { Sealer, type Secret, unwrapPlain, wrapPlain } from './seal';
import { LatencyReservoir, type LatencyPercentiles } from './stats';
import { whenReady, type SessionStore } from './store';

export interface ClientSessionCacheOptions {
  /** Where sessions live: SqliteStore for one machine, RedisStore for a fleet, MemoryStore for one process. */
  store: SessionStore;
  /** Seal records with AES-256-GCM (same forms as attachSessionStore's secret; its own subkey). */
  secret?: Secret;
  /** Longest the store may delay a connection before it goes ahead with a full handshake (default 50 ms). */
  budgetMs?: number;
  /** Longest a session write may take before it is counted as an error (default 1000 ms; writes run after the handshake). */
  writeBudgetMs?: number;
  /** Upper bound on how long a session is kept, whatever the server allows (default 86 400 s, one day). */
  maxAgeSeconds?: number;
  /** TLS 1.3 tickets kept per peer (default 4); each connection takes one. */
  poolSize?: number;
  /** Prefix of every store key (default 'client:'); keep it apart from a server's 'session:'. */
  keyPrefix?: string;
  /** Largest session DER stored or offered (default 32 KiB: a client session holds the server's certificate). */
  maxSessionBytes?: number;
  /** Told about every store failure and refused record; must not throw (if it does, that is ignored). */
  onError?: (error: Error) => void;
}

export interface ClientSessionCacheStats {
  /** Connections that asked the store for a session. */
  lookups: number;
  /** Of those, connections given a cached session. */
  offered: number;
  /** Offered and resumed (isSessionReused()). */
  resumed: number;
  /** Offered, but the server answered with a full handshake (it no longer knew the session or ticket key). */
  notResumed: number;
  /** Lookups that found nothing usable (a store error or timeout counts here and in errors). */
  misses: number;
  /** Sessions written to the store. */
  stored: number;
  /** Records found expired (by the session's lifetime, the ticket's, the certificate's or maxAgeSeconds) and dropped. */
  expired: number;
  /** Records dropped as corrupt, tampered, of another peer, oversized or not resumable. */
  rejected: number;
  /** Store calls that failed or ran over their budget. */
  errors: number;
  /** Connections that could not use the cache (a secureContext or pskCallback was given). */
  bypassed: number;
  /** Milliseconds, per connection's lookup (everything before tls.connect) and per stored session. */
  latencyMs: { lookup: LatencyPercentiles; store: LatencyPercentiles };
}

/** undici's `connect` function form: `new Agent({ connect: cache.createConnector() })`. */
export type UndiciConnector = (
  options: {
    hostname: string;
    host?: string;
    protocol: string;
    port: string | number;
    servername?: string | null;
    localAddress?: string | null;
    httpSocket?: Duplex;
  },
  callback: (...result: [error: null, socket: net.Socket] | [error: Error, socket: null]) => void,
) => void;

interface Offer {
  /** What tls.connect({ session }) takes on this Node (wrapped for the peer's identity, or DER). */
  nodeSession: Buffer;
  use: ClientSessionUse;
  /** Where a reusable session lives (deleted when the server no longer resumes it). */
  key: string;
}

const DEFAULTS = {
  budgetMs: 50,
  writeBudgetMs: 1000,
  maxAgeSeconds: 86_400,
  poolSize: 4,
  keyPrefix: 'client:',
  maxSessionBytes: 32 * 1024,
};

export class ClientSessionCache {
  readonly #store: SessionStore;
  readonly #sealer: Sealer | undefined;
  readonly #config: typeof DEFAULTS;
  readonly #onError: ((error: Error) => void) | undefined;
  readonly #pending = new Set<Promise<void>>();
  readonly #lookupLatency = new LatencyReservoir();
  readonly #storeLatency = new LatencyReservoir();
  readonly #counts = {
    lookups: 0,
    offered: 0,
    resumed: 0,
    notResumed: 0,
    misses: 0,
    stored: 0,
    expired: 0,
    rejected: 0,
    errors: 0,
    bypassed: 0,
  };
  #storeReady: Promise<void> | undefined;
  #closed = false;

  constructor(options: ClientSessionCacheOptions) {
    if (options === null || typeof options !== 'object') throw invalidArgType('options', 'an object', options);
    const { store } = options;
    if (!store || typeof store.get !== 'function' || typeof store.set !== 'function' || typeof store.delete !== 'function') {
      throw invalidArgType('options.store', 'a SessionStore', store);
    }
    const config = { ...DEFAULTS };
    for (const [name, minimum, maximum] of [
      ['budgetMs', 1, 60_000],
      ['writeBudgetMs', 1, 600_000],
      ['maxAgeSeconds', 1, 7 * 86_400],
      ['poolSize', 1, 64],
      ['maxSessionBytes', 256, 1024 * 1024],
    ] as const) {
      const value = options[name];
      if (value === undefined) continue;
      if (typeof value !== 'number' || !Number.isInteger(value) || value < minimum || value > maximum) {
        throw outOfRange(`options.${name}`, `an integer from ${minimum} to ${maximum}`, value);
      }
      config[name] = value;
    }
    if (options.keyPrefix !== undefined) {
      if (typeof options.keyPrefix !== 'string') throw invalidArgType('options.keyPrefix', 'of type string', options.keyPrefix);
      config.keyPrefix = options.keyPrefix;
    }
    if (options.onError !== undefined && typeof options.onError !== 'function') {
      throw invalidArgType('options.onError', 'a function', options.onError);
    }
    this.#store = store;
    this.#config = config;
    this.#onError = options.onError;
    this.#sealer = options.secret !== undefined ? new Sealer(options.secret, 'client-session') : undefined;
    this.#storeReady = this.#waitForStore();
  }

  /**
   * Like tls.connect(options), resolving with the socket at 'secureConnect' (rejecting with the
   * connection's error before it). Offers a cached session when one fits this peer; stores the
   * sessions the connection receives. Store trouble never rejects: it costs a full handshake.
   */
  async connect(options: tls.ConnectionOptions): Promise<tls.TLSSocket> {
    this.#checkOpen();
    const peer = clientPeerOf(options);
    const offer = options.session === undefined ? await this.#offerFor(peer) : undefined;
    const socket = this.#open(options, peer, offer);
    return new Promise<tls.TLSSocket>((resolve, reject) => {
      const onError = (error: Error): void => {
        socket.removeListener('secureConnect', onSecure);
        reject(error);
      };
      const onSecure = (): void => {
        socket.removeListener('error', onError);
        resolve(socket);
      };
      socket.once('error', onError);
      socket.once('secureConnect', onSecure);
    });
  }

  /**
   * An https.Agent whose new connections go through this cache (keep-alive reuse works as
   * usual: a reused socket needs no handshake). Node's own in-memory session cache of the agent
   * is replaced by this one.
   */
  createHttpsAgent(options: https.AgentOptions = {}): https.Agent {
    this.#checkOpen();
    if (options === null || typeof options !== 'object') throw invalidArgType('options', 'an object (https.Agent options)', options);
    const Agent = cachingAgentClass();
    return new Agent(this, options);
  }

  /**
   * A connector for undici: `new undici.Agent({ connect: cache.createConnector(tlsOptions) })`,
   * then `fetch(url, { dispatcher })`. `tlsOptions` (ca, cert, ALPNProtocols, …) apply to every
   * https connection; plain http connections are opened without TLS.
   */
  createConnector(tlsOptions: tls.ConnectionOptions = {}): UndiciConnector {
    this.#checkOpen();
    if (tlsOptions === null || typeof tlsOptions !== 'object')
      throw invalidArgType('tlsOptions', 'an object (tls.connect options)', tlsOptions);
    return (target, callback) => {
      let settled = false;
      const done = (error: Error | null, socket: net.Socket | null): void => {
        if (settled) return;
        settled = true;
        if (error) callback(error, null);
        else callback(null, socket!);
      };
      const hostname = target.hostname.replace(/^\[(.*)\]$/, '$1'); // undici keeps IPv6 brackets
      const port = Number(target.port) || (target.protocol === 'https:' ? 443 : 80);
      const local = target.localAddress ? { localAddress: target.localAddress } : {};
      if (target.protocol !== 'https:') {
        const socket = net.connect({ host: hostname, port, ...local });
        socket.setNoDelay(true);
        socket.once('connect', () => done(null, socket));
        socket.once('error', (error) => done(error, null));
        return;
      }
      const servername = target.servername ?? tlsOptions.servername ?? (net.isIP(hostname) === 0 ? hostname : undefined);
      this.connect({
        ALPNProtocols: ['http/1.1'],
        ...tlsOptions,
        host: hostname,
        port,
        ...(servername !== undefined && { servername }),
        ...local,
        ...(target.httpSocket !== undefined && { socket: target.httpSocket }),
      }).then(
        (socket) => {
          socket.setNoDelay(true);
          done(null, socket);
        },
        (error: Error) => done(error, null),
      );
    };
  }

  /** Resolves when every session received so far has been written (or failed to be). */
  async flush(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  /** Waits for pending writes, then refuses new connections (ERR_TLS_SESSION_STORE_CLOSED). The store stays open: it is yours. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.flush();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  stats(): ClientSessionCacheStats {
    return { ...this.#counts, latencyMs: { lookup: this.#lookupLatency.percentiles(), store: this.#storeLatency.percentiles() } };
  }

  /** @internal For the agent: looks up, opens the connection, hands it over before its handshake. */
  openForAgent(options: tls.ConnectionOptions, callback: (error: Error | null, socket: Duplex) => void): void {
    if (this.#closed) {
      callback(new StoreClosedError('the client session cache is closed'), undefined as unknown as Duplex);
      return;
    }
    let peer: ClientPeer;
    try {
      peer = clientPeerOf(options);
    } catch (error) {
      callback(error as Error, undefined as unknown as Duplex);
      return;
    }
    const lookup = options.session === undefined ? this.#offerFor(peer) : Promise.resolve(undefined);
    void lookup.then((offer) => {
      let socket: tls.TLSSocket;
      try {
        socket = this.#open(options, peer, offer);
      } catch (error) {
        callback(error as Error, undefined as unknown as Duplex);
        return;
      }
      callback(null, socket);
    });
  }

  #checkOpen(): void {
    if (this.#closed) throw new StoreClosedError('the client session cache is closed');
  }

  #report(error: Error): void {
    try {
      this.#onError?.(error);
    } catch {
      /* a throwing onError must not reach a connection */
    }
  }

  /** Settles when the store's ready() does; a failure is counted and reported, never thrown. */
  #waitForStore(): Promise<void> | undefined {
    const readiness = whenReady(this.#store, (error) => {
      this.#counts.errors += 1;
      this.#report(error);
    });
    return readiness?.finally(() => {
      this.#storeReady = undefined;
    });
  }

  #poolKey(peer: ClientPeer): string {
    return this.#config.keyPrefix + peer.digest;
  }

  /** tls.connect with the offer, watching the connection for its outcome and its sessions. */
  #open(options: tls.ConnectionOptions, peer: ClientPeer, offer: Offer | undefined): tls.TLSSocket {
    const socket = tls.connect(offer ? { ...options, session: offer.nodeSession } : options);
    if (peer.bypass !== undefined && offer === undefined && options.session === undefined) return socket;
    const received: Buffer[] = [];
    let established = false;
    const onSession = (nodeSession: Buffer): void => {
      if (this.#closed) return; // after close(): nothing more is written
      if (established) this.#storeLater(peer, [nodeSession]);
      else received.push(nodeSession);
    };
    socket.on('session', onSession);
    socket.once('secureConnect', () => {
      established = true;
      if (offer) {
        if (socket.isSessionReused()) this.#counts.resumed += 1;
        else {
          this.#counts.notResumed += 1;
          if (offer.use === 'reusable') this.#deleteQuietly(offer.key);
        }
      }
      // A verifying connection reaches secureConnect only once verified; keep nothing otherwise.
      if (options.rejectUnauthorized !== false && !socket.authorized) {
        socket.removeListener('session', onSession);
        return;
      }
      const early = received.splice(0);
      if (early.length > 0) this.#storeLater(peer, early);
    });
    socket.once('close', () => socket.removeListener('session', onSession));
    return socket;
  }

  /**
   * Stores sessions once the current event-loop turn is over: Node emits them around
   * 'secureConnect' (TLS 1.2 right after it), and decoding and writing are not the handshake's
   * business; the caller gets its socket first.
   */
  #storeLater(peer: ClientPeer, sessions: Buffer[]): void {
    this.#track(
      new Promise<void>((resolve) => setImmediate(resolve)).then(async () => {
        for (const nodeSession of sessions) await this.#storeSession(peer, nodeSession);
      }),
    );
  }

  #track(write: Promise<void>): void {
    this.#pending.add(write);
    void write.finally(() => this.#pending.delete(write));
  }

  /** The session to offer `peer`, or undefined; within the budget, never rejects. */
  async #offerFor(peer: ClientPeer): Promise<Offer | undefined> {
    if (peer.bypass !== undefined) {
      this.#counts.bypassed += 1;
      return undefined;
    }
    this.#counts.lookups += 1;
    const started = performance.now();
    // SQLite answers synchronously (a lock waits out busyTimeoutMs on the event loop, where no
    // timer can interrupt it): #find also checks the clock between store calls.
    const lookup = { abandoned: false, deadline: started + this.#config.budgetMs };
    try {
      const offer = await withDeadline('client session lookup', this.#config.budgetMs, this.#find(peer, lookup));
      if (offer) this.#counts.offered += 1;
      else this.#counts.misses += 1;
      return offer;
    } catch (error) {
      lookup.abandoned = true;
      this.#counts.errors += 1;
      this.#counts.misses += 1;
      this.#report(error as Error);
      return undefined;
    } finally {
      this.#lookupLatency.record(performance.now() - started);
    }
  }

  /** A reusable session first, else a ticket taken from the pool (starting at a random slot, so processes spread out). */
  async #find(peer: ClientPeer, lookup: { abandoned: boolean; deadline: number }): Promise<Offer | undefined> {
    const inTime = (): boolean => {
      if (lookup.abandoned) return false;
      if (performance.now() < lookup.deadline) return true;
      throw new StoreTimeoutError('client session lookup', this.#config.budgetMs);
    };
    if (this.#storeReady) await this.#storeReady;
    const poolKey = this.#poolKey(peer);
    const reusableKey = `${poolKey}:r`;
    if (!inTime()) return undefined;
    const reusable = await this.#store.get(reusableKey);
    if (reusable !== undefined) {
      const offer = this.#accept(peer, reusableKey, reusable);
      if (offer) return offer;
      this.#deleteQuietly(reusableKey);
    }
    const { poolSize } = this.#config;
    const first = Math.floor(Math.random() * poolSize);
    for (let i = 0; i < poolSize && inTime(); i++) {
      const key = `${poolKey}:${(first + i) % poolSize}`;
      const record = await this.#takeRecord(key);
      if (record === undefined) continue;
      const offer = this.#accept(peer, key, record);
      if (offer) return offer;
    }
    return undefined;
  }

  /** Atomic where the store can (take); else read then delete, which two processes may race. */
  async #takeRecord(key: string): Promise<Buffer | undefined> {
    if (typeof this.#store.take === 'function') return this.#store.take(key);
    const record = await this.#store.get(key);
    if (record !== undefined) await this.#store.delete(key);
    return record;
  }

  /** Opens and checks one record; undefined (counted, reported) when it must not be offered. */
  #accept(peer: ClientPeer, key: string, stored: Buffer): Offer | undefined {
    try {
      const poolKey = this.#poolKey(peer);
      const payload = this.#sealer ? this.#sealer.open(poolKey, stored) : unwrapPlain(stored);
      const record = decodeClientRecord(payload);
      if (record.peerDigest !== peer.digest) throw new RecordRejectedError('rejected', 'stored client session belongs to another peer');
      if (record.expiresAtMs <= Date.now()) throw new RecordRejectedError('expired', 'stored client session has expired');
      if (record.der.length > this.#config.maxSessionBytes) {
        throw new RecordRejectedError('rejected', `stored client session of ${record.der.length} bytes is over maxSessionBytes`);
      }
      if (!this.#sealer) {
        // Unsealed bytes may have been damaged or written by anyone: prove them a session first.
        // (A sealed record was decoded and checked when this cache wrote it.)
        const session = Session.fromDER(record.der, { maxBytes: this.#config.maxSessionBytes });
        try {
          if (!session.isResumable) throw new RecordRejectedError('rejected', 'stored client session is not resumable');
          if (session.isExpired()) throw new RecordRejectedError('expired', 'stored client session has expired');
        } finally {
          session.free();
        }
      }
      const der = Buffer.from(record.der);
      const nodeSession = nodeSessionFormat().format === 'wrapped' ? buildNodeEnvelope(peer.identity, der) : der;
      return { nodeSession, use: record.use, key };
    } catch (error) {
      const refused = error instanceof RecordRejectedError ? error : new RecordRejectedError('rejected', (error as Error).message, error);
      if (refused.reason === 'expired') this.#counts.expired += 1;
      else this.#counts.rejected += 1;
      this.#report(refused);
      return undefined;
    }
  }

  /** Checks a session Node handed out and writes it; never rejects. */
  async #storeSession(peer: ClientPeer, nodeSession: Buffer): Promise<void> {
    let prepared: { record: Buffer; use: ClientSessionUse; ttlSeconds: number } | undefined;
    try {
      prepared = this.#prepare(peer, nodeSession);
    } catch (error) {
      this.#counts.rejected += 1;
      this.#report(error as Error);
      return;
    }
    if (prepared === undefined) return;
    const started = performance.now();
    try {
      const write = (async () => {
        if (this.#storeReady) await this.#storeReady;
        await this.#write(this.#poolKey(peer), prepared);
      })();
      await withDeadline('client session write', this.#config.writeBudgetMs, write);
      this.#counts.stored += 1;
    } catch (error) {
      this.#counts.errors += 1;
      this.#report(error as Error);
    } finally {
      this.#storeLatency.record(performance.now() - started);
    }
  }

  /** Decodes once to learn the protocol and every bound on the session's life; undefined to skip it. */
  #prepare(peer: ClientPeer, nodeSession: Buffer): { record: Buffer; use: ClientSessionUse; ttlSeconds: number } | undefined {
    let der: Buffer = nodeSession;
    if (hasNodeEnvelopeMagic(nodeSession)) {
      const parsed = parseNodeEnvelope(nodeSession);
      if (parsed.host.toLowerCase() !== peer.identity.toLowerCase()) {
        throw new RecordRejectedError('rejected', "Node bound the connection's session to another host than the connection's");
      }
      der = Buffer.from(parsed.der.buffer, parsed.der.byteOffset, parsed.der.byteLength);
    }
    if (der.length > this.#config.maxSessionBytes) {
      throw new RecordRejectedError(
        'rejected',
        `new client session of ${der.length} bytes is over maxSessionBytes (${this.#config.maxSessionBytes})`,
      );
    }
    const now = Date.now();
    let expiresAtMs = now + this.#config.maxAgeSeconds * 1000;
    let use: ClientSessionUse;
    const session = Session.fromDER(der, { maxBytes: this.#config.maxSessionBytes });
    try {
      if (!session.isResumable) throw new RecordRejectedError('rejected', 'new client session is not resumable');
      use = session.protocol === 'TLSv1.3' ? 'single-use' : 'reusable';
      expiresAtMs = Math.min(expiresAtMs, session.expiresAt.getTime());
      const hint = session.ticketLifetimeHint;
      if (hint > 0) expiresAtMs = Math.min(expiresAtMs, session.startTime.getTime() + hint * 1000);
      const notAfter = Date.parse(session.peerCertificate?.validTo ?? '');
      if (Number.isFinite(notAfter)) expiresAtMs = Math.min(expiresAtMs, notAfter);
    } finally {
      session.free();
    }
    const ttlSeconds = Math.floor((expiresAtMs - now) / 1000);
    if (ttlSeconds < 1) {
      this.#counts.expired += 1;
      return undefined;
    }
    const poolKey = this.#poolKey(peer);
    const payload = encodeClientRecord({ use, expiresAtMs, peerDigest: peer.digest, der });
    const record = this.#sealer ? this.#sealer.seal(poolKey, payload) : wrapPlain(payload);
    return { record, use, ttlSeconds };
  }

  /** Reusable: one key, replaced. Single-use: a free pool slot if there is one, else a random slot is replaced. */
  async #write(poolKey: string, { record, use, ttlSeconds }: { record: Buffer; use: ClientSessionUse; ttlSeconds: number }): Promise<void> {
    if (use === 'reusable') {
      await this.#store.set(`${poolKey}:r`, record, ttlSeconds);
      return;
    }
    const { poolSize } = this.#config;
    const first = Math.floor(Math.random() * poolSize);
    if (typeof this.#store.setIfAbsent === 'function') {
      for (let i = 0; i < poolSize; i++) {
        if (await this.#store.setIfAbsent(`${poolKey}:${(first + i) % poolSize}`, record, ttlSeconds)) return;
      }
    }
    await this.#store.set(`${poolKey}:${first}`, record, ttlSeconds);
  }

  #deleteQuietly(key: string): void {
    withDeadline('client session delete', this.#config.writeBudgetMs, this.#store.delete(key)).catch((error: Error) => {
      this.#counts.errors += 1;
      this.#report(error);
    });
  }
}

type CachingAgentClass = new (cache: ClientSessionCache, options: https.AgentOptions) => https.Agent;
let cachingAgent: CachingAgentClass | undefined;

/** Made on first use, so that requiring the package does not load node:https. */
function cachingAgentClass(): CachingAgentClass {
  if (cachingAgent) return cachingAgent;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Agent } = require('node:https') as typeof https;
  class ClientSessionCacheAgent extends Agent {
    readonly #cache: ClientSessionCache;
    constructor(cache: ClientSessionCache, options: https.AgentOptions) {
      // maxCachedSessions 0: the agent's in-memory cache would only shadow ours.
      super({ ...options, maxCachedSessions: 0 });
      this.#cache = cache;
    }
    // The callback form: http.Agent waits for it, so the store lookup can be asynchronous.
    override createConnection(options: https.RequestOptions, callback?: (err: Error | null, stream: Duplex) => void): undefined {
      this.#cache.openForAgent(options as tls.ConnectionOptions, (error, socket) => callback?.(error, socket));
      return undefined;
    }
  }
  cachingAgent = ClientSessionCacheAgent;
  return cachingAgent;
}
