/**
 * RedisStore's fleet-wide filter of written keys (SessionStore#trackWrittenKeys): every member
 * that tracks a prefix publishes the keys it writes under it on one channel, and keeps every
 * member's in an ExpiringKeyFilter; a member that starts (or reconnects) subscribes first and
 * then loads the live keys with SCAN + PTTL, so no write falls between the two. Until both are
 * done — and again from a lost subscription until the reload after it — the filter is
 * incomplete and says "maybe" to every key: the lookups go to Redis as without it.
 *
 * Message: 0x01, then per key: u16 BE length, the key (UTF-8), u32 BE expiry (seconds since the
 * epoch; 0xffffffff: none). Anyone who can publish on the channel can write the store too; a
 * forged key only earns the lookup it names, and a malformed message is dropped whole.
 */
import { withDeadline } from './gateway';
import { ttlSaysGone, type RedisClientAdapter, type RedisSubscription } from './redis-clients';
import { ExpiringKeyFilter, type WrittenKeys } from './written-keys';

const FORMAT = 0x01;
const NO_EXPIRY = 0xffffffff;
/** Keys per SCAN step (and per PTTL pipeline) while loading. */
const SCAN_COUNT = 1000;
/** A loading step's own bound: generous, since it runs beside live traffic and retries on failure. */
const LOAD_STEP_BUDGET_MS = 5000;
/** Wait before a failed load is tried again. */
const RELOAD_AFTER_MS = 1000;
/** Most keys in one message. */
const KEYS_PER_MESSAGE = 4096;
/** SCAN steps one check reads at most (SCAN_COUNT keys each): its cost, whatever the store's size. */
const VERIFY_STEPS = 10;
/** How long a key a check found unannounced may still be in flight (its message not yet read). */
const RECHECK_AFTER_MS = 1000;
/** How long the filter stays aside (every ID looked up) after a check found unannounced keys. */
export const FALLBACK_MS = 10 * 60 * 1000;

export interface TrackerHost {
  readonly keyPrefix: string;
  readonly client: RedisClientAdapter;
  /** The filter's slots; 0: publish only (a client without subscribe(), or writtenKeyFilter false). */
  readonly slots: number;
  /** How often the filter checks Redis for keys no message announced. */
  readonly verifyEveryMs: number;
  /** Why there is no filter (slots 0). */
  readonly unsupported?: string;
}

export interface WrittenKeysStats {
  /** Keys published by this process. */
  published: number;
  /** Keys learned from other members' messages (and this member's own, echoed). */
  received: number;
  /** Keys loaded by SCAN. */
  loaded: number;
  /** Loads completed (the first, then one after each lost subscription). */
  loads: number;
  /** Messages dropped as malformed. */
  malformed: number;
  /**
   * Live keys a check found that no message announced (a member of an older release, or anything
   * else writing the store without publishing): each puts the filter aside for FALLBACK_MS.
   */
  unannounced: number;
}

export class RedisWrittenKeys {
  readonly prefix: string;
  readonly channel: string;
  readonly #host: TrackerHost;
  #filter: ExpiringKeyFilter | undefined;
  #subscription: RedisSubscription | undefined;
  /** Handles held: while any is, this process announces its writes. */
  #refs = 0;
  /** Handles that consult the filter: while any is, it is kept (subscribed, loaded, checked). */
  #filterRefs = 0;
  #complete = false;
  /** Bumped on every subscription and every loss: a load of an older epoch stops. */
  #epoch = 0;
  #pending: Array<{ key: string; expiresAtSec: number }> = [];
  #publishScheduled = false;
  #retry: NodeJS.Timeout | undefined;
  #verifier: NodeJS.Timeout | undefined;
  #verifying = false;
  /** Where the next check's SCAN goes on: which master, which cursor. */
  readonly #verifyAt = { node: 0, cursor: '0' };
  /** Until when (Date.now()) the filter is put aside after unannounced keys were found. */
  #fallbackUntil = 0;
  readonly stats: WrittenKeysStats = { published: 0, received: 0, loaded: 0, loads: 0, malformed: 0, unannounced: 0 };

