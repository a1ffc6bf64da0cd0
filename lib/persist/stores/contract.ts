/**
 * The contract every session store fulfils. Keys are short ASCII strings built by the caller;
 * values are opaque bytes (already sealed when a secret is configured).
 */
import { invalidArgType, outOfRange } from '../../errors';
import type { WrittenKeys } from './written-keys';

export interface SessionStore {
  /** The stored bytes, or undefined when absent or expired. */
  get(key: string): Promise<Buffer | undefined>;
  /**
   * get(), answered before returning: a declared capability of stores whose work is in-process
   * (MemoryStore, SqliteStore). Optional: with it, attachSessionStore answers Node's
   * resumeSession in the same turn (Node goes on with the handshake inside its own read
   * callback instead of one promise later). Throws what get() would reject with.
   */
  getNow?(key: string): Buffer | undefined;
  /** Stores `value` for `ttlSeconds` (a positive integer), replacing any previous value. */
  set(key: string, value: Buffer, ttlSeconds: number): Promise<void>;
  /** Removes the key; absent keys are not an error. */
  delete(key: string): Promise<void>;
  /**
   * Removes the key and resolves with its live value, atomically: of several callers (in any
   * process sharing the store) at most one receives a given value. Optional: ClientSessionCache
   * uses it for single-use TLS 1.3 tickets; without it the cache reads and then deletes, which
   * another process can race (then two connections may offer the same ticket).
   */
  take?(key: string): Promise<Buffer | undefined>;
  /**
   * Stores only if no live value exists; resolves true when this call wrote it.
   * Optional: TicketKeyRing uses it so that a fleet agrees on one key per epoch.
   */
  setIfAbsent?(key: string, value: Buffer, ttlSeconds: number): Promise<boolean>;
  /**
   * Resolves once the store can serve calls; rejects (StoreTimeoutError, StoreClosedError) when
   * it cannot within its start-up budget, and settles at once after that budget. Optional: a
   * store without it counts as ready. attachSessionStore's first calls and TicketKeyRing.attach
   * wait for it, so a store that connects asynchronously (RedisStore) is not failed before it
   * has had a chance to connect.
   */
  ready?(): Promise<void>;
  /**
   * A fleet-wide, in-memory answer to "may the store hold this key?" for keys under `prefix`
   * (RedisStore: each member publishes the keys it writes and loads the live ones when it
   * starts; written-keys.ts). Optional: attachSessionStore's default `lookup: 'written'` uses it
   * to skip lookups of session IDs no member issued (every TLS 1.3 ClientHello's random legacy
   * ID); without it every ID is looked up. The handle's mayHold must never answer false for a
   * key the store may hold under the prefix. `{ filter: false }`: only announce this process's
   * writes to the others (attachSessionStore with another `lookup`): no filter kept here.
   */
  trackWrittenKeys?(prefix: string, options?: { filter?: boolean }): WrittenKeys;
  /** Releases the backend; further calls reject with StoreClosedError. */
  close(): Promise<void>;
  /**
   * A declared capability: every promise get/set/delete/take/setIfAbsent return settles within
   * this many milliseconds of the call returning (0: the call does its work before it returns,
   * as MemoryStore and SqliteStore do; RedisStore: its own per-command budget). Optional: without
   * it, callers bound each call with a timer of their own budget; with it (at or under that
   * budget), they need none.
   */
  readonly settlesWithinMs?: number;
}

/** The methods a consumer needs beyond get/set/delete. */
export type StoreCapability = 'take' | 'setIfAbsent';

/**
 * The one check that `value` is a SessionStore (get, set and delete functions, plus `needs`):
 * ERR_INVALID_ARG_TYPE naming `name` otherwise.
 */
export function assertSessionStore(value: unknown, name: string, needs: readonly StoreCapability[] = []): asserts value is SessionStore {
  const store = value as Partial<Record<string, unknown>> | null | undefined;
  const methods = ['get', 'set', 'delete', ...needs];
  if (store === null || typeof store !== 'object' || methods.some((method) => typeof store[method] !== 'function')) {
    throw invalidArgType(name, `a SessionStore (with ${methods.join(', ')})`, value);
  }
}

/** One stored record as a store lists it (SqliteStore#entries, RedisStore#entries): read-only. */
export interface StoredEntry {
  /** The key the record was set under (without a RedisStore's keyPrefix). */
  key: string;
  /** The stored bytes (sealed when a secret is configured). */
  value: Buffer;
  /** When the record expires; in the past for SQLite rows not yet swept; undefined for a Redis key without a TTL. */
  expiresAt: Date | undefined;
  /** Set when the value could not be read (a Redis key of another type: WRONGTYPE); `value` is then empty. */
  unreadable?: string;
}

/** Longest key accepted: keeps a hostile caller from filling a store with huge keys. */
export const MAX_KEY_LENGTH = 512;

export function validateKey(key: unknown): asserts key is string {
  if (typeof key !== 'string') throw invalidArgType('key', 'of type string', key);
  if (key.length === 0 || key.length > MAX_KEY_LENGTH) {
    throw outOfRange('key.length', `>= 1 and <= ${MAX_KEY_LENGTH}`, key.length);
  }
}

/**
 * A key to delete: any non-empty string. Deleting cannot fill a store, and `tls-session store
 * verify --delete-bad` must be able to remove a record another writer put under a longer key.
 */
export function validateKeyToDelete(key: unknown): asserts key is string {
  if (typeof key !== 'string') throw invalidArgType('key', 'of type string', key);
  if (key.length === 0) throw outOfRange('key.length', '>= 1', key.length);
}

export function validateValue(value: unknown): asserts value is Buffer {
  if (!Buffer.isBuffer(value)) throw invalidArgType('value', 'an instance of Buffer', value);
}

export function validateTtl(ttlSeconds: unknown): asserts ttlSeconds is number {
  if (typeof ttlSeconds !== 'number') throw invalidArgType('ttlSeconds', 'of type number', ttlSeconds);
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) throw outOfRange('ttlSeconds', 'an integer >= 1', ttlSeconds);
}
