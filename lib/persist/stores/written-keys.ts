/**
 * "May the store hold this key?", answered from memory: what a store shared by a fleet offers
 * (SessionStore#trackWrittenKeys) so that attachSessionStore does not ask it about session IDs
 * no member issued: every TLS 1.3 ClientHello carries 32 random bytes as its legacy session ID,
 * and Node asks resumeSession about each of them.
 *
 * ExpiringKeyFilter is a Bloom filter whose slots hold the latest expiry (seconds since the
 * epoch) of the keys hashed to them instead of a bit: a key is "maybe held" while all its slots
 * are unexpired, so entries leave by themselves, each at its own TTL, and the filter never needs
 * rebuilding. No false negatives for a key added with its true expiry; a false positive costs
 * the lookup every key cost before. The hashes need not resist anyone: a ClientHello chosen to
 * collide only earns itself that lookup.
 */

export interface WrittenKeys {
  /**
   * false only when the filter knows every key written under its prefix (complete) and this one
   * is not among the live ones; true otherwise (a key outside the prefix, a tracker still loading
   * or reconnecting, a false positive).
   */
  mayHold(key: string): boolean;
  /** Whether the tracker knows every live key under its prefix (loaded, and subscribed since). */
  readonly complete: boolean;
  /** Why this store never completes (a client it cannot subscribe with), or undefined. */
  readonly unsupported: string | undefined;
  /** Stops tracking for this caller (the last release unsubscribes and frees the filter). */
  release(): void;
}

/** The answer of a store that cannot track: every key may be held (every lookup goes to the store). */
export function untrackedKeys(why: string): WrittenKeys {
  return { mayHold: () => true, complete: false, unsupported: why, release: () => undefined };
}

/** How many slots each key sets: with 2^21 slots, 1% false positives at ~200,000 live keys. */
const HASHES = 4;
/** Default slots: 2^21 (8 MiB). */
export const DEFAULT_FILTER_SLOTS = 1 << 21;
/** A key written without expiry: held for as long as the process runs. */
const NEVER = 0xffffffff;

export class ExpiringKeyFilter {
  readonly #slots: Uint32Array;
  readonly #mask: number;
  // The two hashes of the last key, kept here so hashing allocates nothing.
  #h1 = 0;
  #h2 = 0;

  /** `slots`: a power of two from 2^10 to 2^28. */
  constructor(slots: number) {
    this.#slots = new Uint32Array(slots);
    this.#mask = slots - 1;
  }

  get slots(): number {
    return this.#slots.length;
  }

  /** Records `key` as held until `expiresAtSec` (seconds since the epoch; Infinity: no expiry). */
  add(key: string, expiresAtSec: number): void {
    const expiry = expiresAtSec >= NEVER ? NEVER : Math.max(0, Math.ceil(expiresAtSec));
    this.#hash(key);
    const slots = this.#slots;
    for (let i = 0; i < HASHES; i++) {
      const slot = (this.#h1 + Math.imul(i, this.#h2)) & this.#mask;
      if (slots[slot]! < expiry) slots[slot] = expiry;
    }
  }

  /** Whether `key` may have been added with an expiry after `nowSec`. */
  mayHold(key: string, nowSec: number): boolean {
    this.#hash(key);
    const slots = this.#slots;
    for (let i = 0; i < HASHES; i++) {
      if (slots[(this.#h1 + Math.imul(i, this.#h2)) & this.#mask]! <= nowSec) return false;
    }
    return true;
  }

  /** Forgets every key. */
  clear(): void {
    this.#slots.fill(0);
  }

  /** FNV-1a and a second, differently seeded and mixed pass; h2 odd so the probes cover the table. */
  #hash(key: string): void {
    let a = 0x811c9dc5;
    let b = 0x9747b28c;
    for (let i = 0; i < key.length; i++) {
      const c = key.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x5bd1e995);
      b ^= b >>> 13;
    }
    a ^= a >>> 16;
    a = Math.imul(a, 0x85ebca6b);
    a ^= a >>> 13;
    this.#h1 = a >>> 0;
    this.#h2 = (b | 1) >>> 0;
  }
}
