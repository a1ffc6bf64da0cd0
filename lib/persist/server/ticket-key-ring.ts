/**
 * TicketKeyRing: fleet-wide TLS session ticket keys (TLS 1.3 resumption, and TLS 1.2 tickets).
 *
 * Time is cut into epochs of `rotationSeconds`. The key of epoch N lives in the store under a key
 * naming N; the first member to need it creates it with setIfAbsent, every other member reads the
 * same bytes, ahead of time (halfway through epoch N-1): Node asks for ticket keys synchronously,
 * in the middle of a handshake, so they must already be here.
 *
 * Node keeps one ticket key per context (setTicketKeys replaces it), which would make every ticket
 * fail at each rotation. The ring therefore installs Node's internal ticket-key callback on the
 * server's contexts (`context.enableTicketKeyCallback()` + `context.onticketkeycallback`): the
 * current key seals new tickets; older keys still open tickets for `retentionSeconds` after they
 * stopped sealing. Every ticket opened is renewed by default (answer 2: a new ticket under the
 * current key): TLS 1.3 tickets are single-use, and Node's servers send a TLS 1.3 client no new
 * ticket after a resumption otherwise (`renewTickets: 'retired'` renews only tickets of keys that
 * stopped sealing, as before). A cluster worker's listen() replaces the context's setTicketKeys
 * key with the primary's cached one, but does not touch the callback. A Node without that
 * internal gets setTicketKeys (one key) and a warning.
 *
 * The store may be away. At start the ring waits for store.ready() (the store's start-up budget)
 * and then, if it still cannot reach the store, seals with a key local to this process. During an
 * outage it keeps sealing with the last fleet key while that key is within its retention (members
 * keep resuming each other's tickets). Either way it retries every second and converges on the
 * fleet's key once the store answers. It re-reads its key at least every 10 s, so a store that lost
 * the keys (restarted empty, failed over) gets back the key the members already use. Nothing here throws at a caller or into a
 * handshake: failures are counted (stats()) and reported (onError).
 */
import { randomBytes } from 'node:crypto';
import { RandomPool } from '../random-pool';
import type * as tls from 'node:tls';
import { inspect } from 'node:util';
import { invalidArgType } from '../../errors';
import {
  nativeContextOf,
  serverInternals,
  serverNativeContexts,
  sniCallbackSymbol,
  ticketKeyCallbackGap,
  type NativeSecureContext,
} from '../../node-internals';
import { clockOption, type Clock } from '../clock';
import { RecordFormatError, StoreClosedError } from '../errors';
import { Sealer, Secret } from '../records/envelope';
import { openTicketKeyRecord, sealTicketKeyRecord } from '../records/ticket-key';
import {
  TICKET_KEY_BYTES,
  TICKET_KEY_PART_BYTES as PART_BYTES,
  ticketKeyAesKey as aesOf,
  ticketKeyHmacSecret as hmacOf,
  ticketKeyName as nameOf,
} from '../../ticket-key-layout';
import { addTicketCounts, emptyTicketCounts, TicketCounts, TicketKeyAgeCounts } from '../counters';
import { assertSessionStore, type SessionStore } from '../stores/contract';
import { StoreGateway } from '../stores/gateway';
import { TlsContext } from '../../tls/context';
import { choiceOption, functionOption, integerOption, optionsObject, stringOption } from '../options';
import { channels, errorCode, observeServer, type ServerObserver, type TicketMissReason } from '../../metrics/events';

/**
 * Which tickets the ring's ticket-key callback renews (answers 2: accept it, and send the client a
 * new ticket under the current key) when it opens them:
 * - 'always' (the default): every ticket it opens. TLS 1.3 tickets are single-use (RFC 8446 C.4)
 *   and Node's servers send no new TLS 1.3 ticket after a resumption unless the callback renews,
 *   so without it a client that connects once per process runs out of tickets (full, resumed,
 *   resumed, full, ...). The callback does not know the protocol: a resumed TLS 1.2 connection
 *   also gets a new ticket (one more NewSessionTicket message in its abbreviated handshake).
 * - 'retired': only tickets sealed with a key that stopped sealing (renewed under the current
 *   key, so they outlive the old key's retention); a current key's ticket is accepted as it is,
 *   and a resumed connection gets no new ticket. Node's own behaviour, and the ring's before
 *   'always': for servers whose clients keep or reuse their tickets themselves, or to issue
 *   fewer tickets (one seal per resumption less).
 */
export type TicketRenewal = 'always' | 'retired';

const TICKET_RENEWALS: readonly TicketRenewal[] = ['always', 'retired'];

/** process.emitWarning code when a server falls back to setTicketKeys (one key per server). */
export const TICKET_KEY_FALLBACK_WARNING = 'TLS_SESSION_TICKET_KEY_FALLBACK';

