/**
 * TicketKeyRing: fleet-wide TLS session ticket keys (TLS 1.3 resumption, and TLS 1.2 tickets).
 *
 * Time is cut into epochs of `rotationSeconds`. The key of epoch N lives in the store under a
 * key naming N; the first server to need it creates it with setIfAbsent, every other server
 * reads the same bytes. Each server switches to the key of the new epoch at the epoch boundary
 * (wall clock), so the fleet changes keys together, and fetches the next epoch's key ahead of
 * time so the switch needs no store round trip.
 *
 * Node 20 holds exactly one ticket key per context (setTicketKeys replaces it), so a ticket
 * issued in epoch N no longer resumes after the switch to N+1: that client does one full
 * handshake. Choose rotationSeconds well above the session timeout (Node's default 300 s).
 */
import { randomBytes } from 'node:crypto';
import type * as tls from 'node:tls';
import { inspect } from 'node:util';
import { invalidArgType, outOfRange } from '../errors';
import { withDeadline } from './deadline';
import { PersistConfigError, RecordFormatError } from './errors';
import { Sealer, Secret, unwrapPlain, wrapPlain } from './seal';
import type { SessionStore } from './store';

/** Node's ticket key: 16 bytes key name, 16 bytes HMAC secret, 16 bytes AES key. */
export const TICKET_KEY_BYTES = 48;

export interface TicketKeyRingOptions {
  store: SessionStore;
  /** Epoch length: all servers switch keys at each multiple of it (default 3600 s; keep it well above the session timeout). */
  rotationSeconds?: number;
  /** Seal ticket keys in the store (strongly advised for Redis): same form as attachSessionStore's. */
  secret?: Secret;
  /** Prefix of the store keys (default 'ticket-key:'). */
  keyPrefix?: string;
  /** Longest a store call may take (default 2000 ms: not on the handshake path). */
  budgetMs?: number;
  /** Told about store failures; the ring keeps the last good key and retries. Must not throw. */
  onError?: (error: Error) => void;
}

export interface TicketKeyRingStats {
  epoch: number | undefined;
  rotations: number;
  created: number;
  fetched: number;
  errors: number;
  servers: number;
}

/** How long before the boundary the next key is fetched, and how soon a failed fetch is retried. */
const RETRY_MS = 1000;

export class TicketKeyRing {
  readonly rotationSeconds: number;
  readonly #store: SessionStore;
  readonly #sealer: Sealer | undefined;
  readonly #keyPrefix: string;
  readonly #budgetMs: number;
  readonly #onError: ((error: Error) => void) | undefined;
  readonly #servers = new Set<tls.Server>();
  readonly #keys = new Map<number, Buffer>();
  #appliedEpoch: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #stats = { rotations: 0, created: 0, fetched: 0, errors: 0 };

