/**
 * tls-session's diagnostics_channel events (docs/METRICS.md: names, payloads, stability).
 *
 * Publishers check `channel.hasSubscribers` before building a payload, so a process where nobody
 * subscribes pays one property read per handshake. Payloads carry protocol names, outcomes,
 * counts and durations only: never a session, a ticket, a key, a key name or a session ID.
 *
 * Node gives the server no per-connection link between its session callbacks and the socket that
 * completes the handshake. The store lookup (resumeSession) runs with the connection's TLSWrap
 * as the current async resource (node:async_hooks executionAsyncResource), which is how a
 * lookup's outcome is joined to its handshake. The ticket-key callback runs with no such link:
 * a ticket the ring refused is attributed to the next full handshake of the same server (counts
 * per reason are exact; under concurrency the very socket may be another one).
 */
import { executionAsyncResource } from 'node:async_hooks';
import * as diagnostics from 'node:diagnostics_channel';
import type * as tls from 'node:tls';

/** Channel names; the values are part of the public API (stable). */
export const CHANNELS = {
  serverHandshake: 'tls-session:server:handshake',
  serverLookup: 'tls-session:server:lookup',
  serverStore: 'tls-session:server:store',
  ringTicket: 'tls-session:ring:ticket',
  ringRotation: 'tls-session:ring:rotation',
  ringKeyAdopted: 'tls-session:ring:key-adopted',
  ringLocalKey: 'tls-session:ring:local-key',
  ringStore: 'tls-session:ring:store',
  clientHandshake: 'tls-session:client:handshake',
  clientStore: 'tls-session:client:store',
} as const;

export type ChannelName = (typeof CHANNELS)[keyof typeof CHANNELS];

export type Mechanism = 'session-id' | 'ticket' | 'none';

/** Why a session-ID lookup did not resume (attachSessionStore). */
export type LookupMissReason = 'store-miss' | 'filtered' | 'expired' | 'rejected' | 'incompatible' | 'store-error' | 'store-timeout';

/** Why a ticket was refused (TicketKeyRing). */
export type TicketMissReason = 'unknown-ticket-key' | 'retired-ticket-key';

/** Why a server handshake was full: the client offered nothing the server saw, or the lookup / ticket said why. */
export type MissReason = 'not-offered' | LookupMissReason | TicketMissReason;

export const MISS_REASONS: readonly MissReason[] = [
  'not-offered',
  'store-miss',
  'filtered',
  'expired',
  'rejected',
  'incompatible',
  'store-error',
  'store-timeout',
  'unknown-ticket-key',
  'retired-ticket-key',
];

/** `tls-session:server:handshake`: one per completed handshake on a server with attachSessionStore or TicketKeyRing. */
export interface ServerHandshakeEvent {
  /** 'TLSv1.3', 'TLSv1.2', … as socket.getProtocol() says. */
  protocol: string;
  resumed: boolean;
  /** How it resumed; 'none' for a full handshake. */
  mechanism: Mechanism;
  /** Set for a full handshake. */
  missReason?: MissReason;
  /** Milliseconds the store lookup of this handshake took, when there was one (TLS 1.2 session ID). */
  storeLatencyMs?: number;
}

/** `tls-session:server:lookup`: one per resumeSession lookup (including TLS 1.3's random legacy IDs). */
export interface ServerLookupEvent {
  outcome: 'hit' | LookupMissReason;
  /** Store time in ms (0 for 'filtered': the store was not asked). */
  latencyMs: number;
  /** The record came from the record cache (no decryption). */
  cached?: boolean;
}

/** `tls-session:server:store`: one per store write or delete of attachSessionStore. */
export interface ServerStoreEvent {
  /** 'set': a new session stored; 'delete': a refused record (expired, rejected) evicted. */
  operation: 'set' | 'delete';
  ok: boolean;
  latencyMs: number;
  /** The error's `code` when not ok ('ERR_TLS_SESSION_STORE_TIMEOUT', …). */
  errorCode?: string;
}

/** `tls-session:ring:ticket`: one per ticket-key callback (seal or open). */
export interface RingTicketEvent {
  outcome: 'issued' | 'accepted' | 'renewed' | TicketMissReason;
  /** Seconds since the key's epoch began, at this call (unset for unknown keys). */
  keyAgeSeconds?: number;
  /** The sealing key is local to this process (store unreachable). */
  localKey: boolean;
}

/** `tls-session:ring:rotation`: the key sealing new tickets changed. */
export interface RingRotationEvent {
  epoch: number;
  /** The epoch of the key that sealed until now (the same epoch when the store replaced its key). */
  previousEpoch: number;
  /** The new sealing key is local to this process. */
  localKey: boolean;
}