export interface TicketKeyRingOptions {
  store: SessionStore;
  /** Epoch length: all servers switch keys at each multiple of it (default 3600 s). */
  rotationSeconds?: number;
  /**
   * How long a key still opens (and renews) tickets after it stopped sealing them (default 7200 s:
   * the ticket lifetime Node gives tickets unless `sessionTimeout` is set; set it to at least the
   * servers' sessionTimeout). Tickets older than that get a full handshake.
   */
  retentionSeconds?: number;
  /** Seal ticket keys in the store (strongly advised for Redis): same form as attachSessionStore's. */
  secret?: Secret;
  /** Prefix of the store keys (default 'ticket-key:'). */
  keyPrefix?: string;
  /**
   * Which opened tickets get a new ticket under the current key (TicketRenewal): 'always' (the
   * default; TLS 1.3 tickets are single-use, so a resumed client needs a new one) or 'retired'
   * (only tickets of keys that stopped sealing, Node's own behaviour). Servers in callback mode
   * only: setTicketKeys servers and engine contexts renew as Node and OpenSSL do.
   */
  renewTickets?: TicketRenewal;
  /** Longest a store call may take (default 2000 ms: not on the handshake path). */
  budgetMs?: number;
  /** Told about store failures; the ring keeps serving with the keys it has and retries. Must not throw. */
  onError?: (error: Error) => void;
  /**
   * The clock epochs, rotation and retention are decided by: milliseconds since the epoch
   * (default Date.now), as Go's tls.Config.Time. For tests and simulations. The ring's timers
   * are computed from it; a clock moved past the next scheduled sync makes `epoch` and `stats()`
   * run that sync at once. OpenSSL still checks a ticket's lifetime against the real time, and
   * a store's own TTLs (Redis) run on the store's clock.
   */
  now?: Clock;
}

/**
 * How a server gets its keys: 'callback' (Node's internal ticket-key callback: one key seals,
 * several open) or 'setTicketKeys' (the fallback on a Node without that internal: one key).
 */
export type TicketKeyMode = 'callback' | 'setTicketKeys';

export interface TicketKeyRingStats {
  /** The server's mode; for the whole ring, the mode of all its servers ('mixed' if they differ, undefined with none). */
  mode: TicketKeyMode | 'mixed' | undefined;
  /** The epoch of the key that seals new tickets (undefined before the first attach). */
  epoch: number | undefined;
  /** Times the sealing key changed (epoch boundaries, and local key → fleet key). */
  rotations: number;
  /** Fleet keys this ring created in the store. */
  created: number;
  /** Fleet keys this ring read from the store (created by another member). */
  fetched: number;
  /** Keys this ring wrote back into a store that had lost them (restarted empty, failed over). */
  restored: number;
  /** Failed store calls (each also reported to onError). */
  errors: number;
  /** Servers attached. */
  servers: number;
  /** Engine server contexts (TlsContext) attached: given the ring's keys through setTicketKeys. */
  contexts: number;
  /** Keys made locally because the store could not be reached: their tickets resume on this process only. */
  localKeys: number;
  /** Whether new tickets are sealed with a local key right now. */
  usingLocalKey: boolean;
  /** Whether the next epoch's key is already here (it is fetched halfway through each epoch). */
  nextKeyReady: boolean;
  store: {
    /** The last key sync reached the store. */
    ready: boolean;
    /** Times the store went from answering (or from the start) to failing. */
    outages: number;
    /** Milliseconds since the store last answered a key sync (undefined: never). */
    msSinceKeySync: number | undefined;
  };
  /** What the ticket-key callback did: the server's own, or the sum over the ring's servers. */
  tickets: TicketCounts;
}

/** The most keys an engine context takes (TlsContext#setTicketKeys). */
const MAX_ENGINE_KEYS = 64;
/** How soon a failed key sync is retried. */
const RETRY_MS = 1000;
/** Longest between two key syncs: a store that restarted empty or failed over gets the fleet's key back within it. */
const SYNC_INTERVAL_MS = 10_000;
/** Most previous epochs whose keys a starting member reads (tickets other members issued before it started). */
const MAX_PREVIOUS_EPOCHS = 32;
const ZERO_PART = Buffer.alloc(PART_BYTES);
/** Node's answer for "no such key": 0 = full handshake (always five 16-byte buffers: Node checks them). */
const NO_KEY = Object.freeze([0, ZERO_PART, ZERO_PART, ZERO_PART, ZERO_PART]);

/** Node's answer to a ticket this key opens: 1 (accept) or 2 (accept and renew), the key's HMAC secret and AES key. */
function openAnswer(code: 1 | 2, material: Buffer): readonly unknown[] {
  return Object.freeze([code, hmacOf(material), aesOf(material), ZERO_PART, ZERO_PART]);
}

/**
 * The IV every sealing answer carries, refilled with fresh random bytes (from a pool: one CSPRNG
 * call per 256 tickets) before each one is returned: Node copies the name and IV out of the
 * answer before the callback returns to OpenSSL, so one buffer serves every ticket (this
 * thread's; a worker has its own module).
 */
const SEAL_IV = Buffer.alloc(PART_BYTES);
const SEAL_IVS = new RandomPool(PART_BYTES);

function sealAnswer(material: Buffer): readonly unknown[] {
  return Object.freeze([1, hmacOf(material), aesOf(material), nameOf(material), SEAL_IV]);
}

