/**
 * A fleet-wide store on Redis or Valkey, single node or Cluster. Every command has a time
 * budget (default 50 ms): a slow or dead Redis makes a call reject quickly (the caller counts a
 * miss and the client gets a full handshake) while the client reconnects in the background.
 *
 * The store's own client (`{ url }`) is ioredis: a dependency already, kept current, with the
 * fail-fast settings below (no offline queue, no retries per request). A client the caller
 * passes may be any family redis-clients.ts recognises (ioredis 5/6, iovalkey, node-redis v4+).
 */
import type { RedisOptions } from 'ioredis';
import { performance } from 'node:perf_hooks';
import { inspect } from 'node:util';
import { invalidArgType, invalidArgValue, outOfRange } from '../../errors';
import { booleanOption, integerOption, optionsObject, stringOption } from '../options';
import { withDeadline } from './gateway';
import { StoreClosedError, StoreError, StoreTimeoutError } from '../errors';
import { adaptRedisClient, ownIoredisAdapter, RedisClientAdapter, RedisClientLike, ttlSaysGone } from './redis-clients';
import { SessionStore, StoredEntry, validateKey, validateKeyToDelete, validateTtl, validateValue } from './contract';
import { RedisWrittenKeys } from './redis-written-keys';
import { DEFAULT_FILTER_SLOTS, untrackedKeys, type WrittenKeys } from './written-keys';

export type { RedisClientLike, IoredisStyleClient, NodeRedisStyleClient } from './redis-clients';

interface RedisStoreCommon {
  /** Prepended to every key (default 'tls-session:'). */
  keyPrefix?: string;
  /** Longest a command may take before it counts as failed (default 50 ms). */
  budgetMs?: number;
  /**
   * How long after construction ready() waits for the first connection (default 3000 ms); after
   * that, ready() answers at once. Bounds how long a fleet member's start waits for Redis.
   */
  startupBudgetMs?: number;
  /**
   * The fleet-wide filter of written keys (trackWrittenKeys: attachSessionStore's default
   * `lookup: 'written'`): `{ slots }` sizes it (a power of two, default 2^21 = 8 MiB, 1% false
   * positives at ~200,000 live sessions) and `verifyEveryMs` how often it looks for keys written
   * without a message (default 30 s; found ones put the filter aside for 10 minutes); false
   * turns it off (every lookup goes to Redis; this member's writes are still announced).
   */
  writtenKeyFilter?: { slots?: number; verifyEveryMs?: number } | false;
}

export interface RedisStoreUrlOptions extends RedisStoreCommon {
  /** redis:// or rediss:// URL; the store owns (and on close() disconnects) the client it makes. */
  url: string;
  /** Extra ioredis options for the client the store makes. */
  redisOptions?: RedisOptions;
}

export interface RedisStoreClientOptions extends RedisStoreCommon {
  /**
   * An existing client or cluster the caller connected and keeps owning (close() leaves it
   * open): ioredis 5/6 or iovalkey `Redis`/`Cluster`, node-redis v4+ `createClient()`/
   * `createCluster()` (after `await client.connect()`). Recognised by shape, not by class.
   */
  client: RedisClientLike;
}

export type RedisStoreOptions = RedisStoreUrlOptions | RedisStoreClientOptions;

export class RedisStore implements SessionStore {
  readonly keyPrefix: string;
  readonly budgetMs: number;
  /** Each command is bounded by budgetMs here (SessionStore#settlesWithinMs): callers with that budget or more need no timer. */
  get settlesWithinMs(): number {
    return this.budgetMs;
  }
  readonly startupBudgetMs: number;
  readonly #client: RedisClientAdapter;
  readonly #ownsClient: boolean;
  readonly #startupDeadline: number;
  /** One wait for 'ready' shared by every caller of ready() during start-up. */
  #readyWait: { promise: Promise<void>; cancel: (error: Error) => void } | undefined;
  #closed = false;
  #connectionErrors = 0;
  /** Slots of each written-key filter; 0: turned off. */
  readonly #filterSlots: number;
  readonly #verifyEveryMs: number;
  /** Whether gets are batched into MGETs (a single-node client with getMany, until the server refuses MGET). */
  #batching: boolean;
  /** Gets waiting for this turn's MGET (#batchedGet). */
  #gets: Array<{ key: string; resolve: (value: Buffer | null) => void; reject: (error: unknown) => void }> | undefined;
  /** One tracker per prefix anybody asked to track (trackWrittenKeys). */
  readonly #trackers = new Map<string, RedisWrittenKeys>();

