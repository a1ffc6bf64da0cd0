/**
 * Lookup latency of a filled store, as attachSessionStore's resumeSession asks: one lookup at a
 * time, through a StoreGateway with attachSessionStore's default budget (50 ms; no timer for a
 * store that declares it settles within it, as SqliteStore and RedisStore do); synchronously
 * through the gateway's getNow where it offers one for the store, as attachSessionStore then
 * does; for the key 'session:' + hex session ID. Hits (IDs stored) and misses (IDs never
 * stored: what a TLS 1.3 ClientHello's random legacy ID or an evicted session asks) are drawn at
 * random and interleaved in one shuffled sequence, so both see the same conditions. Keys are
 * made before the clock runs.
 */
import { performance } from 'node:perf_hooks';
import type { SessionStore } from '../../lib/persist';
import { StoreGateway } from '../../lib/persist/stores/gateway';
import type { RecordFactory } from './record';
import { percentiles, Percentiles, randomIndex, seededRandom, shuffle } from './stats';

/** attachSessionStore's default budgetMs. */
const ATTACH_BUDGET_MS = 50;
const WARMUP_LOOKUPS = 500;
/** Fetched hit records opened and checked afterwards (not timed). */
const VERIFIED_RECORDS = 100;

export interface LookupResult {
  /** How attachSessionStore's resumeSession asks this store: 'getNow' (answered in the same turn) or 'get' (a promise). */
  path: 'getNow' | 'get';
  /** Microseconds per get, stored IDs. */
  hit: Percentiles;
  /** Microseconds per get, IDs never stored. */
  miss: Percentiles;
  /** Hits that came back empty, misses that came back with a value, calls that failed (budget, error): all should be 0. */
  hitsNotFound: number;
  missesFound: number;
  errors: number;
  /** Hit records opened with the secret under their key and carrying their own session ID, of those checked. */
  verified: string;
}

/**
 * `lookups` hits among indexes [hitFrom, hitTo) and as many misses among indexes that were never
 * stored (from `missFrom` on), interleaved at random.
 */
export async function measureLookups(
  store: SessionStore,
  factory: RecordFactory,
  { lookups, hitFrom, hitTo, missFrom, seed }: { lookups: number; hitFrom: number; hitTo: number; missFrom: number; seed: number },
): Promise<LookupResult> {
  const random = seededRandom(seed);
  const gateway = new StoreGateway(store);
  const ops: Array<{ index: number; hit: boolean; key: string }> = [];
  for (let i = 0; i < lookups; i++) {
    const hitIndex = hitFrom + randomIndex(random, hitTo - hitFrom);
    ops.push({ index: hitIndex, hit: true, key: factory.key(hitIndex) });
    const missIndex = missFrom + randomIndex(random, 0x7fffffff - missFrom);
    ops.push({ index: missIndex, hit: false, key: factory.key(missIndex) });
  }
  shuffle(ops, random);
  const warmup = Array.from({ length: Math.min(WARMUP_LOOKUPS, lookups) }, () => {
    const index = hitFrom + randomIndex(random, hitTo - hitFrom);
    return factory.key(index);
  });
  await gateway.start();
  // attachSessionStore asks a store that answers in the caller's turn (SessionStore#getNow, where
  // the gateway offers it) synchronously, any other through a promise: the same here.
  const sameTurn = gateway as unknown as { answersNow?: () => boolean; getNow?: (key: string) => Buffer | undefined };
  const answersNow = typeof sameTurn.answersNow === 'function' && sameTurn.answersNow() && typeof sameTurn.getNow === 'function';
  const get = answersNow
    ? (key: string): Promise<Buffer | undefined> | Buffer | undefined => sameTurn.getNow!(key)
    : (key: string): Promise<Buffer | undefined> | Buffer | undefined => gateway.call('get', ATTACH_BUDGET_MS, (s) => s.get(key));
  for (const key of warmup) {
    try {
      await get(key);
    } catch {
      /* counted below, not here */
    }
  }

  const hitMicros: number[] = [];
  const missMicros: number[] = [];
  let hitsNotFound = 0;
  let missesFound = 0;
  let errors = 0;
  const toVerify: Array<{ index: number; value: Buffer }> = [];
  for (const op of ops) {
    const started = performance.now();
    let value: Buffer | undefined;
    try {
      const answer = get(op.key);
      value = answer instanceof Promise ? await answer : answer;
    } catch {
      errors += 1;
    }
    const micros = (performance.now() - started) * 1000;
    if (op.hit) {
      hitMicros.push(micros);
      if (value === undefined) hitsNotFound += 1;
      else if (toVerify.length < VERIFIED_RECORDS) toVerify.push({ index: op.index, value });
    } else {
      missMicros.push(micros);
      if (value !== undefined) missesFound += 1;
    }
  }
  const good = toVerify.filter(({ index, value }) => factory.verify(index, value)).length;
  return {
    path: answersNow ? 'getNow' : 'get',
    hit: percentiles(hitMicros),
    miss: percentiles(missMicros),
    hitsNotFound,
    missesFound,
    errors,
    verified: `${good}/${toVerify.length}`,
  };
}
