/**
 * The stats() counters of the three consumers: attachSessionStore's counters, the ticket counts
 * TicketKeyRing keeps per server, and the latency percentiles all of them report (also
 * ClientSessionCache's). Latencies go into a fixed ring of the most recent samples: bounded
 * memory, no dependency, and recent behaviour is what an operator asks about.
 */
export interface LatencyPercentiles {
  /** How many samples the percentiles are computed from (at most the reservoir size). */
  samples: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface SessionStoreStats {
  /** resumeSession found a valid record and handed it to Node. */
  hits: number;
  /** resumeSession found nothing (or the store failed/timed out: also counted in errors). */
  misses: number;
  /** newSession records written. */
  stored: number;
  /** Records refused because the session's own lifetime had passed. */
  expired: number;
  /** Records refused as tampered, undecodable, oversized or not resumable (and deleted). */
  rejected: number;
  /**
   * Records this server cannot resume but leaves in the store: of another scope, or issued by a
   * Node release that binds sessions differently (a rolling upgrade; node-internals.ts). Each
   * costs a full handshake.
   */
  incompatible: number;
  /** Store operations that failed or exceeded the budget. */
  errors: number;
  /** newSession events ignored because the session was TLS 1.3 (Node resumes those by ticket only). */
  skippedTls13: number;
  /** Of the hits, records fetched byte for byte as this server accepted them before: not opened again (recordCacheSize). */
  recordCacheHits: number;
  /** Of the misses, lookups answered without asking the store (lookup 'issued': an ID this server never issued). */
  filtered: number;
  /** Milliseconds spent in the store, per operation. */
  latencyMs: { get: LatencyPercentiles; set: LatencyPercentiles };
}

export class LatencyReservoir {
  readonly #samples: Float64Array;
  #count = 0;

  constructor(size = 1024) {
    this.#samples = new Float64Array(size);
  }

  record(milliseconds: number): void {
    this.#samples[this.#count % this.#samples.length] = milliseconds;
    this.#count += 1;
  }

  percentiles(): LatencyPercentiles {
    const n = Math.min(this.#count, this.#samples.length);
    if (n === 0) return { samples: 0, p50: 0, p90: 0, p99: 0, max: 0 };
    const sorted = Array.from(this.#samples.subarray(0, n)).sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(n - 1, Math.ceil(q * n) - 1)]!;
    return { samples: n, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[n - 1]! };
  }
}

export class StatsCollector {
  hits = 0;
  misses = 0;
  stored = 0;
  expired = 0;
  rejected = 0;
  incompatible = 0;
  errors = 0;
  skippedTls13 = 0;
  filtered = 0;
  recordCacheHits = 0;
  readonly getLatency = new LatencyReservoir();
  readonly setLatency = new LatencyReservoir();

  snapshot(): SessionStoreStats {
    return {
      hits: this.hits,
      misses: this.misses,
      stored: this.stored,
      expired: this.expired,
      rejected: this.rejected,
      incompatible: this.incompatible,
      errors: this.errors,
      skippedTls13: this.skippedTls13,
      filtered: this.filtered,
      recordCacheHits: this.recordCacheHits,
      latencyMs: { get: this.getLatency.percentiles(), set: this.setLatency.percentiles() },
    };
  }
}

/**
 * Tickets by the age of the key they were sealed with, in epochs relative to the key that seals
 * new tickets now: `ahead` (a member whose clock is early already uses it), `current`,
 * `previous` (the epoch before) and `older`.
 */
export interface TicketKeyAgeCounts {
  ahead: number;
  current: number;
  previous: number;
  older: number;
}

/** What one server's ticket-key callback did (all zero on a server in 'setTicketKeys' mode: Node does not tell). */
export interface TicketCounts {
  /** Tickets sealed (new sessions and renewals). */
  issued: number;
  /** Of those, sealed with a key local to this process (the store was unreachable). */
  issuedWithLocalKey: number;
  /** Tickets opened and accepted as they are, no new ticket (renewTickets 'retired', a key still sealing). */
  decrypted: TicketKeyAgeCounts;
  /** Tickets opened and renewed: accepted, and the client gets a new ticket under the current key (every one by default). */
  renewed: TicketKeyAgeCounts;
  /** Tickets refused (full handshake): a key this ring never had, or one past its retention. */
  rejected: { unknownKey: number; pastRetention: number };
}

export function emptyTicketCounts(): TicketCounts {
  return {
    issued: 0,
    issuedWithLocalKey: 0,
    decrypted: { ahead: 0, current: 0, previous: 0, older: 0 },
    renewed: { ahead: 0, current: 0, previous: 0, older: 0 },
    rejected: { unknownKey: 0, pastRetention: 0 },
  };
}

/** Adds `from` into `into` (the ring's totals over its servers). */
export function addTicketCounts(into: TicketCounts, from: TicketCounts): TicketCounts {
  into.issued += from.issued;
  into.issuedWithLocalKey += from.issuedWithLocalKey;
  for (const bucket of ['ahead', 'current', 'previous', 'older'] as const) {
    into.decrypted[bucket] += from.decrypted[bucket];
    into.renewed[bucket] += from.renewed[bucket];
  }
  into.rejected.unknownKey += from.rejected.unknownKey;
  into.rejected.pastRetention += from.rejected.pastRetention;
  return into;
}