interface RingKey {
  readonly epoch: number;
  /** name | HMAC secret | AES key, as Node's setTicketKeys takes them. */
  readonly material: Buffer;
  /** From the store (the fleet's) or made here while the store was away. */
  readonly shared: boolean;
  /** When it stopped sealing (ms); it opens tickets until retiredAt + retention. Undefined while sealing or ahead. */
  retiredAt: number | undefined;
  /** When it last sealed a ticket here (ms). */
  lastIssuedAt: number | undefined;
  /**
   * The callback's answers for a ticket it opens, made once with the key (views of `material`,
   * wiped with it): accept as it is (1), accept and renew (2).
   */
  readonly accept: readonly unknown[];
  readonly renew: readonly unknown[];
  /** The answer that seals a new ticket with it (its IV is SEAL_IV, refilled per ticket). */
  readonly seal: readonly unknown[];
}

function ringKey(epoch: number, material: Buffer, shared: boolean, retiredAt: number | undefined): RingKey {
  return {
    epoch,
    material,
    shared,
    retiredAt,
    lastIssuedAt: undefined,
    accept: openAnswer(1, material),
    renew: openAnswer(2, material),
    seal: sealAnswer(material),
  };
}

type NativeContext = NativeSecureContext;

type SniCallback = (this: unknown, servername: string, callback: (error: Error | null, context?: unknown) => void) => void;

interface Attachment {
  readonly server: tls.Server;
  readonly mode: TicketKeyMode;
  readonly tickets: TicketCounts;
  /** Contexts already given the callback (or, in 'setTicketKeys' mode, the key). */
  readonly covered: WeakSet<NativeContext>;
  readonly onConnection: () => void;
  readonly onListening: () => void;
  /** Publishes diagnostics_channel events (lib/metrics/events.ts); idle while nobody subscribes. */
  readonly observer: ServerObserver;
  detached: boolean;
  /** The symbol Node keeps the SNICallback under, looked up once (undefined: none found). */
  readonly sniSymbol: symbol | undefined;
  sni?: { symbol: symbol; original: SniCallback; wrapper: SniCallback };
  /**
   * What the last cover() saw: while the server's contexts and SNICallback are these same
   * objects, a connection has nothing to cover (it runs on every 'connection').
   */
  seen?: { main: unknown; contexts: readonly unknown[]; sniCallback: unknown };
}

/** The server's current SNICallback (as Node keeps it), or undefined. */
function sniCallbackOf(attachment: Attachment): unknown {
  return attachment.sniSymbol ? (attachment.server as unknown as Record<symbol, unknown>)[attachment.sniSymbol] : undefined;
}

