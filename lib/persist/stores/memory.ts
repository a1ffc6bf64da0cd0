/** An in-process LRU store bounded by entry count and bytes (lru-cache does the bookkeeping). */
import type { LRUCache } from 'lru-cache';
import { integerOption, optionsObject } from '../options';
import { clockOption, type Clock } from '../clock';
import { StoreClosedError } from '../errors';
import { SessionStore, validateKey, validateKeyToDelete, validateTtl, validateValue } from './contract';

export interface MemoryStoreOptions {
  /** Most entries kept (default 10 000). */
  maxEntries?: number;
  /** Most bytes of keys + values kept (default 32 MiB). */
  maxBytes?: number;
  /**
   * The clock TTLs run on: milliseconds (since the epoch, as Date.now; only differences matter
   * here). Default: lru-cache's monotonic clock (performance.now), which a wall-clock step does
   * not move. For tests and simulations: give the same clock to attachSessionStore,
   * ClientSessionCache or TicketKeyRing, and entries expire as that clock moves.
   */
  now?: Clock;
}

export class MemoryStore implements SessionStore {
  /** Each call does its work before it returns (SessionStore#settlesWithinMs): no caller needs a timer. */
  readonly settlesWithinMs = 0;
  readonly #cache: LRUCache<string, Buffer>;
  #closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    optionsObject(options);
    const maxEntries = integerOption(options.maxEntries, 'options.maxEntries', 10_000, 1);
    const maxBytes = integerOption(options.maxBytes, 'options.maxBytes', 32 * 1024 * 1024, 1);
    const now = options.now === undefined ? undefined : clockOption(options.now);
    // Loaded here, like every store's library: requiring the package loads none of them.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { LRUCache: Cache } = require('lru-cache') as typeof import('lru-cache');
    this.#cache = new Cache<string, Buffer>({
      max: maxEntries,
      maxSize: maxBytes,
      sizeCalculation: (value, key) => value.length + key.length,
      // An injected clock is read at every check (ttlResolution 0: lru-cache would otherwise
      // keep a reading for 1 ms), so a test that moves it sees entries expire at once.
      ...(now && { perf: { now }, ttlResolution: 0 }),
    });
  }

  /** Entries currently held (expired ones may linger until touched). */
  get size(): number {
    return this.#cache.size;
  }

  /** Bytes currently accounted (keys + values). */
  get bytes(): number {
    return this.#cache.calculatedSize;
  }

  /** Always ready (in-process); rejects only after close(). */
  async ready(): Promise<void> {
    this.#checkOpen();
  }

  async get(key: string): Promise<Buffer | undefined> {
    return this.getNow(key);
  }

  /** get(), answered before returning (SessionStore#getNow). */
  getNow(key: string): Buffer | undefined {
    this.#checkOpen();
    validateKey(key);
    return this.#cache.get(key);
  }

  async set(key: string, value: Buffer, ttlSeconds: number): Promise<void> {
    this.#checkOpen();
    validateKey(key);
    validateValue(value);
    validateTtl(ttlSeconds);
    // Copy: the caller may reuse its buffer.
    this.#cache.set(key, Buffer.from(value), { ttl: ttlSeconds * 1000 });
  }

  async setIfAbsent(key: string, value: Buffer, ttlSeconds: number): Promise<boolean> {
    this.#checkOpen();
    validateKey(key);
    if (this.#cache.has(key)) return false;
    await this.set(key, value, ttlSeconds);
    return this.#cache.has(key);
  }

  async take(key: string): Promise<Buffer | undefined> {
    this.#checkOpen();
    validateKey(key);
    const value = this.#cache.get(key);
    this.#cache.delete(key);
    return value;
  }

  async delete(key: string): Promise<void> {
    this.#checkOpen();
    validateKeyToDelete(key);
    this.#cache.delete(key);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#cache.clear();
  }

  #checkOpen(): void {
    if (this.#closed) throw new StoreClosedError();
  }
}
