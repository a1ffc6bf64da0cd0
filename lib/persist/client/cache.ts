/**
 * ClientSessionCache: TLS client sessions that outlive the process. Node's clients keep
 * sessions in memory only (https.Agent's maxCachedSessions, undici's connector), so a CLI, a cron
 * job or a restarted worker pays a full handshake to a server it talked to a second ago. This
 * keeps them in a SessionStore (SqliteStore on one machine, RedisStore for a fleet of clients).
 *
 * - A resumed connection is not verified again (Node takes the verify result from the session), so
 *   the session offered is the trust decision. Records are authenticated (sealed) by default:
 *   with `secret`, else with a key local to the machine for SqliteStore and MemoryStore
 *   (local-key.ts); other stores need `secret` (threat model: docs/PERSISTENCE.md).
 * - Keyed by the peer and the whole trust policy (peer.ts): a session is never offered to
 *   another host, port, servername, ALPN list, version range, CA set (or default trust store),
 *   verification setting or client identity; before it is offered, its certificate is run
 *   through the connection's checkServerIdentity, as a full handshake's would be.
 * - Options are read once, at the call (the lookup awaits the store).
 * - TLS 1.3 tickets are single-use (RFC 8446 §C.4): a small pool per peer, each connection takes
 *   one with the store's atomic take(). TLS 1.2 sessions are kept under one key and reused. For
 *   servers that send no new ticket after a resumption, `reuseTickets` (off by default) offers
 *   the last ticket taken for the peer again when its pool is empty (a privacy cost: see there).
 * - The lookup has a budget (default 50 ms): a slow or dead store costs at most that, then the
 *   connection goes ahead with a full handshake. Store failures never reject a connection.
 * - Sessions arrive after the handshake (TLS 1.3 sends tickets then); writes are tracked so that
 *   flush()/close() can wait for them before a short-lived process exits. A TLS 1.3 socket
 *   destroyed before its tickets came keeps reading for at most ticketWaitMs (its 'close' waits).
 */
import type * as https from 'node:https';
import type { X509Certificate } from 'node:crypto';
import * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { invalidArgType, invalidArgValue, outOfRange } from '../../errors';
import { buildNodeEnvelope, hasNodeEnvelopeMagic, parseNodeEnvelope } from '../../node-session';
import { muteSocketReads, nodeSessionFormat } from '../../node-internals';
import { Session } from '../../session';
import {
  clientHandshakeObserved,
  errorCode,
  publishClientHandshake,
  publishClientStore,
  resumptionMechanism,
  type ClientNotOfferedReason,
} from '../../metrics/events';
import { fileKey, inProcessKey } from './local-key';
import { clientPeerOf, snapshotOptions, type ClientPeer } from './peer';
import { openClientSessionRecord, sealClientSessionRecord, type ClientSessionUse } from '../records/client-session';
import { clockOption, type Clock } from '../clock';
import { ClientConnectTimeoutError, RecordRejectedError, StoreClosedError, StoreTimeoutError } from '../errors';
import { MemoryStore } from '../stores/memory';
import { Sealer, type Secret } from '../records/envelope';
import { SqliteStore } from '../stores/sqlite';
import { LatencyReservoir, type LatencyPercentiles } from '../counters';
import { assertSessionStore, type SessionStore } from '../stores/contract';
import { StoreGateway } from '../stores/gateway';
import { booleanOption, choiceOption, excludeEachOther, functionOption, integerOption, optionsObject, stringOption } from '../options';