/** `tls-session:ring:key-adopted`: a fleet key read from (or written to) the store was taken. */
export interface RingKeyAdoptedEvent {
  epoch: number;
  /** This member created it in the store (else another member did). */
  created: boolean;
}

/** `tls-session:ring:local-key`: a key local to this process was made (the store could not give the fleet's). */
export interface RingLocalKeyEvent {
  epoch: number;
}

/** `tls-session:ring:store`: the ring's store went away ('outage') or answered again ('recovered'). */
export interface RingStoreEvent {
  state: 'outage' | 'recovered';
  errorCode?: string;
}

/** Why a ClientSessionCache connection offered no session. */
export type ClientNotOfferedReason = 'not-cached' | 'bypassed' | 'store-error' | 'store-timeout' | 'caller-session';

/** `tls-session:client:handshake`: one per ClientSessionCache connection at 'secureConnect'. */
export interface ClientHandshakeEvent {
  protocol: string;
  offered: boolean;
  notOfferedReason?: ClientNotOfferedReason;
  resumed: boolean;
  mechanism: Mechanism;
  /** Milliseconds the cache lookup took before tls.connect (unset when no lookup was made). */
  lookupLatencyMs?: number;
  /** Sessions (tickets) received on this connection by 'secureConnect' (TLS 1.3 tickets come later: see client:store). */
  ticketsStored: number;
}

/** `tls-session:client:store`: one per client session written to the cache's store. */
export interface ClientStoreEvent {
  ok: boolean;
  latencyMs: number;
  errorCode?: string;
}

export interface EventMap {
  'tls-session:server:handshake': ServerHandshakeEvent;
  'tls-session:server:lookup': ServerLookupEvent;
  'tls-session:server:store': ServerStoreEvent;
  'tls-session:ring:ticket': RingTicketEvent;
  'tls-session:ring:rotation': RingRotationEvent;
  'tls-session:ring:key-adopted': RingKeyAdoptedEvent;
  'tls-session:ring:local-key': RingLocalKeyEvent;
  'tls-session:ring:store': RingStoreEvent;
  'tls-session:client:handshake': ClientHandshakeEvent;
  'tls-session:client:store': ClientStoreEvent;
}

// diagnostics.channel() returns the same object for a name in the whole process (also across copies of this package).
export const channels = {
  serverHandshake: diagnostics.channel(CHANNELS.serverHandshake),
  serverLookup: diagnostics.channel(CHANNELS.serverLookup),
  serverStore: diagnostics.channel(CHANNELS.serverStore),
  ringTicket: diagnostics.channel(CHANNELS.ringTicket),
  ringRotation: diagnostics.channel(CHANNELS.ringRotation),
  ringKeyAdopted: diagnostics.channel(CHANNELS.ringKeyAdopted),
  ringLocalKey: diagnostics.channel(CHANNELS.ringLocalKey),
  ringStore: diagnostics.channel(CHANNELS.ringStore),
  clientHandshake: diagnostics.channel(CHANNELS.clientHandshake),
  clientStore: diagnostics.channel(CHANNELS.clientStore),
};

/** Subscribes `listener` to `name`, typed; returns the unsubscribe function. */
export function subscribe<N extends ChannelName>(name: N, listener: (event: EventMap[N]) => void): () => void {
  const wrapped = (message: unknown): void => listener(message as EventMap[N]);
  diagnostics.subscribe(name, wrapped);
  return () => void diagnostics.unsubscribe(name, wrapped);
}

/** The mechanism a resumed handshake used: TLS 1.3 resumes by ticket only (PSK); TLS 1.2 by ticket or session ID. */
export function resumptionMechanism(protocol: string | null, resumed: boolean, ticket: boolean): Mechanism {
  if (!resumed) return 'none';
  return protocol === 'TLSv1.3' || ticket ? 'ticket' : 'session-id';
}

/**
 * For ClientSessionCache (lib/persist/client/cache.ts): publishes one client handshake. Cheap
 * when nobody subscribes; never throws into the caller (a subscriber's exception is reported by
 * diagnostics_channel as an uncaught exception on the next tick, as Node does for every channel).
 */
/** Whether anyone subscribes to `tls-session:client:handshake` (so the payload is worth building). */
export function clientHandshakeObserved(): boolean {
  return channels.clientHandshake.hasSubscribers;
}

export function publishClientHandshake(payload: ClientHandshakeEvent): void {
  if (channels.clientHandshake.hasSubscribers) channels.clientHandshake.publish(payload);
}