/** Whether two lists hold the same objects in the same order (no allocation: it runs per connection). */
function sameEntries(a: readonly unknown[], b: readonly unknown[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** What Node itself does with one key per context: used once a server is detached from the ring. */
function singleKeyAnswer(context: NativeContext, name: Buffer, encrypt: boolean): readonly unknown[] {
  const material = context.getTicketKeys();
  if (encrypt) return [1, hmacOf(material), aesOf(material), nameOf(material), randomBytes(PART_BYTES)];
  return name.equals(nameOf(material)) ? [1, hmacOf(material), aesOf(material), ZERO_PART, ZERO_PART] : NO_KEY;
}

export class TicketKeyRing {
  readonly rotationSeconds: number;
  readonly retentionSeconds: number;
  /** Which opened tickets are renewed: 'always' (every one, the default) or 'retired' (those of keys that stopped sealing). */
  readonly renewTickets: TicketRenewal;
  /** Every store call goes through it: after ready(), within budgetMs, one failure path. */
  readonly #gateway: StoreGateway;
  readonly #sealer: Sealer | undefined;
  readonly #keyPrefix: string;
  readonly #budgetMs: number;
  readonly #now: Clock;
  readonly #attachments = new Map<tls.Server, Attachment>();
  /** Engine server contexts, with the key names they were last given (so keys are set only when they change). */
  readonly #engines = new Map<TlsContext, string>();
  /** Every key that may still open tickets, by hex key name. */
  readonly #byName = new Map<string, RingKey>();
  /** The fleet's key per epoch, as the store holds it. */
  readonly #shared = new Map<number, RingKey>();
  #active: RingKey | undefined;
  #started: Promise<void> | undefined;
  #syncing: Promise<boolean> | undefined;
  #previousFetched = false;
  #timer: NodeJS.Timeout | undefined;
  /** When (on the ring's clock) the pending timer is due. */
  #wakeAt: number | undefined;
  #closed = false;
  #warned = false;
  /** undefined until the first sync: a store down from the start is an outage too. */
  #storeAnswering: boolean | undefined;
  #lastSyncAt: number | undefined;
  readonly #stats = { rotations: 0, created: 0, fetched: 0, restored: 0, errors: 0, localKeys: 0, outages: 0 };

  constructor(options: TicketKeyRingOptions) {
    optionsObject(options);
    const { store } = options;
    assertSessionStore(store, 'options.store');
    this.rotationSeconds = integerOption(options.rotationSeconds, 'options.rotationSeconds', 3600, 1);
    this.retentionSeconds = integerOption(options.retentionSeconds, 'options.retentionSeconds', 7200, 0);
    this.#budgetMs = integerOption(options.budgetMs, 'options.budgetMs', 2000, 1);
    this.#keyPrefix = stringOption(options.keyPrefix, 'options.keyPrefix', 'ticket-key:');
    this.renewTickets = choiceOption(options.renewTickets, 'options.renewTickets', TICKET_RENEWALS, 'always');
    functionOption(options.onError, 'options.onError');
    this.#now = clockOption(options.now);
    this.#gateway = new StoreGateway(store, { onError: options.onError, onFailure: (error) => this.#countStoreFailure(error) });
    this.#sealer = options.secret !== undefined ? new Sealer(options.secret, 'ticket-key') : undefined;
  }

  /** The epoch of the key that seals new tickets, or undefined before the first attach. */
  get epoch(): number | undefined {
    this.#refresh();
    return this.#active?.epoch;
  }

  /** The ring's state; with `server`, `mode` and `tickets` are that server's. */
  stats(server?: tls.Server): TicketKeyRingStats {
    const now = this.#now();
    this.#refresh(now);
    let mode: TicketKeyRingStats['mode'];
    let tickets: TicketCounts;
    if (server !== undefined) {
      const attachment = this.#attachments.get(server);
      if (!attachment) throw invalidArgType('server', 'a server attached to this TicketKeyRing', server);
      mode = attachment.mode;
      tickets = addTicketCounts(emptyTicketCounts(), attachment.tickets);
    } else {
      const modes = new Set([...this.#attachments.values()].map((a) => a.mode));
      mode = modes.size === 0 ? undefined : modes.size === 1 ? [...modes][0] : 'mixed';
      tickets = emptyTicketCounts();
      for (const attachment of this.#attachments.values()) addTicketCounts(tickets, attachment.tickets);
    }
    const { outages, ...counters } = this.#stats;
    return {
      mode,
      epoch: this.#active?.epoch,
      ...counters,
      servers: this.#attachments.size,
      contexts: this.#engines.size,
      usingLocalKey: this.#active !== undefined && !this.#active.shared,
      nextKeyReady: this.#shared.has(this.#epochAt(now) + 1),
      store: {
        ready: this.#storeAnswering === true,
        outages,
        msSinceKeySync: this.#lastSyncAt === undefined ? undefined : now - this.#lastSyncAt,
      },
      tickets,
    };
  }

  /**
   * Makes `server` take its ticket keys from the ring, from now on and across rotations. Waits for
   * the store (its ready(), then the current key) within the store's start-up budget and this
   * ring's budgetMs; if the store cannot be reached, the server starts with a local key and the
   * ring converges on the fleet's key later. Rejects only for a closed ring or a non-server.
   */
  async attach(server: tls.Server | TlsContext): Promise<void> {
    if (this.#closed) throw new StoreClosedError('the TicketKeyRing is closed');
    if (server instanceof TlsContext) return this.#attachEngine(server);
    const candidate = server as Partial<tls.Server> | null;
    if (
      candidate === null ||
      typeof candidate !== 'object' ||
      typeof candidate.setTicketKeys !== 'function' ||
      typeof candidate.prependListener !== 'function'
    ) {
      throw invalidArgType('server', 'a tls.Server, https.Server or http2 secure server', server);
    }
    this.#started ??= this.#start();
    await this.#started;
    if (this.#closed) throw new StoreClosedError('the TicketKeyRing is closed');
    if (this.#attachments.has(server)) return;
    this.#activeKey(this.#now());
    this.#install(server, this.#modeFor(server));
    this.#schedule(this.#storeAnswering ? undefined : RETRY_MS);
  }

  /**
   * An engine server context (TlsContext, created with tickets: true): the ring gives it every key
   * it holds through setTicketKeys, the sealing key first, again whenever they change (rotation,
   * a key adopted from the store, one past its retention). Its tickets are not seen by the ring,
   * so a key it sealed with counts as retired at the rotation, as for setTicketKeys servers.
   */
  async #attachEngine(context: TlsContext): Promise<void> {
    if (context.role !== 'server') throw invalidArgType('server', 'a server TlsContext (role: server)', context);
    this.#started ??= this.#start();
    await this.#started;
    if (this.#closed) throw new StoreClosedError('the TicketKeyRing is closed');
    if (this.#engines.has(context)) return;
    this.#engines.set(context, '');
    this.#activeKey(this.#now());
    this.#giveEnginesKeys();
    this.#schedule(this.#storeAnswering ? undefined : RETRY_MS);
  }

  /** Gives each engine context the ring's keys (sealing key first, newest next) when they changed since last time. */
  #giveEnginesKeys(): void {
    const active = this.#active;
    if (this.#engines.size === 0 || !active) return;
    const others = [...this.#byName.values()].filter((key) => key !== active).sort((a, b) => b.epoch - a.epoch);
    const keys = [active, ...others].slice(0, MAX_ENGINE_KEYS);
    const signature = keys.map((key) => nameOf(key.material).toString('hex')).join(',');
    for (const [context, given] of this.#engines) {
      if (given === signature) continue;
      try {
        context.setTicketKeys(keys.map((key) => key.material));
        this.#engines.set(context, signature);
      } catch (error) {
        // A closed context (or one made without tickets): it leaves the ring, said once.
        this.#engines.delete(context);
        this.#report(error as Error);
      }
    }
  }

  /** Stops following rotations for this server or engine context: the keys it holds stay in place. */
  detach(server: tls.Server | TlsContext): void {
    if (server instanceof TlsContext) {
      this.#engines.delete(server);
      this.#stopWhenIdle();
      return;
    }
    const attachment = this.#attachments.get(server);
    if (!attachment) return;
    attachment.detached = true;
    attachment.observer.release();
    this.#attachments.delete(server);
    server.removeListener('connection', attachment.onConnection);
    server.removeListener('listening', attachment.onListening);
    if (attachment.sni) {
      const target = server as unknown as Record<symbol, unknown>;
      if (target[attachment.sni.symbol] === attachment.sni.wrapper) target[attachment.sni.symbol] = attachment.sni.original;
    }
    // The callback now answers from the context's own key (singleKeyAnswer): make that key ours.
    if (this.#active) server.setTicketKeys(this.#active.material);
    this.#stopWhenIdle();
  }

  /** No server and no engine context left: no timer either. */
  #stopWhenIdle(): void {
    if (this.#attachments.size === 0 && this.#engines.size === 0 && this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  /** Detaches every server, stops the timer and wipes the keys; the store stays open (it belongs to the caller). */
  close(): void {
    for (const server of [...this.#attachments.keys()]) this.detach(server);
    this.#engines.clear();
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const key of this.#byName.values()) key.material.fill(0);
    this.#active?.material.fill(0);
    this.#byName.clear();
    this.#shared.clear();
  }

  #epochAt(nowMs: number): number {
    return Math.floor(nowMs / 1000 / this.rotationSeconds);
  }

  #epochEndMs(epoch: number): number {
    return (epoch + 1) * this.rotationSeconds * 1000;
  }

  /** Halfway through `epoch`: when the next epoch's key is fetched. */
  #prefetchAtMs(epoch: number): number {
    return this.#epochEndMs(epoch) - (this.rotationSeconds * 1000) / 2;
  }

  #refresh(now = this.#now()): void {
    if (this.#closed || (this.#attachments.size === 0 && this.#engines.size === 0)) return;
    // The clock ran past the pending timer (an injected clock was moved, the wall clock stepped
    // forward): do now what the timer was set for.
    if (this.#timer && this.#wakeAt !== undefined && now >= this.#wakeAt) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      void this.#tick();
    }
    this.#activeKey(now);
    this.#giveEnginesKeys();
  }

  /**
   * The key that seals tickets at `now`, switching when needed: the fleet's key of the current
   * epoch; without it (the store was away at the boundary) the last fleet key while it is within
   * its retention, so members keep resuming each other's tickets; else a key local to this process.
   */
  #activeKey(now: number): RingKey {
    const epoch = this.#epochAt(now);
    const current = this.#active;
    let next = this.#shared.get(epoch);
    if (!next) {
      if (current?.shared && current.epoch < epoch && now < this.#epochEndMs(current.epoch) + this.retentionSeconds * 1000) next = current;
      else if (current && !current.shared && current.epoch === epoch) next = current;
      else next = this.#makeLocalKey(epoch);
    }
    if (next !== current) this.#switchTo(next, now);
    return next;
  }

  #switchTo(next: RingKey, now: number): void {
    const previous = this.#active;
    if (previous) {
      previous.retiredAt ??= this.#retireTime(previous, now);
      this.#stats.rotations += 1;
    }
    next.retiredAt = undefined;
    this.#active = next;
    // The first key is no rotation (as in stats().rotations).
    if (previous && channels.ringRotation.hasSubscribers) {
      channels.ringRotation.publish({ epoch: next.epoch, previousEpoch: previous.epoch, localKey: !next.shared });
    }
    for (const attachment of this.#attachments.values()) {
      if (attachment.mode === 'setTicketKeys') attachment.server.setTicketKeys(next.material);
    }
  }

  /**
   * Tickets need a key as long as anyone sealed with it: until its epoch ended (the other members
   * sealed with it until then), or its last ticket here if it sealed longer (a store outage). A
   * server on setTicketKeys sealed with it until now, unseen.
   */
  #retireTime(key: RingKey, now: number): number {
    if (this.#engines.size > 0) return now;
    for (const attachment of this.#attachments.values()) if (attachment.mode === 'setTicketKeys') return now;
    return Math.min(now, Math.max(this.#epochEndMs(key.epoch), key.lastIssuedAt ?? 0));
  }

  #makeLocalKey(epoch: number): RingKey {
    const key = ringKey(epoch, randomBytes(TICKET_KEY_BYTES), false, undefined);
    this.#byName.set(nameOf(key.material).toString('hex'), key);
    this.#stats.localKeys += 1;
    if (channels.ringLocalKey.hasSubscribers) channels.ringLocalKey.publish({ epoch });
    return key;
  }

  /** Takes a fleet key read from the store; one it replaces (the store said otherwise) keeps opening tickets for its retention. */
  #adopt(epoch: number, material: Buffer, now: number, created = false): void {
    if (this.#closed) {
      material.fill(0);
      return;
    }
    const replaced = this.#shared.get(epoch);
    if (replaced) replaced.retiredAt ??= now;
    const retiredAt = epoch < this.#epochAt(now) ? this.#epochEndMs(epoch) : undefined;
    const key = ringKey(epoch, material, true, retiredAt);
    this.#shared.set(epoch, key);
    this.#byName.set(nameOf(material).toString('hex'), key);
    if (channels.ringKeyAdopted.hasSubscribers) channels.ringKeyAdopted.publish({ epoch, created });
  }

  /** Wipes keys past their retention. */
  #forgetRetired(now: number): void {
    for (const [name, key] of this.#byName) {
      if (key === this.#active || key.retiredAt === undefined || now < key.retiredAt + this.retentionSeconds * 1000) continue;
      this.#byName.delete(name);
      if (this.#shared.get(key.epoch) === key) this.#shared.delete(key.epoch);
      key.material.fill(0);
    }
  }

  #modeFor(server: tls.Server): TicketKeyMode {
    const missing = ticketKeyCallbackGap(server);
    if (missing === undefined) return 'callback';
    if (!this.#warned) {
      this.#warned = true;
      process.emitWarning(
        `TicketKeyRing: Node ${process.version} lacks ${missing}, so each server holds one ticket key (setTicketKeys): ` +
          'tickets issued before a key rotation get a full handshake after it.',
        { type: 'TlsSessionWarning', code: TICKET_KEY_FALLBACK_WARNING },
      );
    }
    return 'setTicketKeys';
  }

  #install(server: tls.Server, mode: TicketKeyMode): void {
    const attachment: Attachment = {
      server,
      mode,
      tickets: emptyTicketCounts(),
      covered: new WeakSet(),
      // Before Node's own 'connection' listener makes the TLS socket: a context that replaced
      // ours (setSecureContext, addContext) is covered before its first handshake.
      onConnection: () => {
        try {
          this.#cover(attachment);
        } catch (error) {
          this.#stats.errors += 1;
          this.#report(error as Error);
        }
      },
      // A cluster worker's listen() sets the primary's cached key (Server#_setServerData).
      onListening: () =>
        this.#guard(() => {
          if (mode === 'setTicketKeys' && this.#active) server.setTicketKeys(this.#active.material);
          this.#cover(attachment);
        }),
      observer: observeServer(server),
      detached: false,
      sniSymbol: sniCallbackSymbol(server),
    };
    this.#attachments.set(server, attachment);
    this.#cover(attachment);
    server.prependListener('connection', attachment.onConnection);
    server.on('listening', attachment.onListening);
  }

  /** Gives the server's contexts the ring's keys: its default context and, in callback mode, its SNI contexts. */
  #cover(attachment: Attachment): void {
    const main = serverInternals(attachment.server)._sharedCreds?.context;
    if (attachment.mode === 'setTicketKeys') {
      if (main && !attachment.covered.has(main) && this.#active) {
        attachment.covered.add(main);
        attachment.server.setTicketKeys(this.#active.material);
      }
      return;
    }
    const contexts = serverInternals(attachment.server)._contexts ?? [];
    const seen = attachment.seen;
    // Every SNI entry compared by identity (a server has a handful): one added, replaced or
    // removed anywhere is seen, as is a replaced default context or SNICallback.
    if (seen && seen.main === main && seen.sniCallback === sniCallbackOf(attachment) && sameEntries(seen.contexts, contexts)) return;
    for (const native of serverNativeContexts(attachment.server)) this.#coverContext(attachment, native);
    this.#wrapSniCallback(attachment);
    attachment.seen = { main, contexts: [...contexts], sniCallback: sniCallbackOf(attachment) };
  }

  #coverContext(attachment: Attachment, context: NativeContext): void {
    if (attachment.covered.has(context)) return;
    attachment.covered.add(context);
    if (typeof context.enableTicketKeyCallback !== 'function') {
      if (this.#active) context.setTicketKeys(this.#active.material);
      return;
    }
    context.enableTicketKeyCallback();
    context.onticketkeycallback = (name, _iv, encrypt) => {
      try {
        if (attachment.detached) return singleKeyAnswer(context, name, encrypt);
        return this.#answer(attachment.tickets, name, encrypt, attachment.observer);
      } catch (error) {
        // An exception here would reach Node's uncaughtException: answer "no key" (full handshake) instead.
        this.#stats.errors += 1;
        this.#report(error as Error);
        return NO_KEY;
      }
    };
  }

  /**
   * Contexts a user's SNICallback hands out get the callback too, as they appear (measured on
   * Node 20-26 with OpenSSL 3: tickets are sealed and opened by the server's default context even
   * after an SNI switch, so this is for Node lines where that changes). Node keeps the
   * SNICallback under a private symbol; without it, nothing is wrapped.
   */
  #wrapSniCallback(attachment: Attachment): void {
    const target = attachment.server as unknown as Record<symbol, unknown>;
    const symbol = attachment.sniSymbol;
    if (!symbol) return;
    const current = target[symbol];
    if (typeof current !== 'function' || current === attachment.sni?.wrapper) return;
    const original = current as SniCallback;
    const cover = (context: unknown): void => {
      const native = nativeContextOf(context);
      if (native && !attachment.detached) this.#guard(() => this.#coverContext(attachment, native));
    };
    const wrapper: SniCallback = function (this: unknown, servername, callback) {
      return original.call(this, servername, (error, context) => {
        if (!error && context) cover(context);
        callback(error, context);
      });
    };
    attachment.sni = { symbol, original, wrapper };
    target[symbol] = wrapper;
  }

  /**
   * Node's ticket-key callback, synchronous: seal with the current key; open with any key still
   * retained, renewing as `renewTickets` says. Opening allocates nothing beyond the key lookup:
   * the answers are made once per key.
   */
  #answer(tickets: TicketCounts, name: Buffer, encrypt: boolean, observer?: ServerObserver): readonly unknown[] {
    const now = this.#now();
    const active = this.#activeKey(now);
    if (encrypt) {
      tickets.issued += 1;
      if (!active.shared) tickets.issuedWithLocalKey += 1;
      active.lastIssuedAt = now;
      if (channels.ringTicket.hasSubscribers) this.#publishTicket('issued', active, now);
      SEAL_IVS.next(SEAL_IV);
      return active.seal;
    }
    const key = this.#byName.get(name.toString('hex'));
    if (!key) {
      tickets.rejected.unknownKey += 1;
      this.#ticketMiss('unknown-ticket-key', active, now, observer);
      return NO_KEY;
    }
    if (key.retiredAt !== undefined && now >= key.retiredAt + this.retentionSeconds * 1000) {
      tickets.rejected.pastRetention += 1;
      this.#ticketMiss('retired-ticket-key', active, now, observer, key);
      return NO_KEY;
    }
    const age = active.epoch - key.epoch;
    const bucket: keyof TicketKeyAgeCounts = age < 0 ? 'ahead' : age === 0 ? 'current' : age === 1 ? 'previous' : 'older';
    if (key.retiredAt === undefined && this.renewTickets === 'retired') {
      tickets.decrypted[bucket] += 1;
      if (channels.ringTicket.hasSubscribers) this.#publishTicket('accepted', active, now, key);
      return key.accept;
    }
    // 2: accept, and give the client a new ticket under the current key (a TLS 1.3 ticket is
    // single-use: without it a resumed client has none left for its next connection).
    tickets.renewed[bucket] += 1;
    if (channels.ringTicket.hasSubscribers) this.#publishTicket('renewed', active, now, key);
    return key.renew;
  }

  #ticketMiss(reason: TicketMissReason, active: RingKey, now: number, observer: ServerObserver | undefined, key?: RingKey): void {
    observer?.ticketMiss(reason);
    if (channels.ringTicket.hasSubscribers) this.#publishTicket(reason, active, now, key);
  }

  /** `keyAgeSeconds`: since the start of the epoch of the key that sealed (or opened) the ticket. */
  #publishTicket(outcome: 'issued' | 'accepted' | 'renewed' | TicketMissReason, active: RingKey, now: number, key = active): void {
    const event =
      outcome === 'unknown-ticket-key'
        ? { outcome, localKey: !active.shared }
        : { outcome, keyAgeSeconds: now / 1000 - key.epoch * this.rotationSeconds, localKey: !active.shared };
    channels.ringTicket.publish(event);
  }

  /** First attach: the store's readiness, then the first key sync. Never rejects. */
  async #start(): Promise<void> {
    const ready = await this.#gateway.start();
    if (ready === false) {
      this.#refresh(); // the failure was counted (an outage) and reported
      return;
    }
    await this.#sync();
  }

  #schedule(delayMs?: number): void {
    if (this.#closed || (this.#attachments.size === 0 && this.#engines.size === 0)) return;
    if (this.#timer) clearTimeout(this.#timer);
    const now = this.#now();
    let wakeAt = now + (delayMs ?? 0);
    if (delayMs === undefined) {
      const epoch = this.#epochAt(now);
      const prefetchAt = this.#prefetchAtMs(epoch);
      wakeAt = Math.min(this.#shared.has(epoch + 1) ? this.#epochEndMs(epoch) : Math.max(now, prefetchAt), now + SYNC_INTERVAL_MS);
    }
    this.#wakeAt = wakeAt;
    // +1 ms: a timer may fire a little early, and the boundary must have passed.
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        void this.#tick();
      },
      wakeAt - now + 1,
    );
    this.#timer.unref();
  }

  async #tick(): Promise<void> {
    if (this.#closed) return;
    let answered = false;
    try {
      const now = this.#now();
      // At a boundary with the next key already here, switch before any store round trip.
      if (this.#shared.has(this.#epochAt(now))) this.#activeKey(now);
      this.#forgetRetired(now);
      answered = await this.#sync();
    } catch (error) {
      this.#report(error as Error);
    }
    this.#schedule(answered ? undefined : RETRY_MS);
  }

  /** One sync at a time; resolves true when the store answered. */
  #sync(): Promise<boolean> {
    this.#syncing ??= this.#syncOnce().finally(() => {
      this.#syncing = undefined;
    });
    return this.#syncing;
  }

  async #syncOnce(): Promise<boolean> {
    const now = this.#now();
    const epoch = this.#epochAt(now);
    try {
      await this.#syncEpoch(epoch, now, true);
      if (now >= this.#prefetchAtMs(epoch)) await this.#syncEpoch(epoch + 1, now, true);
      if (!this.#previousFetched) {
        const previous: number[] = [];
        for (let e = epoch - 1; e >= epoch - MAX_PREVIOUS_EPOCHS && now < this.#epochEndMs(e) + this.retentionSeconds * 1000; e--) {
          if (!this.#shared.has(e)) previous.push(e);
        }
        await Promise.all(previous.map((e) => this.#syncEpoch(e, now, false)));
        this.#previousFetched = true;
      }
    } catch (error) {
      this.#storeFailed(error as Error);
      return false;
    }
    if (this.#storeAnswering === false && channels.ringStore.hasSubscribers) channels.ringStore.publish({ state: 'recovered' });
    this.#storeAnswering = true;
    this.#lastSyncAt = this.#now();
    this.#refresh();
    return true;
  }

  #storeFailed(error: Error): void {
    this.#gateway.fail(error);
    this.#refresh();
  }

  /** The gateway's count of a failed store call (ready() included): an outage starts with the first. */
  #countStoreFailure(error: Error): void {
    if (this.#storeAnswering !== false) {
      this.#stats.outages += 1;
      if (channels.ringStore.hasSubscribers) channels.ringStore.publish({ state: 'outage', errorCode: errorCode(error) });
    }
    this.#storeAnswering = false;
    this.#stats.errors += 1;
  }

  /**
   * Reads the fleet's key of `epoch`; when `create` and the store has none, writes one: a new
   * random key, or the key this member already uses for that epoch (a store that came back empty
   * must not split the fleet). The store's answer wins over what this member held.
   */
  async #syncEpoch(epoch: number, now: number, create: boolean): Promise<void> {
    const storeKey = `${this.#keyPrefix}${this.rotationSeconds}:${epoch}`;
    const held = this.#shared.get(epoch);
    let record = await this.#gateway.call('get', this.#budgetMs, (store) => store.get(storeKey));
    let createdHere = false;
    if (record === undefined) {
      if (!create) return;
      const candidate = held ? Buffer.from(held.material) : randomBytes(TICKET_KEY_BYTES);
      const sealed = sealTicketKeyRecord(this.#sealer, storeKey, candidate);
      candidate.fill(0);
      // Long enough for the members that prefetch it, use it, and open its tickets afterwards.
      const ttlSeconds = 2 * this.rotationSeconds + this.retentionSeconds;
      let wrote = true;
      if (this.#gateway.store.setIfAbsent) {
        wrote = await this.#gateway.call('setIfAbsent', this.#budgetMs, (store) => store.setIfAbsent!(storeKey, sealed, ttlSeconds));
      } else {
        // Without an atomic setIfAbsent two members may race here; the re-read below narrows it.
        await this.#gateway.call('set', this.#budgetMs, (store) => store.set(storeKey, sealed, ttlSeconds));
      }
      if (wrote && held) this.#stats.restored += 1;
      createdHere = wrote && !held;
      if (createdHere) this.#stats.created += 1;
      record = await this.#gateway.call('get', this.#budgetMs, (store) => store.get(storeKey));
      if (record === undefined) throw new RecordFormatError('ticket key vanished from the store right after it was written');
    }
    const material = openTicketKeyRecord(this.#sealer, storeKey, record);
    if (this.#shared.get(epoch)?.material.equals(material)) {
      material.fill(0);
      return;
    }
    if (!createdHere) this.#stats.fetched += 1;
    this.#adopt(epoch, material, now, createdHere);
  }

  #guard(run: () => void): void {
    try {
      run();
    } catch (error) {
      this.#stats.errors += 1;
      this.#report(error as Error);
    }
  }

  #report(error: Error): void {
    this.#gateway.report(error);
  }

  [inspect.custom](): string {
    return (
      `TicketKeyRing { rotationSeconds: ${this.rotationSeconds}, retentionSeconds: ${this.retentionSeconds}, ` +
      `renewTickets: '${this.renewTickets}', epoch: ${this.#active?.epoch}, servers: ${this.#attachments.size}, keys: [hidden] }`
    );
  }

  toJSON(): Record<string, unknown> {
    return {
      type: 'TicketKeyRing',
      rotationSeconds: this.rotationSeconds,
      retentionSeconds: this.retentionSeconds,
      renewTickets: this.renewTickets,
      epoch: this.#active?.epoch,
      keys: '[hidden]',
    };
  }
}
