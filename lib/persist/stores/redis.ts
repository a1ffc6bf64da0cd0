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
import { invalidArgValue } from '../../errors';
import { integerOption, optionsObject, stringOption } from '../options';
import { withDeadline } from './gateway';
import { StoreClosedError, StoreError, StoreTimeoutError } from '../errors';
import { adaptRedisClient, ownIoredisAdapter, RedisClientAdapter, RedisClientLike } from './redis-clients';
import { SessionStore, StoredEntry, validateKey, validateKeyToDelete, validateTtl, validateValue } from './contract';

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

  constructor(options: RedisStoreOptions) {
    optionsObject(options);
    this.keyPrefix = stringOption(options.keyPrefix, 'options.keyPrefix', 'tls-session:');
    this.budgetMs = integerOption(options.budgetMs, 'options.budgetMs', 50, 1);
    this.startupBudgetMs = integerOption(options.startupBudgetMs, 'options.startupBudgetMs', 3000, 1);
    this.#startupDeadline = performance.now() + this.startupBudgetMs;
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

  async get(key: string): Promise<Buffer | undefined> {
    validateKey(key);
    const value = await this.#command('GET', () => this.#client.get(this.keyPrefix + key));
    return value ?? undefined;
  }

  async set(key: string, value: Buffer, ttlSeconds: number): Promise<void> {
    validateKey(key);
    validateValue(value);
    validateTtl(ttlSeconds);
    await this.#command('SET', () => this.#client.set(this.keyPrefix + key, value, ttlSeconds, false));
  }

  async setIfAbsent(key: string, value: Buffer, ttlSeconds: number): Promise<boolean> {
    validateKey(key);
    validateValue(value);
    validateTtl(ttlSeconds);
    return this.#command('SET NX', () => this.#client.set(this.keyPrefix + key, value, ttlSeconds, true));
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
          if (ttlMs === -2 || Number.isNaN(ttlMs)) continue; // gone since SCAN listed it
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