/** For ClientSessionCache: publishes one session write to its store. */
export function publishClientStore(payload: ClientStoreEvent): void {
  if (channels.clientStore.hasSubscribers) channels.clientStore.publish(payload);
}

/** The `code` of an error, if it has a string one (never its message: messages may name hosts). */
export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

// --- the server side: one observer per tls.Server, shared by attachSessionStore and TicketKeyRing ---

interface LookupOutcome {
  reason: LookupMissReason | undefined;
  latencyMs: number;
}

/**
 * Where a lookup's outcome waits for its handshake: a property of the connection's TLSWrap, which
 * dies with it. (A WeakMap keyed by the TLSWrap cost ~1.4 µs per handshake in a CPU profile of a
 * busy server; a property every connection's handle gets alike costs nanoseconds.)
 */
const LOOKUP_OUTCOME = Symbol('tls-session lookup outcome');
type LookupCarrier = { [LOOKUP_OUTCOME]?: LookupOutcome | undefined };

/** At most this many refused tickets wait for their full handshake (a client that gave up leaves one behind). */
const MAX_PENDING_TICKET_MISSES = 1024;

/**
 * Joins a server's lookups and refused tickets to its completed handshakes and publishes
 * `tls-session:server:handshake`. One per server, kept while attachSessionStore or a
 * TicketKeyRing is attached (reference counted).
 */
export class ServerObserver {
  readonly #server: tls.Server;
  #users = 0;
  readonly #ticketMisses: TicketMissReason[] = [];

  constructor(server: tls.Server) {
    this.#server = server;
  }

  /**
   * attachSessionStore, called synchronously in its resumeSession listener: the connection
   * (its TLSWrap) the lookup runs for, or undefined while nobody subscribes.
   */
  connection(): object | undefined {
    if (!channels.serverHandshake.hasSubscribers) return undefined;
    const resource = executionAsyncResource();
    return resource !== null && typeof resource === 'object' ? resource : undefined;
  }

  /** attachSessionStore: a lookup's outcome (undefined: a hit) for `connection`. */
  lookup(connection: object, reason: LookupMissReason | undefined, latencyMs: number): void {
    try {
      (connection as LookupCarrier)[LOOKUP_OUTCOME] = { reason, latencyMs };
    } catch {
      /* a resource that takes no property (frozen): this lookup is not joined to its handshake */
    }
  }

  /** TicketKeyRing: a refused ticket, attributed to the server's next full handshake. */
  ticketMiss(reason: TicketMissReason): void {
    if (!channels.serverHandshake.hasSubscribers) return;
    if (this.#ticketMisses.length >= MAX_PENDING_TICKET_MISSES) this.#ticketMisses.shift();
    this.#ticketMisses.push(reason);
  }

  readonly #onSecure = (socket: tls.TLSSocket): void => {
    if (!channels.serverHandshake.hasSubscribers) return;
    try {
      const protocol = socket.getProtocol() ?? 'unknown';
      const resumed = socket.isSessionReused();
      const handle = (socket as unknown as { _handle?: object | null })._handle;
      const lookup = handle ? (handle as LookupCarrier)[LOOKUP_OUTCOME] : undefined;
      if (lookup) (handle as LookupCarrier)[LOOKUP_OUTCOME] = undefined;
      // TLS 1.3 ClientHellos carry a random legacy session ID: its lookup says nothing about resumption.
      const tls12Lookup = protocol !== 'TLSv1.3' ? lookup : undefined;
      const event: ServerHandshakeEvent = {
        protocol,
        resumed,
        mechanism: resumed
          ? protocol === 'TLSv1.3' || !tls12Lookup || tls12Lookup.reason !== undefined
            ? 'ticket'
            : 'session-id'
          : 'none',
      };
      if (!resumed) event.missReason = this.#ticketMisses.shift() ?? tls12Lookup?.reason ?? 'not-offered';
      if (tls12Lookup) event.storeLatencyMs = tls12Lookup.latencyMs;
      channels.serverHandshake.publish(event);
    } catch {
      /* observing must never break a connection */
    }
  };

  retain(): void {
    if (this.#users++ === 0) this.#server.on('secureConnection', this.#onSecure);
  }

  release(): void {
    if (this.#users === 0) return;
    if (--this.#users === 0) {
      this.#server.removeListener('secureConnection', this.#onSecure);
      observers.delete(this.#server);
    }
  }
}

const observers = new WeakMap<tls.Server, ServerObserver>();

/** The server's observer, retained once for the caller (release() when detaching). */
export function observeServer(server: tls.Server): ServerObserver {
  let observer = observers.get(server);
  if (!observer) {
    observer = new ServerObserver(server);
    observers.set(server, observer);
  }
  observer.retain();
  return observer;
}