export interface ClientSessionCacheOptions {
  /** Where sessions live: SqliteStore for one machine, RedisStore for a fleet, MemoryStore for one process. */
  store: SessionStore;
  /**
   * Seal and authenticate records with AES-256-GCM (same forms as attachSessionStore's secret;
   * its own subkey). Required for stores other than SqliteStore and MemoryStore (RedisStore, your
   * own): every client sharing the store needs the same secret. Without it, SqliteStore records
   * are sealed with a key kept in `<file>.key` (mode 0600) and MemoryStore ones with a key held in
   * this process.
   */
  secret?: Secret;
  /**
   * 'accept-forgeable': store and accept unsealed records, as before records were authenticated.
   * Anyone who can write the store can then make this client trust any server it connects to
   * (a record is only data: any certificate, any master key). For tests and migrations only.
   */
  unauthenticatedRecords?: 'accept-forgeable';
  /**
   * How long a TLS 1.3 socket destroyed before its session tickets arrived keeps reading for
   * them (default 250 ms; 0: not at all). Servers send tickets one round trip after the handshake;
   * the socket's 'close' waits, and close()/flush() wait for it.
   */
  ticketWaitMs?: number;
  /** Longest the store may delay a connection before it goes ahead with a full handshake (default 50 ms). */
  budgetMs?: number;
  /** Longest a session write may take before it is counted as an error (default 1000 ms; writes run after the handshake). */
  writeBudgetMs?: number;
  /** Upper bound on how long a session is kept, whatever the server allows (default 86 400 s, one day). */
  maxAgeSeconds?: number;
  /** TLS 1.3 tickets kept per peer (default 4); each connection takes one. */
  poolSize?: number;
  /**
   * Offer a peer's last TLS 1.3 ticket again when its pool is empty (default false: a full
   * handshake). For servers that send no new ticket after a resumption (Node's own, unless the
   * ticket-key callback renews: TicketKeyRing does by default), where a client that connects once
   * per process otherwise resumes two times in three. The cost is privacy: a ticket is sent in
   * the clear in the ClientHello, so a network observer links every connection that offers the
   * same one (RFC 8446 C.4 asks clients not to reuse tickets for this reason). A server may
   * refuse a ticket it saw before (anti-replay, stateful tickets): that costs a full handshake,
   * and the ticket is dropped. No early data (0-RTT) is sent, reused or not. The ticket is kept
   * under the peer's key, sealed as the pool's are, and expires as they do (its lifetime, the
   * certificate's, maxAgeSeconds); only a ticket the server accepted (a resumption) is kept.
   */
  reuseTickets?: boolean;
  /** Prefix of every store key (default 'client:'); keep it apart from a server's 'session:'. */
  keyPrefix?: string;
  /** Largest session DER stored or offered (default 32 KiB: a client session holds the server's certificate). */
  maxSessionBytes?: number;
  /** Told about every store failure and refused record; must not throw (if it does, that is ignored). */
  onError?: (error: Error) => void;
  /**
   * The clock expiry and `maxAgeSeconds` are decided by: milliseconds since the epoch (default
   * Date.now), as Go's tls.Config.Time. For tests and simulations; OpenSSL still checks a
   * session's lifetime against the real time when it resumes it, and a store's own TTLs (Redis)
   * run on the store's clock.
   */
  now?: Clock;
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
  /** Records dropped as corrupt, tampered, unsealed (forgeable), of another peer, oversized, not resumable, or refused by checkServerIdentity. */
  rejected: number;
  /** Store calls that failed or ran over their budget. */
  errors: number;
  /** Connections that could not use the cache (a secureContext or pskCallback was given). */
  bypassed: number;
  /** Of the offered, TLS 1.3 tickets offered again because the peer's pool was empty (reuseTickets). */
  reusedTickets: number;
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

/** What a lookup found out, for the connection's `tls-session:client:handshake` event. */
interface LookupOutcome {
  notOfferedReason?: ClientNotOfferedReason;
  latencyMs?: number;
}

/** A connection the caller gave its own session: no lookup. */
function callerSession(outcome: LookupOutcome): undefined {
  outcome.notOfferedReason = 'caller-session';
  return undefined;
}

interface Offer {
  /** What tls.connect({ session }) takes on this Node (wrapped for the peer's identity, or DER). */
  nodeSession: Buffer;
  use: ClientSessionUse;
  /** Where a reusable session lives (deleted when the server no longer resumes it). */
  key: string;
  /** The record as stored (sealed), and when it expires: a resumed ticket is kept for reuse (reuseTickets). */
  stored: Buffer;
  expiresAtMs: number;
  /** Offered from the reuse slot (`<key>:u`) because the pool was empty: deleted when the server refuses it. */
  reused: boolean;
}

/** A record only this connection's checkServerIdentity refused: kept for the connections it suits. */
interface RefusedByCheck {
  expiresAtMs: number;
}

const DEFAULTS = {
  budgetMs: 50,
  writeBudgetMs: 1000,
  maxAgeSeconds: 86_400,
  poolSize: 4,
  keyPrefix: 'client:',
  maxSessionBytes: 32 * 1024,
  ticketWaitMs: 250,
  reuseTickets: false,
};

/** The store key of a peer's last TLS 1.3 ticket taken and resumed, kept for reuseTickets (beside its pool's slots). */
const reuseSlotOf = (poolKey: string): string => `${poolKey}:u`;

/** The connector's defaults, as undici's own connector has them (buildConnector). */
const CONNECTOR_DEFAULTS = { timeout: 10_000, keepAlive: true, keepAliveInitialDelay: 60_000 };

/** The sealer for a cache without `secret`: a key local to the machine where the store is, else none possible. */
function localSealer(store: SessionStore): Sealer {
  let key: Buffer;
  if (store instanceof MemoryStore) key = Buffer.from(inProcessKey(store));
  else if (store instanceof SqliteStore) key = store.path === ':memory:' ? Buffer.from(inProcessKey(store)) : fileKey(`${store.path}.key`);
  else {
    throw invalidArgValue(
      'options.secret',
      '32 random bytes, the same for every client of the store, for a store other than SqliteStore or MemoryStore ' +
        '(whoever can write an unauthenticated store can make this client trust any server; ' +
        "unauthenticatedRecords: 'accept-forgeable' turns that protection off)",
      'undefined',
    );
  }
  try {
    return new Sealer([{ id: 'local', key }], 'client-session');
  } finally {
    key.fill(0);
  }
}

export class ClientSessionCache {
  /** Every store call goes through it: after ready(), within a budget, one failure path. */
  readonly #gateway: StoreGateway;
  readonly #sealer: Sealer | undefined;
  readonly #config: typeof DEFAULTS;
  readonly #now: Clock;
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
    reusedTickets: 0,
  };
  #closed = false;
  /** Set once close() has waited for everything: sessions arriving later are not written. */
  #drained = false;

