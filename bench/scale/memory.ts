/**
 * MemoryStore's hit rate under its byte cap. A key space of `keys` sessions (the real record's
 * size, its real key length: what lru-cache accounts per entry is key length + value length) is
 * accessed with a Zipf-like skew (P(rank r) ∝ 1/r^s, seeded PRNG: every cap sees the same
 * sequence). Each access is a `get` as resumeSession makes it; a miss stores the session (the
 * full handshake that follows issues one, and attachSessionStore writes it) under the same key:
 * the key stands for the returning client. The store is capped at a share of the working set's
 * bytes (maxBytes; maxEntries one above what fits, so the byte cap binds), warmed up, then measured. The "top-k"
 * column is what a cache holding exactly the most popular keys that fit would hit: the best any
 * policy could do on this distribution.
 */
import { MemoryStore } from '../../lib/persist';
import { RecordFactory, RecordTemplate } from './record';
import { seededRandom, Zipf } from './stats';

export interface MemoryPhaseRequest {
  phase: 'memory';
  keys: number;
  caps: number[];
  exponents: number[];
  warmupAccesses: number;
  measuredAccesses: number;
  seed: number;
  template: RecordTemplate;
}

export interface MemoryRun {
  zipf: number;
  /** Share of the working set's bytes the store may hold. */
  cap: number;
  maxBytes: number;
  /** Entries that fit under the cap. */
  capacityEntries: number;
  hits: number;
  accesses: number;
  hitRate: number;
  /** Share of accesses that go to the capacityEntries most popular keys. */
  topKHitRate: number;
  /**
   * At the end: entries held, bytes accounted by the store (keys + values), and the process memory
   * (V8 heap + array buffers, after a full GC) per entry held: lru-cache's structures, the key
   * string, and the value's copy (MemoryStore copies with Buffer.from: a slice of Node's 8 KiB
   * buffer pool, whose slab stays allocated while any value cut from it is kept).
   */
  entries: number;
  accountedBytes: number;
  processBytesPerEntry: number;
  millis: number;
}

export interface MemoryPhaseResult {
  store: 'memory';
  keys: number;
  entryBytes: number;
  workingSetBytes: number;
  warmupAccesses: number;
  measuredAccesses: number;
  runs: MemoryRun[];
}

/**
 * V8 heap + array buffers once garbage is gone. One gc() is not enough: V8 sweeps and frees
 * array buffers' memory after it returns (a store closed just before still counted then), so
 * a few full collections with pauses between them, until the figure stops falling.
 */
async function settledMemory(): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('bench/scale/memory.ts needs --expose-gc');
  let last = Infinity;
  for (let round = 0; round < 10; round++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const m = process.memoryUsage();
    const now = m.heapUsed + m.arrayBuffers;
    if (now >= last - 64 * 1024) return Math.min(now, last);
    last = now;
  }
  return last;
}

export async function runMemoryPhase(request: MemoryPhaseRequest): Promise<MemoryPhaseResult> {
  const { keys, template } = request;
  const factory = new RecordFactory(template, `seed-${request.seed}`);
  // The session IDs, back to back; each key is made per call as attachSessionStore makes it
  // (prefix + the ID in hex), so the key string an entry keeps is its own, as in a server.
  const idLength = template.idLength;
  const ids = Buffer.alloc(keys * idLength);
  for (let i = 0; i < keys; i++) factory.id(i).copy(ids, i * idLength);
  const keyOf = (r: number): string => template.keyPrefix + ids.toString('hex', r * idLength, (r + 1) * idLength);
  // Every entry is a real record's size; what it holds does not change what an LRU keeps.
  const record = factory.record(0);
  const entryBytes = record.length + keyOf(0).length;
  const workingSetBytes = entryBytes * keys;
  const runs: MemoryRun[] = [];
  for (const s of request.exponents) {
    const zipf = new Zipf(keys, s);
    for (const cap of request.caps) {
      const maxBytes = Math.max(entryBytes, Math.floor(workingSetBytes * cap));
      const capacityEntries = Math.floor(maxBytes / entryBytes);
      const baseline = await settledMemory();
      // The byte cap binds (maxEntries one above what fits; lru-cache sizes its arrays by it).
      const store = new MemoryStore({ maxEntries: capacityEntries + 1, maxBytes });
      const random = seededRandom(request.seed + Math.round(s * 1000));
      const started = performance.now();
      let hits = 0;
      const total = request.warmupAccesses + request.measuredAccesses;
      for (let n = 0; n < total; n++) {
        const r = zipf.sample(random);
        const value = await store.get(keyOf(r));
        if (value !== undefined) {
          if (n >= request.warmupAccesses) hits += 1;
        } else {
          await store.set(keyOf(r), record, template.ttlSeconds);
        }
      }
      const millis = performance.now() - started;
      const processBytes = (await settledMemory()) - baseline;
      runs.push({
        zipf: s,
        cap,
        maxBytes,
        capacityEntries,
        hits,
        accesses: request.measuredAccesses,
        hitRate: hits / request.measuredAccesses,
        topKHitRate: zipf.topShare(capacityEntries),
        entries: store.size,
        accountedBytes: store.bytes,
        processBytesPerEntry: store.size > 0 ? processBytes / store.size : NaN,
        millis,
      });
      process.stderr.write(
        `  memory: zipf ${s}, cap ${(cap * 100).toFixed(0)}%: hit rate ${((hits / request.measuredAccesses) * 100).toFixed(1)}%\n`,
      );
      await store.close();
    }
  }
  return {
    store: 'memory',
    keys,
    entryBytes,
    workingSetBytes,
    warmupAccesses: request.warmupAccesses,
    measuredAccesses: request.measuredAccesses,
    runs,
  };
}