  constructor(options: RedisStoreOptions) {
    optionsObject(options);
    this.keyPrefix = stringOption(options.keyPrefix, 'options.keyPrefix', 'tls-session:');
    this.budgetMs = integerOption(options.budgetMs, 'options.budgetMs', 50, 1);
    this.startupBudgetMs = integerOption(options.startupBudgetMs, 'options.startupBudgetMs', 3000, 1);
    this.#startupDeadline = performance.now() + this.startupBudgetMs;
    [this.#filterSlots, this.#verifyEveryMs] = filterOption(options.writtenKeyFilter);
    if ('client' in options && options.client !== undefined) {
      this.#client = adaptRedisClient(options.client);
      this.#ownsClient = false;
    } else if ('url' in options && typeof options.url === 'string' && options.url.length > 0) {
      // Loaded here, not at the top: requiring the package must not load a Redis client.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const ioredis = require('ioredis') as typeof import('ioredis');
      const client = new ioredis.Redis(options.url, {
        // Fail fast instead of queueing while disconnected; reconnect forever with capped backoff.
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        retryStrategy: (attempt: number) => Math.min(50 * attempt, 1000),
        // Our own deadline answers the caller; this one frees commands stuck on a hung server.
        commandTimeout: Math.max(this.budgetMs * 4, 1000),
        ...options.redisOptions,
      });
      this.#client = ownIoredisAdapter(client);
      this.#ownsClient = true;
    } else {
      throw invalidArgValue(
        'options',
        'given options.url (a redis:// URL) or options.client (an ioredis, iovalkey or node-redis client)',
        'neither',
      );
    }
    this.#batching = this.#client.getMany !== undefined;
    // Without a listener ioredis prints every connection error and node-redis throws it; we count them instead.
    this.#client.onError(this.#onConnectionError);
  }

  readonly #onConnectionError = (): void => {
    this.#connectionErrors += 1;
  };

  /** Connection-level errors the client reported (refused, reset, ...) since construction. */
  get connectionErrors(): number {
    return this.#connectionErrors;
  }

  /** 'ready' when commands can run; anything else means calls will fail fast. */
  get status(): string {
    return this.#client.status();
  }