  constructor(options: ClientSessionCacheOptions) {
    optionsObject(options);
    const { store } = options;
    assertSessionStore(store, 'options.store');
    const config = {
      budgetMs: integerOption(options.budgetMs, 'options.budgetMs', DEFAULTS.budgetMs, 1, 60_000),
      writeBudgetMs: integerOption(options.writeBudgetMs, 'options.writeBudgetMs', DEFAULTS.writeBudgetMs, 1, 600_000),
      maxAgeSeconds: integerOption(options.maxAgeSeconds, 'options.maxAgeSeconds', DEFAULTS.maxAgeSeconds, 1, 7 * 86_400),
      poolSize: integerOption(options.poolSize, 'options.poolSize', DEFAULTS.poolSize, 1, 64),
      maxSessionBytes: integerOption(options.maxSessionBytes, 'options.maxSessionBytes', DEFAULTS.maxSessionBytes, 256, 1024 * 1024),
      ticketWaitMs: integerOption(options.ticketWaitMs, 'options.ticketWaitMs', DEFAULTS.ticketWaitMs, 0, 10_000),
      keyPrefix: stringOption(options.keyPrefix, 'options.keyPrefix', DEFAULTS.keyPrefix),
      reuseTickets: booleanOption(options.reuseTickets, 'options.reuseTickets', DEFAULTS.reuseTickets),
    };
    functionOption(options.onError, 'options.onError');
    this.#now = clockOption(options.now);
    const { secret } = options;
    const unauthenticatedRecords =
      options.unauthenticatedRecords === undefined
        ? undefined
        : choiceOption(options.unauthenticatedRecords, 'options.unauthenticatedRecords', ['accept-forgeable'] as const, 'accept-forgeable');
    if (unauthenticatedRecords !== undefined && secret !== undefined)
      throw excludeEachOther('options.unauthenticatedRecords', 'options.secret');
    this.#sealer =
      secret !== undefined ? new Sealer(secret, 'client-session') : unauthenticatedRecords === undefined ? localSealer(store) : undefined;
    this.#config = config;
    this.#gateway = new StoreGateway(store, {
      onError: options.onError,
      onFailure: () => {
        this.#counts.errors += 1;
      },
    });
    // Waiting for ready() from now: a store that cannot connect is reported without a first connection.
    void this.#gateway.start();
  }

  /**
   * Like tls.connect(options), resolving with the socket at 'secureConnect' (rejecting with the
   * connection's error before it). Offers a cached session when one fits this peer; stores the
   * sessions the connection receives. Store trouble never rejects: it costs a full handshake.
   * `options` is read once, here; `timeout` also bounds the handshake (counted from this call):
   * past it the socket is destroyed and this rejects (ERR_TLS_SESSION_CONNECT_TIMEOUT).
   */
  async connect(options: tls.ConnectionOptions): Promise<tls.TLSSocket> {
    this.#checkOpen();
    const settings = snapshotOptions(options);
    const timeoutMs = typeof settings.timeout === 'number' && settings.timeout > 0 ? settings.timeout : undefined;
    return this.#connect(settings, timeoutMs);
  }

  /** connect() on a snapshot, with a handshake deadline of `timeoutMs` from now (none if undefined). */
  async #connect(settings: tls.ConnectionOptions, timeoutMs: number | undefined): Promise<tls.TLSSocket> {
    const started = performance.now();
    const peer = clientPeerOf(settings);
    const outcome: LookupOutcome = {};
    const offer = settings.session === undefined ? await this.#offerFor(peer, outcome) : callerSession(outcome);
    const target = typeof settings.path === 'string' ? settings.path : `${settings.host ?? 'localhost'}:${settings.port ?? ''}`;
    const left = timeoutMs === undefined ? undefined : timeoutMs - (performance.now() - started);
    if (left !== undefined && left <= 0) throw new ClientConnectTimeoutError(target, timeoutMs!);
    const socket = this.#open(settings, peer, offer, outcome);
    return new Promise<tls.TLSSocket>((resolve, reject) => {
      const timer =
        left === undefined ? undefined : setTimeout(() => socket.destroy(new ClientConnectTimeoutError(target, timeoutMs!)), left);
      const onError = (error: Error): void => {
        clearTimeout(timer);
        socket.removeListener('secureConnect', onSecure);
        reject(error);
      };
      const onSecure = (): void => {
        clearTimeout(timer);
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
   * https connection, as they are now (copied here, as undici's own connector copies its
   * options); plain http connections are opened without TLS. As undici's connector: `timeout`
   * bounds connect and handshake (default 10 000 ms; 0: none), `keepAlive` (default true) with
   * `keepAliveInitialDelay` (default 60 000 ms) sets TCP keep-alive.
   */
  createConnector(tlsOptions: ConnectorOptions = {}): UndiciConnector {
    this.#checkOpen();
    if (tlsOptions === null || typeof tlsOptions !== 'object')
      throw invalidArgType('tlsOptions', 'an object (tls.connect options)', tlsOptions);
    const {
      timeout = CONNECTOR_DEFAULTS.timeout,
      keepAlive = CONNECTOR_DEFAULTS.keepAlive,
      keepAliveInitialDelay = CONNECTOR_DEFAULTS.keepAliveInitialDelay,
      ...settings
    } = snapshotOptions(tlsOptions);
    for (const [name, value] of [
      ['timeout', timeout],
      ['keepAliveInitialDelay', keepAliveInitialDelay],
    ] as const) {
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw outOfRange(`tlsOptions.${name}`, 'a number >= 0', value);
    }
    booleanOption(keepAlive, 'tlsOptions.keepAlive', CONNECTOR_DEFAULTS.keepAlive);
    const timeoutMs = timeout > 0 ? timeout : undefined;
    const prepare = (socket: net.Socket): void => {
      socket.setNoDelay(true);
      if (keepAlive) socket.setKeepAlive(true, keepAliveInitialDelay);
    };
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
        const timer =
          timeoutMs === undefined
            ? undefined
            : setTimeout(() => socket.destroy(new ClientConnectTimeoutError(`${hostname}:${port}`, timeoutMs)), timeoutMs);
        socket.once('connect', () => {
          clearTimeout(timer);
          prepare(socket);
          done(null, socket);
        });
        socket.once('error', (error) => {
          clearTimeout(timer);
          done(error, null);
        });
        return;
      }
      if (this.#closed) {
        done(new StoreClosedError('the client session cache is closed'), null);
        return;
      }
      const servername = target.servername ?? settings.servername ?? (net.isIP(hostname) === 0 ? hostname : undefined);
      this.#connect(
        {
          ALPNProtocols: ['http/1.1'],
          ...settings,
          host: hostname,
          port,
          ...(servername !== undefined && { servername }),
          ...local,
          ...(target.httpSocket !== undefined && { socket: target.httpSocket }),
        },
        timeoutMs,
      ).then(
        (socket) => {
          prepare(socket);
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

  /**
   * Refuses new connections (ERR_TLS_SESSION_STORE_CLOSED), waits for pending writes (and for
   * the tickets of TLS 1.3 sockets destroyed early, at most ticketWaitMs). The store stays open: it is yours.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await this.flush();
    this.#drained = true;
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
    let settings: tls.ConnectionOptions;
    try {
      settings = snapshotOptions(options);
      peer = clientPeerOf(settings);
    } catch (error) {
      callback(error as Error, undefined as unknown as Duplex);
      return;
    }
    const outcome: LookupOutcome = {};
    const lookup = settings.session === undefined ? this.#offerFor(peer, outcome) : Promise.resolve(callerSession(outcome));
    void lookup.then((offer) => {
      let socket: tls.TLSSocket;
      try {
        socket = this.#open(settings, peer, offer, outcome);
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
    this.#gateway.report(error);
  }

  #poolKey(peer: ClientPeer): string {
    return this.#config.keyPrefix + peer.digest;
  }

  /** tls.connect with the offer, watching the connection for its outcome and its sessions. */
  #open(options: tls.ConnectionOptions, peer: ClientPeer, offer: Offer | undefined, outcome: LookupOutcome): tls.TLSSocket {
    const socket = tls.connect(offer ? { ...options, session: offer.nodeSession } : options);
    if (peer.bypass !== undefined && offer === undefined && options.session === undefined) return socket;
    const received: Buffer[] = [];
    let established = false;
    let sessions = 0;
    const onSession = (nodeSession: Buffer): void => {
      sessions += 1;
      if (this.#drained) return; // after close() finished: nothing more is written
      if (established) this.#storeLater(peer, [nodeSession]);
      else received.push(nodeSession);
    };
    socket.on('session', onSession);
    socket.once('secureConnect', () => {
      established = true;
      if (clientHandshakeObserved()) {
        const protocol = socket.getProtocol();
        const resumed = socket.isSessionReused();
        publishClientHandshake({
          protocol: protocol ?? 'unknown',
          offered: offer !== undefined,
          notOfferedReason: offer === undefined ? outcome.notOfferedReason : undefined,
          resumed,
          mechanism: resumptionMechanism(protocol, resumed, socket.getTLSTicket() !== undefined),
          lookupLatencyMs: outcome.latencyMs,
          ticketsStored: sessions,
        });
      }
      if (offer) {
        if (socket.isSessionReused()) {
          this.#counts.resumed += 1;
          // The server accepted this ticket: it is the one to offer again once the pool is empty.
          if (this.#config.reuseTickets && offer.use === 'single-use' && !offer.reused && (!peer.verifies || socket.authorized)) {
            this.#keepForReuse(peer, offer);
          }
        } else {
          this.#counts.notResumed += 1;
          if (offer.use === 'reusable' || offer.reused) this.#deleteQuietly(offer.key);
        }
      }
      // A verifying connection reaches secureConnect only once verified; keep nothing otherwise.
      if (peer.verifies && !socket.authorized) {
        socket.removeListener('session', onSession);
        return;
      }
      const early = received.splice(0);
      if (early.length > 0) this.#storeLater(peer, early);
      if (sessions === 0 && this.#config.ticketWaitMs > 0 && socket.getProtocol() === 'TLSv1.3') this.#holdForTickets(socket);
    });
    socket.once('close', () => socket.removeListener('session', onSession));
    return socket;
  }

  /**
   * TLS 1.3 tickets come one round trip after 'secureConnect'; a caller that destroys the socket
   * at once (a CLI that only needed the handshake, an agent closing an idle socket) would never
   * read them. Until the first ticket, destroy() without an error keeps the TCP connection
   * reading for at most ticketWaitMs before it really closes ('close' comes then; the socket is
   * `destroyed` at once). The wait is tracked: close() and flush() wait for it.
   */
  #holdForTickets(socket: tls.TLSSocket): void {
    const original = socket._destroy;
    let ticketed = false;
    socket.once('session', () => (ticketed = true));
    socket._destroy = (error, callback) => {
      socket._destroy = original;
      // Node's reader pushes to the stream and fails on one already destroyed: data read while
      // waiting is dropped, as net's own _destroy does (tickets come through another callback).
      // Where the reader cannot be replaced (node-internals.ts), the socket closes at once.
      if (error || ticketed || this.#drained || socket.readableEnded || !muteSocketReads(socket)) {
        original.call(socket, error, callback);
        return;
      }
      const waited = new Promise<void>((resolve) => {
        const finish = (): void => {
          clearTimeout(timer);
          socket.removeListener('session', onTicket);
          resolve();
        };
        // A server sends its tickets in one flight: the others are read in the same turn.
        const onTicket = (): void => void setImmediate(finish);
        const timer = setTimeout(finish, this.#config.ticketWaitMs);
        socket.once('session', onTicket);
      }).then(() => original.call(socket, null, callback));
      this.#track(waited);
    };
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
  async #offerFor(peer: ClientPeer, outcome: LookupOutcome): Promise<Offer | undefined> {
    if (peer.bypass !== undefined) {
      this.#counts.bypassed += 1;
      outcome.notOfferedReason = 'bypassed';
      return undefined;
    }
    this.#counts.lookups += 1;
    const started = performance.now();
    // SQLite answers synchronously (a lock waits out busyTimeoutMs on the event loop, where no
    // timer can interrupt it): #find also checks the clock between store calls.
    const lookup = { abandoned: false, deadline: started + this.#config.budgetMs };
    try {
      const offer = await this.#gateway.run('client session lookup', this.#config.budgetMs, (store) => this.#find(store, peer, lookup));
      if (offer) {
        this.#counts.offered += 1;
        if (offer.reused) this.#counts.reusedTickets += 1;
      } else {
        this.#counts.misses += 1;
        outcome.notOfferedReason = 'not-cached';
      }
      return offer;
    } catch (error) {
      lookup.abandoned = true;
      this.#counts.misses += 1;
      outcome.notOfferedReason = error instanceof StoreTimeoutError ? 'store-timeout' : 'store-error';
      this.#gateway.fail(error as Error);
      return undefined;
    } finally {
      outcome.latencyMs = performance.now() - started;
      this.#lookupLatency.record(outcome.latencyMs);
    }
  }

  /**
   * A reusable session first, else a ticket taken from the pool (starting at a random slot, so
   * processes spread out), else with reuseTickets the peer's last ticket again (read, not taken).
   */
  async #find(store: SessionStore, peer: ClientPeer, lookup: { abandoned: boolean; deadline: number }): Promise<Offer | undefined> {
    const inTime = (): boolean => {
      if (lookup.abandoned) return false;
      if (performance.now() < lookup.deadline) return true;
      throw new StoreTimeoutError('client session lookup', this.#config.budgetMs);
    };
    const poolKey = this.#poolKey(peer);
    const reusableKey = `${poolKey}:r`;
    if (!inTime()) return undefined;
    const reusable = await store.get(reusableKey);
    if (reusable !== undefined) {
      const offer = this.#accept(peer, reusableKey, reusable);
      if (offer && 'nodeSession' in offer) return offer;
      if (offer === undefined) this.#deleteQuietly(reusableKey); // kept when only this connection's check refused it
    }
    const { poolSize } = this.#config;
    const first = Math.floor(Math.random() * poolSize);
    for (let i = 0; i < poolSize && inTime(); i++) {
      const key = `${poolKey}:${(first + i) % poolSize}`;
      const record = await takeRecord(store, key);
      if (record === undefined) continue;
      const offer = this.#accept(peer, key, record);
      if (offer && 'nodeSession' in offer) return offer;
      if (offer) this.#putBack(key, record, offer.expiresAtMs);
    }
    if (!this.#config.reuseTickets || !inTime()) return undefined;
    // The pool is empty: the last ticket this peer's server accepted, under the same key and seal.
    const reuseKey = reuseSlotOf(poolKey);
    const last = await store.get(reuseKey);
    if (last === undefined) return undefined;
    const offer = this.#accept(peer, reuseKey, last);
    if (offer && 'nodeSession' in offer) return offer.use === 'single-use' ? { ...offer, reused: true } : undefined;
    if (offer === undefined) this.#deleteQuietly(reuseKey); // kept when only this connection's check refused it
    return undefined;
  }

  /**
   * Keeps a ticket the server just accepted in the peer's reuse slot (replacing the one before),
   * until the record expires. Off the connection's path, tracked; nothing after close().
   */
  #keepForReuse(peer: ClientPeer, offer: Offer): void {
    if (this.#drained) return;
    const ttlSeconds = this.#secondsLeft(offer.expiresAtMs);
    if (ttlSeconds < 1) return;
    const key = reuseSlotOf(this.#poolKey(peer));
    this.#behind('client session write', (store) => store.set(key, offer.stored, ttlSeconds));
  }

  /**
   * Returns a ticket this connection's checkServerIdentity refused to its slot: it is good for the
   * connections whose check it passed (two closures of one pin factory share a key). Off the
   * connection's path, tracked.
   */
  #putBack(key: string, record: Buffer, expiresAtMs: number): void {
    const ttlSeconds = this.#secondsLeft(expiresAtMs);
    if (ttlSeconds < 1) return;
    this.#behind('client session write', async (store) => {
      if (typeof store.setIfAbsent === 'function') await store.setIfAbsent(key, record, ttlSeconds);
      else await store.set(key, record, ttlSeconds);
    });
  }

  /** Opens and checks one record; undefined (counted, reported) when it must not be offered. */
  #accept(peer: ClientPeer, key: string, stored: Buffer): Offer | RefusedByCheck | undefined {
    let refusedByCheck: RefusedByCheck | undefined;
    try {
      const { record, session } = openClientSessionRecord(this.#sealer, this.#poolKey(peer), stored, {
        peerDigest: peer.digest,
        maxSessionBytes: this.#config.maxSessionBytes,
        now: this.#now(),
      });
      try {
        refusedByCheck = { expiresAtMs: record.expiresAtMs };
        this.#recheck(peer, session.peerCertificate!);
        refusedByCheck = undefined;
      } finally {
        session.free();
      }
      const der = Buffer.from(record.der);
      const nodeSession = nodeSessionFormat().format === 'wrapped' ? buildNodeEnvelope(peer.identity, der) : der;
      return { nodeSession, use: record.use, key, stored, expiresAtMs: record.expiresAtMs, reused: false };
    } catch (error) {
      const refused = error instanceof RecordRejectedError ? error : new RecordRejectedError('rejected', (error as Error).message, error);
      if (refused.reason === 'expired') this.#counts.expired += 1;
      else this.#counts.rejected += 1;
      this.#report(refused);
      return refusedByCheck;
    }
  }

  /**
   * Node skips checkServerIdentity on a resumed connection: run it here, on the certificate the
   * session holds, with the name Node would give it. The object is the one Node's
   * getPeerCertificate(true) gives, but for the leaf only (a session keeps no chain:
   * `issuerCertificate` is absent). A check that returns an error or throws refuses the session
   * for this connection (counted in `rejected`, reported); the record stays for the others.
   */
  #recheck(peer: ClientPeer, certificate: X509Certificate): void {
    let failure: unknown;
    try {
      failure = peer.checkServerIdentity(peer.checkHost, certificate.toLegacyObject());
    } catch (error) {
      failure = error;
    }
    if (failure !== undefined && failure !== null) {
      const reason = failure instanceof Error ? failure.message : String(failure);
      throw new RecordRejectedError(
        'rejected',
        `stored client session's certificate fails checkServerIdentity for ${peer.checkHost}: ${reason}`,
        failure,
      );
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
      await this.#gateway.run('client session write', this.#config.writeBudgetMs, (store) =>
        writeRecord(store, this.#poolKey(peer), prepared, this.#config.poolSize),
      );
      this.#counts.stored += 1;
      publishClientStore({ ok: true, latencyMs: performance.now() - started });
    } catch (error) {
      publishClientStore({ ok: false, latencyMs: performance.now() - started, errorCode: errorCode(error) });
      this.#gateway.fail(error as Error);
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
    const now = this.#now();
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
    const record = sealClientSessionRecord(this.#sealer, poolKey, { use, expiresAtMs, peerDigest: peer.digest, der });
    return { record, use, ttlSeconds };
  }

  /** Deletes a record off the connection's path; tracked, so flush() and close() wait for it. */
  #deleteQuietly(key: string): void {
    this.#behind('client session delete', (store) => store.delete(key));
  }

  /** One store write off the connection's path: within writeBudgetMs, tracked (flush() and close() wait), a failure counted and reported. */
  #behind(operation: string, work: (store: SessionStore) => Promise<unknown>): void {
    this.#track(
      this.#gateway.call(operation, this.#config.writeBudgetMs, work).then(
        () => undefined,
        (error: Error) => this.#gateway.fail(error),
      ),
    );
  }

  /** Whole seconds until `expiresAtMs` on the cache's clock (a TTL for the store; < 1: nothing left to keep). */
  #secondsLeft(expiresAtMs: number): number {
    return Math.floor((expiresAtMs - this.#now()) / 1000);
  }
}