  constructor(options: TicketKeyRingOptions) {
    if (options === null || typeof options !== 'object') throw invalidArgType('options', 'an object', options);
    const { store } = options;
    if (!store || typeof store.get !== 'function' || typeof store.set !== 'function') {
      throw invalidArgType('options.store', 'a SessionStore', store);
    }
    this.rotationSeconds = options.rotationSeconds ?? 3600;
    if (!Number.isInteger(this.rotationSeconds) || this.rotationSeconds < 1) {
      throw outOfRange('options.rotationSeconds', 'an integer >= 1', this.rotationSeconds);
    }
    this.#budgetMs = options.budgetMs ?? 2000;
    if (!Number.isInteger(this.#budgetMs) || this.#budgetMs < 1) throw outOfRange('options.budgetMs', 'an integer >= 1', this.#budgetMs);
    this.#keyPrefix = options.keyPrefix ?? 'ticket-key:';
    if (typeof this.#keyPrefix !== 'string') throw invalidArgType('options.keyPrefix', 'of type string', this.#keyPrefix);
    this.#store = store;
    this.#sealer = options.secret !== undefined ? new Sealer(options.secret, 'ticket-key') : undefined;
    this.#onError = options.onError;
  }

  /** The epoch whose key is applied now, or undefined before the first attach. */
  get epoch(): number | undefined {
    return this.#appliedEpoch;
  }

  stats(): TicketKeyRingStats {
    return { epoch: this.#appliedEpoch, ...this.#stats, servers: this.#servers.size };
  }

  /**
   * Fetches (or creates) the current epoch's key and applies it to `server` with setTicketKeys;
   * from then on the server follows every rotation. Rejects if the store cannot be reached.
   */
  async attach(server: tls.Server): Promise<void> {
    if (this.#closed) throw new PersistConfigError('TicketKeyRing is closed');
    if (server === null || typeof server !== 'object' || typeof (server as tls.Server).setTicketKeys !== 'function') {
      throw invalidArgType('server', 'a tls.Server, https.Server or http2 secure server', server);
    }
    const epoch = this.#currentEpoch();
    const key = await this.#keyFor(epoch);
    if (this.#closed) throw new PersistConfigError('TicketKeyRing is closed');
    server.setTicketKeys(key);
    this.#servers.add(server);
    if (this.#appliedEpoch === undefined || epoch > this.#appliedEpoch) this.#applyToAll(epoch, key);
    this.#schedule();
  }

  /** Stops following rotations for this server (its current key stays in place). */
  detach(server: tls.Server): void {
    this.#servers.delete(server);
  }

  /** Stops the rotation timer; the store stays open (it belongs to the caller). */
  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#servers.clear();
    for (const key of this.#keys.values()) key.fill(0);
    this.#keys.clear();
  }

  #currentEpoch(): number {
    return Math.floor(Date.now() / 1000 / this.rotationSeconds);
  }

  #applyToAll(epoch: number, key: Buffer): void {
    for (const server of this.#servers) server.setTicketKeys(key);
    if (this.#appliedEpoch !== undefined) this.#stats.rotations += 1;
    this.#appliedEpoch = epoch;
    for (const known of this.#keys.keys()) {
      if (known < epoch) {
        this.#keys.get(known)!.fill(0);
        this.#keys.delete(known);
      }
    }
  }

  /** Wakes at the next boundary to switch keys, or halfway through the epoch to prefetch. */
  #schedule(): void {
    if (this.#closed || this.#timer) return;
    const nowMs = Date.now();
    const epochMs = this.rotationSeconds * 1000;
    const nextBoundary = (this.#currentEpoch() + 1) * epochMs;
    const prefetchAt = nextBoundary - epochMs / 2;
    const wakeAt = !this.#keys.has(this.#currentEpoch() + 1) && nowMs < prefetchAt ? prefetchAt : nextBoundary;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        void this.#tick();
      },
      Math.max(0, wakeAt - nowMs),
    );
    this.#timer.unref();
  }

  async #tick(): Promise<void> {
    if (this.#closed) return;
    const epoch = this.#currentEpoch();
    try {
      if (this.#appliedEpoch === undefined || epoch > this.#appliedEpoch) {
        this.#applyToAll(epoch, await this.#keyFor(epoch));
      } else {
        await this.#keyFor(epoch + 1);
      }
    } catch (error) {
      // Keep the last good key: tickets keep working on this server while the store is away.
      this.#stats.errors += 1;
      this.#report(error as Error);
      if (!this.#closed) {
        this.#timer = setTimeout(() => {
          this.#timer = undefined;
          void this.#tick();
        }, RETRY_MS);
        this.#timer.unref();
        return;
      }
    }
    this.#schedule();
  }

  async #keyFor(epoch: number): Promise<Buffer> {
    const cached = this.#keys.get(epoch);
    if (cached) return cached;
    const storeKey = `${this.#keyPrefix}${this.rotationSeconds}:${epoch}`;
    // Kept for three epochs: the current one, plus slack for servers with a slow clock.
    const ttlSeconds = this.rotationSeconds * 3;
    let record = await withDeadline('get', this.#budgetMs, this.#store.get(storeKey));
    if (record === undefined) {
      const candidate = randomBytes(TICKET_KEY_BYTES);
      const sealed = this.#sealer ? this.#sealer.seal(storeKey, candidate) : wrapPlain(candidate);
      if (this.#store.setIfAbsent) {
        if (await withDeadline('setIfAbsent', this.#budgetMs, this.#store.setIfAbsent(storeKey, sealed, ttlSeconds))) {
          this.#stats.created += 1;
        }
      } else {
        // Without an atomic setIfAbsent two servers may race here; the re-read below narrows it.
        await withDeadline('set', this.#budgetMs, this.#store.set(storeKey, sealed, ttlSeconds));
        this.#stats.created += 1;
      }
      candidate.fill(0);
      record = await withDeadline('get', this.#budgetMs, this.#store.get(storeKey));
      if (record === undefined) throw new RecordFormatError('ticket key vanished from the store right after it was written');
    } else {
      this.#stats.fetched += 1;
    }
    const key = this.#sealer ? this.#sealer.open(storeKey, record) : unwrapPlain(record);
    if (key.length !== TICKET_KEY_BYTES)
      throw new RecordFormatError(`stored ticket key has ${key.length} bytes, expected ${TICKET_KEY_BYTES}`);
    const owned = Buffer.from(key);
    this.#keys.set(epoch, owned);
    return owned;
  }

  #report(error: Error): void {
    try {
      this.#onError?.(error);
    } catch {
      /* onError must not break rotation */
    }
  }

  [inspect.custom](): string {
    return `TicketKeyRing { rotationSeconds: ${this.rotationSeconds}, epoch: ${this.#appliedEpoch}, servers: ${this.#servers.size}, keys: [hidden] }`;
  }

  toJSON(): Record<string, unknown> {
    return { type: 'TicketKeyRing', rotationSeconds: this.rotationSeconds, epoch: this.#appliedEpoch, keys: '[hidden]' };
  }
}