  /**
   * Resolves once the client is connected. Until startupBudgetMs after construction it waits for
   * the connection; then it rejects with StoreTimeoutError, and from then on answers at once
   * (resolved when connected, rejected when not): a store that is down costs a start-up at most
   * the budget, and every later call fails fast as commands do.
   */
  ready(): Promise<void> {
    if (this.#closed) return Promise.reject(new StoreClosedError());
    if (this.#client.status() === 'ready') return Promise.resolve();
    const remainingMs = this.#startupDeadline - performance.now();
    if (remainingMs <= 0) return Promise.reject(this.#notReadyError());
    if (this.#readyWait) return this.#readyWait.promise;
    let settle!: (error?: Error) => void;
    const promise = new Promise<void>((resolve, reject) => {
      settle = (error?: Error) => {
        clearTimeout(timer);
        stopWaiting();
        this.#readyWait = undefined;
        if (error) reject(error);
        else resolve();
      };
    });
    const timer = setTimeout(() => settle(this.#notReadyError()), Math.ceil(remainingMs));
    const stopWaiting = this.#client.whenReady(() => settle());
    this.#readyWait = { promise, cancel: settle };
    return promise;
  }

  #notReadyError(): StoreTimeoutError {
    return new StoreTimeoutError(`Redis connect (start-up budget; status ${this.#client.status()})`, this.startupBudgetMs);
  }

  /**
   * SessionStore#trackWrittenKeys: every member publishes the keys it writes under `prefix`
   * and learns the others' (redis-written-keys.ts). Clients that cannot open a subscriber
   * connection (node-redis, a Cluster) and a store with writtenKeyFilter false still publish,
   * but answer "maybe" to every key (`unsupported` says why), as a closed store does.
   */
  trackWrittenKeys(prefix: string, options?: { filter?: boolean }): WrittenKeys {
    if (typeof prefix !== 'string') throw invalidArgType('prefix', 'of type string', prefix);
    const filter = booleanOption(options?.filter, 'options.filter', true);
    if (this.#closed) return untrackedKeys('the store is closed');
    if (!this.#client.publish) return untrackedKeys(`a ${this.#client.family} client without publish()`);
    let tracker = this.#trackers.get(prefix);
    if (!tracker) {
      // Every member announces its writes; only a client that can subscribe keeps a filter.
      const unsupported =
        this.#filterSlots === 0
          ? 'writtenKeyFilter is false'
          : !this.#client.subscribe
            ? `a ${this.#client.family}${this.#client.isCluster ? ' cluster' : ''} client: no subscriber connection`
            : undefined;
      const host = {
        keyPrefix: this.keyPrefix,
        client: this.#client,
        slots: unsupported === undefined ? this.#filterSlots : 0,
        verifyEveryMs: this.#verifyEveryMs,
        unsupported,
      };
      tracker = new RedisWrittenKeys(host, prefix);
      this.#trackers.set(prefix, tracker);
    }
    return tracker.acquire(filter);
  }

  /** The written-key filters' counts, by prefix (for tests and diagnostics). */
  writtenKeyStats(): Record<string, RedisWrittenKeys['stats'] & { complete: boolean }> {
    const out: Record<string, RedisWrittenKeys['stats'] & { complete: boolean }> = {};
    for (const [prefix, tracker] of this.#trackers) {
      if (tracker.tracking) out[prefix] = { ...tracker.stats, complete: tracker.complete };
    }
    return out;
  }

  #noteWrite(key: string, ttlSeconds: number): void {
    for (const tracker of this.#trackers.values()) tracker.noteWrite(key, ttlSeconds);
  }

  async get(key: string): Promise<Buffer | undefined> {
    validateKey(key);
    const value = await this.#command('GET', () =>
      this.#batching ? this.#batchedGet(this.keyPrefix + key) : this.#client.get(this.keyPrefix + key),
    );
    return value ?? undefined;
  }

  /**
   * The gets asked for in one pass of the event loop's poll phase (each ClientHello arrives in
   * an I/O callback of its own) go to Redis as one MGET in the check phase after it: one write
   * and one reply for all of them instead of one per handshake (on loopback a write costs the
   * sender the receiver's TCP work too).
   */
  #batchedGet(key: string): Promise<Buffer | null> {
    return new Promise((resolve, reject) => {
      if (this.#gets === undefined) {
        this.#gets = [];
        setImmediate(this.#flushGets);
      }
      this.#gets.push({ key, resolve, reject });
    });
  }

  readonly #flushGets = (): void => {
    const gets = this.#gets!;
    this.#gets = undefined;
    if (gets.length === 1) {
      const [only] = gets;
      this.#client.get(only!.key).then(only!.resolve, only!.reject);
      return;
    }
    let pending: Promise<Array<Buffer | null>>;
    try {
      pending = this.#client.getMany!(gets.map((get) => get.key));
    } catch (error) {
      pending = Promise.reject(error);
    }
    pending.then(
      (values) => {
        for (const [index, get] of gets.entries()) get.resolve(values[index] ?? null);
      },
      (error: unknown) => {
        // A server that refuses MGET (an ACL without it, a proxy without it) gets one GET per
        // key from now on; any other failure is each get's own.
        if (/NOPERM|unknown command/i.test(String((error as Error)?.message))) this.#batching = false;
        for (const get of gets) this.#client.get(get.key).then(get.resolve, get.reject);
      },
    );
  };

  async set(key: string, value: Buffer, ttlSeconds: number): Promise<void> {
    validateKey(key);
    validateValue(value);
    validateTtl(ttlSeconds);
    const written = this.#command('SET', () => this.#client.set(this.keyPrefix + key, value, ttlSeconds, false));
    this.#noteWrite(key, ttlSeconds);
    await written;
  }

  async setIfAbsent(key: string, value: Buffer, ttlSeconds: number): Promise<boolean> {
    validateKey(key);
    validateValue(value);
    validateTtl(ttlSeconds);
    const written = this.#command('SET NX', () => this.#client.set(this.keyPrefix + key, value, ttlSeconds, true));
    this.#noteWrite(key, ttlSeconds);
    return written;
  }

  /** GETDEL (Redis 6.2+): atomic, so a value goes to one caller only. */
  async take(key: string): Promise<Buffer | undefined> {
    validateKey(key);
    const value = await this.#command('GETDEL', () => this.#client.getdel(this.keyPrefix + key));
    return value ?? undefined;
  }

  async delete(key: string): Promise<void> {
    validateKeyToDelete(key);
    await this.#command('DEL', () => this.#client.del(this.keyPrefix + key));
  }

  /**
   * Every key under keyPrefix with its value and expiry, through SCAN (never KEYS, which blocks
   * Redis), on every master of a Cluster. Read-only, for tools (`tls-session store`); each SCAN
   * step and each batch read has the store's budget. A key deleted while scanning is skipped.
   */
  async *entries(): AsyncGenerator<StoredEntry> {
    // SCAN's MATCH is a glob: the prefix's own glob characters must match literally.
    const pattern = `${this.keyPrefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
    const nodes = await this.#command('CLUSTER masters', () => this.#client.masters());
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await this.#command('SCAN', () => node.scan(cursor, pattern, 200));
        cursor = next;
        if (keys.length === 0) continue;
        const replies = await this.#command('GET/PTTL', () => node.read(keys));
        const now = Date.now();
        for (const [index, key] of keys.entries()) {
          const { value, ttlMs, error } = replies[index]!;
          if (ttlSaysGone(ttlMs)) continue; // gone since SCAN listed it
          const expiresAt = ttlMs >= 0 ? new Date(now + ttlMs) : undefined;
          // A key of another type under the prefix is listed, with why it cannot be read: never skipped.
          if (value === undefined) {
            if (error !== undefined) yield { key: key.slice(this.keyPrefix.length), value: Buffer.alloc(0), expiresAt, unreadable: error };
            continue;
          }
          yield { key: key.slice(this.keyPrefix.length), value, expiresAt };
        }
      } while (cursor !== '0');
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#readyWait?.cancel(new StoreClosedError());
    for (const tracker of this.#trackers.values()) tracker.stop();
    this.#trackers.clear();
    if (this.#ownsClient) this.#client.disconnect();
    else this.#client.offError(this.#onConnectionError);
  }

  async #command<T>(name: string, run: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new StoreClosedError();
    let pending: Promise<T>;
    try {
      pending = run();
    } catch (err) {
      throw new StoreError(`Redis ${name} failed: ${(err as Error).message}`);
    }
    try {
      return await withDeadline(`Redis ${name}`, this.budgetMs, pending);
    } catch (err) {
      if (err instanceof StoreError) throw err;
      throw new StoreError(`Redis ${name} failed: ${(err as Error).message}`);
    }
  }

  // The URL may carry a password: show only what is safe.
  [inspect.custom](): string {
    return `RedisStore { keyPrefix: ${JSON.stringify(this.keyPrefix)}, budgetMs: ${this.budgetMs}, startupBudgetMs: ${this.startupBudgetMs}, status: ${this.status} }`;
  }

  toJSON(): Record<string, unknown> {
    return {
      type: 'RedisStore',
      keyPrefix: this.keyPrefix,
      budgetMs: this.budgetMs,
      startupBudgetMs: this.startupBudgetMs,
      status: this.status,
    };
  }
}

/** writtenKeyFilter: its slots (a power of two, 2^10 to 2^28; 0 when turned off) and how often it checks Redis. */
function filterOption(value: unknown): [slots: number, verifyEveryMs: number] {
  if (value === false) return [0, 0];
  if (value === undefined) return [DEFAULT_FILTER_SLOTS, DEFAULT_VERIFY_EVERY_MS];
  if (value === null || typeof value !== 'object') {
    throw invalidArgType('options.writtenKeyFilter', 'false or an object ({ slots, verifyEveryMs })', value);
  }
  const given = value as { slots?: unknown; verifyEveryMs?: unknown };
  const slots = integerOption(given.slots, 'options.writtenKeyFilter.slots', DEFAULT_FILTER_SLOTS, 1 << 10, 1 << 28);
  if ((slots & (slots - 1)) !== 0) throw outOfRange('options.writtenKeyFilter.slots', 'a power of two from 1024 to 268435456', slots);
  // At most setInterval's own bound: a larger delay would run every millisecond (Node's TimeoutOverflowWarning).
  const verifyEveryMs = integerOption(
    given.verifyEveryMs,
    'options.writtenKeyFilter.verifyEveryMs',
    DEFAULT_VERIFY_EVERY_MS,
    100,
    2 ** 31 - 1,
  );
  return [slots, verifyEveryMs];
}

/** How often a member checks Redis for keys written without a message (default 30 s). */
const DEFAULT_VERIFY_EVERY_MS = 30_000;