/** createConnector's options: tls.connect's, and undici's connector settings. */
export interface ConnectorOptions extends tls.ConnectionOptions {
  /** Longest connect and handshake, in ms (default 10 000, undici's; 0: no limit). */
  timeout?: number;
  /** TCP keep-alive on the connection (default true, as undici). */
  keepAlive?: boolean;
  /** Idle time before the first keep-alive probe, in ms (default 60 000, as undici). */
  keepAliveInitialDelay?: number;
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

/** Atomic where the store can (take); else read then delete, which two processes may race. */
async function takeRecord(store: SessionStore, key: string): Promise<Buffer | undefined> {
  if (typeof store.take === 'function') return store.take(key);
  const record = await store.get(key);
  if (record !== undefined) await store.delete(key);
  return record;
}

/** Reusable: one key, replaced. Single-use: a free pool slot if there is one, else a random slot is replaced. */
async function writeRecord(
  store: SessionStore,
  poolKey: string,
  { record, use, ttlSeconds }: { record: Buffer; use: ClientSessionUse; ttlSeconds: number },
  poolSize: number,
): Promise<void> {
  if (use === 'reusable') {
    await store.set(`${poolKey}:r`, record, ttlSeconds);
    return;
  }
  const first = Math.floor(Math.random() * poolSize);
  if (typeof store.setIfAbsent === 'function') {
    for (let i = 0; i < poolSize; i++) {
      if (await store.setIfAbsent(`${poolKey}:${(first + i) % poolSize}`, record, ttlSeconds)) return;
    }
  }
  await store.set(`${poolKey}:${first}`, record, ttlSeconds);
}