  constructor(host: TrackerHost, prefix: string) {
    this.#host = host;
    this.prefix = prefix;
    this.channel = `${host.keyPrefix}${prefix}written-keys`;
  }

  /**
   * A caller's handle. Every handle makes this process announce its writes; one with `filter`
   * also keeps the filter (the first such subscribes and loads, the last one's release stops it).
   */
  acquire(filter: boolean): WrittenKeys {
    this.#refs += 1;
    const keepsFilter = filter && this.#host.slots > 0;
    if (keepsFilter && this.#filterRefs++ === 0) this.#startFilter();
    let released = false;
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const tracker = this;
    return {
      mayHold: keepsFilter ? (key: string) => tracker.mayHold(key) : () => true,
      get complete() {
        return keepsFilter && tracker.complete;
      },
      unsupported: !filter ? 'announces writes only (filter: false)' : keepsFilter ? undefined : this.#host.unsupported,
      release: () => {
        if (released) return;
        released = true;
        if (keepsFilter && --tracker.#filterRefs === 0) tracker.#stopFilter();
        if (--tracker.#refs === 0) tracker.stop();
      },
    };
  }

  /** Loaded, subscribed since, and no unannounced writer seen lately: a "no" from mayHold can be trusted. */
  get complete(): boolean {
    return this.#trusted(Date.now());
  }

  /** The one rule for complete and mayHold: a filter, loaded and subscribed since, not put aside at `now`. */
  #trusted(now: number): boolean {
    return this.#complete && this.#filter !== undefined && now >= this.#fallbackUntil;
  }

  get tracking(): boolean {
    return this.#refs > 0;
  }

  mayHold(key: string): boolean {
    const now = Date.now();
    if (!this.#trusted(now) || !key.startsWith(this.prefix)) return true;
    return this.#filter!.mayHold(key, now / 1000);
  }

  /** A key this process is writing (already validated); published with the others of this turn. */
  noteWrite(key: string, ttlSeconds: number): void {
    if (this.#refs === 0 || !key.startsWith(this.prefix)) return;
    const expiresAtSec = Date.now() / 1000 + ttlSeconds;
    this.#filter?.add(key, expiresAtSec);
    this.#pending.push({ key, expiresAtSec });
    if (!this.#publishScheduled) {
      this.#publishScheduled = true;
      // After the SETs issued in this turn's synchronous run (one message for a batch of writes),
      // on the same connection: a member that reads the message finds the record.
      process.nextTick(this.#publish);
    }
  }

  /** Stops announcing and frees the filter (the last release, or the store's close()). */
  stop(): void {
    this.#refs = 0;
    this.#filterRefs = 0;
    this.#pending = [];
    this.#stopFilter();
  }

  #stopFilter(): void {
    this.#complete = false;
    this.#epoch += 1;
    this.#subscription?.stop();
    this.#subscription = undefined;
    this.#filter = undefined;
    if (this.#retry) clearTimeout(this.#retry);
    this.#retry = undefined;
    if (this.#verifier) clearInterval(this.#verifier);
    this.#verifier = undefined;
  }

  #startFilter(): void {
    this.#filter = new ExpiringKeyFilter(this.#host.slots);
    this.#verifier = setInterval(() => void this.verify(), this.#host.verifyEveryMs);
    this.#verifier.unref();
    this.#subscription = this.#host.client.subscribe!(this.channel, {
      onSubscribed: () => {
        const epoch = ++this.#epoch;
        void this.#load(epoch);
      },
      onLost: () => {
        this.#complete = false;
        this.#epoch += 1;
      },
      onMessage: (payload) => this.#receive(payload),
    });
  }

  readonly #publish = (): void => {
    this.#publishScheduled = false;
    const pending = this.#pending;
    this.#pending = [];
    if (this.#refs === 0) return;
    for (let start = 0; start < pending.length; start += KEYS_PER_MESSAGE) {
      const batch = pending.slice(start, start + KEYS_PER_MESSAGE);
      const payload = encodeKeys(batch);
      this.#host.client.publish!(this.channel, payload).then(
        () => {
          this.stats.published += batch.length;
        },
        // Lost with the connection: so was the SET before it (the same connection), mostly.
        () => undefined,
      );
    }
  };

  #receive(payload: Buffer): void {
    const filter = this.#filter;
    if (!filter) return;
    const keys = decodeKeys(payload);
    if (keys === undefined) {
      this.stats.malformed += 1;
      return;
    }
    for (const { key, expiresAtSec } of keys) filter.add(key, expiresAtSec);
    this.stats.received += keys.length;
  }

  /**
   * Looks for live keys under the prefix that the filter would rule out: written by something
   * that does not publish (a member of an older release), or whose message was lost. Each check
   * reads at most VERIFY_STEPS SCAN steps (~10,000 keys), going on where the previous check
   * stopped, so its cost does not grow with the store (a million sessions are covered in 100
   * checks; a writer that does not announce leaves keys all over the keyspace and is met in the
   * first). A key found still unknown RECHECK_AFTER_MS later (its message may be in flight) is
   * added and puts the filter aside for FALLBACK_MS (every ID is looked up meanwhile). Resolves
   * with the count of such keys found so far.
   */
  async verify(): Promise<number> {
    if (!this.#complete || this.#verifying || !this.#filter) return 0;
    this.#verifying = true;
    const epoch = this.#epoch;
    const { client } = this.#host;
    const stale = (): boolean => epoch !== this.#epoch || !this.#filter;
    try {
      const nodes = await withDeadline('Redis CLUSTER masters', LOAD_STEP_BUDGET_MS, client.masters());
      const unknown: string[] = [];
      const node = nodes[this.#verifyAt.node % nodes.length]!;
      for (let step = 0; step < VERIFY_STEPS; step++) {
        const [next, keys] = await withDeadline(
          'Redis SCAN',
          LOAD_STEP_BUDGET_MS,
          node.scan(this.#verifyAt.cursor, this.#pattern(), SCAN_COUNT),
        );
        if (stale()) return 0;
        unknown.push(...this.#unknownOf(keys));
        this.#verifyAt.cursor = next;
        if (next === '0') {
          // This node is done: the next check starts on the next one (or this one again).
          this.#verifyAt.node = (this.#verifyAt.node + 1) % nodes.length;
          break;
        }
      }
      if (unknown.length === 0) return this.stats.unannounced;
      await new Promise((resolve) => setTimeout(resolve, RECHECK_AFTER_MS).unref());
      if (stale()) return 0;
      const still = this.#unknownOf(unknown);
      if (still.length === 0) return this.stats.unannounced;
      const ttls = await withDeadline('Redis PTTL', LOAD_STEP_BUDGET_MS, node.ttls(still));
      if (stale()) return 0;
      const found = this.#addLive(still, ttls);
      if (found > 0) {
        this.stats.unannounced += found;
        this.#fallbackUntil = Date.now() + FALLBACK_MS;
      }
      return this.stats.unannounced;
    } catch {
      return 0; // tried again at the next check
    } finally {
      this.#verifying = false;
    }
  }

  /** Those of `redisKeys` (SCAN's, with the store's prefix) the filter would rule out now. */
  #unknownOf(redisKeys: string[]): string[] {
    const nowSec = Date.now() / 1000;
    const offset = this.#host.keyPrefix.length;
    return redisKeys.filter((key) => !this.#filter!.mayHold(key.slice(offset), nowSec));
  }

  /** Adds `redisKeys` with their PTTLs (ms; -1 none), skipping those gone since SCAN listed them; returns how many it added. */
  #addLive(redisKeys: string[], ttls: number[]): number {
    const nowSec = Date.now() / 1000;
    const offset = this.#host.keyPrefix.length;
    let added = 0;
    for (const [index, key] of redisKeys.entries()) {
      const ttlMs = ttls[index]!;
      if (ttlSaysGone(ttlMs)) continue;
      this.#filter!.add(key.slice(offset), ttlMs < 0 ? Infinity : nowSec + ttlMs / 1000);
      added += 1;
    }
    return added;
  }

  #pattern(): string {
    return `${(this.#host.keyPrefix + this.prefix).replace(/[*?[\]\\]/g, '\\$&')}*`;
  }

  /** SCAN + PTTL of every live key under the prefix, on every master; complete when it ends in the same epoch. */
  async #load(epoch: number): Promise<void> {
    const { client } = this.#host;
    const pattern = this.#pattern();
    try {
      const nodes = await withDeadline('Redis CLUSTER masters', LOAD_STEP_BUDGET_MS, client.masters());
      for (const node of nodes) {
        let cursor = '0';
        do {
          const [next, keys] = await withDeadline('Redis SCAN', LOAD_STEP_BUDGET_MS, node.scan(cursor, pattern, SCAN_COUNT));
          if (epoch !== this.#epoch) return;
          cursor = next;
          if (keys.length === 0) continue;
          const ttls = await withDeadline('Redis PTTL', LOAD_STEP_BUDGET_MS, node.ttls(keys));
          if (epoch !== this.#epoch) return;
          this.stats.loaded += this.#addLive(keys, ttls);
        } while (cursor !== '0');
      }
      if (epoch !== this.#epoch) return;
      this.stats.loads += 1;
      this.#complete = true;
    } catch {
      // Incomplete until a load succeeds: every lookup still goes to Redis meanwhile.
      if (epoch !== this.#epoch) return;
      this.#retry = setTimeout(() => {
        this.#retry = undefined;
        if (epoch === this.#epoch) void this.#load(epoch);
      }, RELOAD_AFTER_MS);
      this.#retry.unref();
    }
  }
}

export function encodeKeys(keys: ReadonlyArray<{ key: string; expiresAtSec: number }>): Buffer {
  let size = 1;
  const encoded = keys.map(({ key }) => Buffer.from(key, 'utf8'));
  for (const bytes of encoded) size += 2 + bytes.length + 4;
  const payload = Buffer.allocUnsafe(size);
  payload[0] = FORMAT;
  let offset = 1;
  for (const [index, bytes] of encoded.entries()) {
    const expires = keys[index]!.expiresAtSec;
    offset = payload.writeUInt16BE(Math.min(bytes.length, 0xffff), offset);
    offset += bytes.copy(payload, offset, 0, 0xffff);
    offset = payload.writeUInt32BE(expires >= NO_EXPIRY ? NO_EXPIRY : Math.max(0, Math.ceil(expires)), offset);
  }
  return payload.subarray(0, offset);
}

/** The keys of a message, or undefined when it is not one (another format, cut short, trailing bytes). */
export function decodeKeys(payload: Buffer): Array<{ key: string; expiresAtSec: number }> | undefined {
  if (payload.length < 1 || payload[0] !== FORMAT) return undefined;
  const keys: Array<{ key: string; expiresAtSec: number }> = [];
  let offset = 1;
  while (offset < payload.length) {
    if (offset + 2 > payload.length) return undefined;
    const length = payload.readUInt16BE(offset);
    offset += 2;
    if (length === 0 || offset + length + 4 > payload.length) return undefined;
    const key = payload.toString('utf8', offset, offset + length);
    offset += length;
    const expires = payload.readUInt32BE(offset);
    offset += 4;
    keys.push({ key, expiresAtSec: expires === NO_EXPIRY ? Infinity : expires });
  }
  return keys;
}
