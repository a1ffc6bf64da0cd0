/**
 * RedisStore at scale, against the redis-server the benchmark started (loopback, no persistence
 * configured): fill N sessions through the store's public API (`set`: SET key value EX ttl),
 * `window` calls in flight at a time (a busy server's write-behind has many); Redis's memory
 * (INFO memory used_memory before and after, MEMORY USAGE of sampled keys) and its RDB size
 * (one SAVE); lookups through the store's `get` one at a time, as a handshake asks.
 *
 * Expiry: RedisStore never sweeps; every key carries its TTL (EX) and Redis removes expired
 * keys itself, lazily when a key is touched and in its active expire cycle (every 1/hz s,
 * sampling keys that have a TTL, time-bounded). Its clock cannot be injected, so the oldest
 * `expireShare` of the keys are given one common expiry instant a few seconds ahead (PEXPIREAT,
 * pipelined on a separate client: outside the store's API, which has no such call), and from that
 * instant on the benchmark, touching only live keys (gets, timed), watches INFO stats
 * expired_keys until Redis has removed them all or `expiryWaitSeconds` have passed.
 */
import { statSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { RedisStore } from '../../lib/persist';
import { measureLookups, LookupResult } from './lookups';
import { RecordFactory, RecordTemplate } from './record';
import { percentiles, Percentiles, randomIndex, seededRandom } from './stats';

export interface RedisPhaseRequest {
  phase: 'redis';
  url: string;
  sessions: number;
  lookups: number;
  expireShare: number;
  expiryWaitSeconds: number;
  window: number;
  seed: number;
  template: RecordTemplate;
  rdbPath: string;
}

export interface RedisMemory {
  usedMemory: number;
  usedMemoryRss: number;
  usedMemoryDataset: number;
}

export interface RedisPhaseResult {
  store: 'redis';
  redisVersion: string;
  sessions: number;
  fill: { method: string; window: number; wallSeconds: number; setSeconds: number; setsPerSecond: number; errors: number };
  keys: number;
  memoryBefore: RedisMemory;
  memoryAfter: RedisMemory;
  /** (used_memory after − before) / sessions. */
  bytesPerSession: number;
  rssBytesPerSession: number;
  /** MEMORY USAGE <key> SAMPLES 0 over sampled keys. */
  memoryUsage: { sampled: number; median: number; min: number; max: number };
  valueEncoding: string;
  rdb: { saveMillis: number; bytes: number; bytesPerSession: number };
  lookups: LookupResult;
  /** GET as Redis itself timed it during the lookups (warm-up included): µs per call, and its latency percentiles (Redis 7+). */
  serverGet: { calls: number; usecPerCall: number; p50: number | null; p99: number | null; p999: number | null };
  /** Null with expiryWaitSeconds 0 (not measured). */
  expiry: RedisExpiry | null;
}

export interface RedisExpiry {
  how: string;
  hz: number;
  expired: number;
  /** Time to issue the PEXPIREATs (pipelined) and the lead given before the common expiry instant. */
  setupMillis: number;
  leadMillis: number;
  /** From the expiry instant: when Redis had removed 50%, 90% and all of them (null: not within the wait). */
  millisToHalf: number | null;
  millisTo90: number | null;
  millisToAll: number | null;
  removedWithinWait: number;
  waitedMillis: number;
  /** used_memory released per removed key. */
  freedBytesPerKey: number;
  /** Gets of live keys, one at a time, while Redis was expiring (µs). */
  getsMeanwhile: Percentiles;
  expiredStalePerc: number | null;
  expiredTimeCapReachedCount: number | null;
}

function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (at > 0 && !line.startsWith('#')) fields.set(line.slice(0, at), line.slice(at + 1));
  }
  return fields;
}

async function memory(admin: Redis): Promise<RedisMemory> {
  const info = parseInfo(await admin.info('memory'));
  return {
    usedMemory: Number(info.get('used_memory')),
    usedMemoryRss: Number(info.get('used_memory_rss')),
    usedMemoryDataset: Number(info.get('used_memory_dataset')),
  };
}

async function statsField(admin: Redis, field: string): Promise<number | null> {
  const value = parseInfo(await admin.info('stats')).get(field);
  return value === undefined ? null : Number(value);
}

/** Redis's own account of its GETs since the last CONFIG RESETSTAT. */
async function serverSideGet(admin: Redis): Promise<RedisPhaseResult['serverGet']> {
  const fields = (line: string | undefined): Map<string, number> =>
    new Map((line ?? '').split(',').map((part) => [part.split('=')[0]!, Number(part.split('=')[1])] as [string, number]));
  const commands = fields(parseInfo(await admin.info('commandstats')).get('cmdstat_get'));
  const latency = fields(parseInfo(await admin.info('latencystats')).get('latency_percentiles_usec_get'));
  return {
    calls: commands.get('calls') ?? 0,
    usecPerCall: commands.get('usec_per_call') ?? NaN,
    p50: latency.get('p50') ?? null,
    p99: latency.get('p99') ?? null,
    p999: latency.get('p99.9') ?? null,
  };
}

const progress = (message: string): boolean => process.stderr.write(`  ${message}\n`);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function runRedisPhase(request: RedisPhaseRequest): Promise<RedisPhaseResult> {
  const { sessions, template, window } = request;
  const factory = new RecordFactory(template, `seed-${request.seed}`);
  const admin = new Redis(request.url, { lazyConnect: false });
  try {
    const redisVersion = parseInfo(await admin.info('server')).get('redis_version') ?? '?';
    const memoryBefore = await memory(admin);

    // --- fill through the public API ---
    const fillStore = new RedisStore({ url: request.url, budgetMs: 10_000 });
    await fillStore.ready();
    let errors = 0;
    let setMillis = 0;
    const fillStarted = performance.now();
    let reported = 0;
    for (let from = 0; from < sessions; from += window) {
      const to = Math.min(sessions, from + window);
      const batch: Array<{ key: string; record: Buffer }> = [];
      for (let i = from; i < to; i++) {
        const id = factory.id(i);
        const key = factory.key(i, id);
        batch.push({ key, record: factory.record(i, id, key) });
      }
      const started = performance.now();
      await Promise.all(batch.map(({ key, record }) => fillStore.set(key, record, template.ttlSeconds).catch(() => void (errors += 1))));
      setMillis += performance.now() - started;
      if (to - reported >= sessions / 10 || to === sessions) {
        reported = to;
        progress(`redis: ${to} sessions stored (${((performance.now() - fillStarted) / 1000).toFixed(1)} s)`);
      }
    }
    const fillWallSeconds = (performance.now() - fillStarted) / 1000;
    await fillStore.close();
    const keys = Number(await admin.dbsize());
    const memoryAfter = await memory(admin);

    // --- memory per key ---
    const random = seededRandom(request.seed + 2);
    const usages: number[] = [];
    for (let s = 0; s < Math.min(200, sessions); s++) {
      const key = fillStore.keyPrefix + factory.key(randomIndex(random, sessions));
      const usage = await admin.call('MEMORY', 'USAGE', key, 'SAMPLES', '0');
      if (typeof usage === 'number') usages.push(usage);
    }
    usages.sort((a, b) => a - b);
    const valueEncoding = String(await admin.call('OBJECT', 'ENCODING', fillStore.keyPrefix + factory.key(0)));

    // --- what the same data takes on disk if Redis persists it (RDB) ---
    progress('redis: SAVE (RDB)');
    const saveStarted = performance.now();
    await admin.call('SAVE');
    const saveMillis = performance.now() - saveStarted;
    const rdbBytes = statSync(request.rdbPath, { throwIfNoEntry: false })?.size ?? 0;

    // --- lookups, as attachSessionStore asks (default RedisStore options) ---
    progress(`redis: ${request.lookups} hit and ${request.lookups} miss lookups`);
    const store = new RedisStore({ url: request.url });
    await store.ready();
    // Redis's own time per GET (commandstats, latencystats) over the lookups: what is Redis's at
    // this size, apart from the round trip, the client and the scheduling of both processes.
    await admin.call('CONFIG', 'RESETSTAT');
    const lookups = await measureLookups(store, factory, {
      lookups: request.lookups,
      hitFrom: 0,
      hitTo: sessions,
      missFrom: sessions,
      seed: request.seed + 1,
    });
    const serverGet = await serverSideGet(admin);

    // --- expiry: the oldest share expires at one instant; Redis removes them itself ---
    const expiry = request.expiryWaitSeconds > 0 ? await measureExpiry(admin, store, factory, request, random) : null;
    await store.close();
    return {
      store: 'redis',
      redisVersion,
      sessions,
      fill: {
        method: `RedisStore#set (SET key value EX ttl), ${window} calls in flight at a time`,
        window,
        wallSeconds: fillWallSeconds,
        setSeconds: setMillis / 1000,
        setsPerSecond: sessions / (setMillis / 1000),
        errors,
      },
      keys,
      memoryBefore,
      memoryAfter,
      bytesPerSession: (memoryAfter.usedMemory - memoryBefore.usedMemory) / sessions,
      rssBytesPerSession: (memoryAfter.usedMemoryRss - memoryBefore.usedMemoryRss) / sessions,
      memoryUsage: {
        sampled: usages.length,
        median: usages[Math.floor((usages.length - 1) / 2)] ?? NaN,
        min: usages[0] ?? NaN,
        max: usages[usages.length - 1] ?? NaN,
      },
      valueEncoding,
      rdb: { saveMillis, bytes: rdbBytes, bytesPerSession: rdbBytes / sessions },
      lookups,
      serverGet,
      expiry,
    };
  } finally {
    admin.disconnect();
  }
}

/**
 * The oldest `expireShare` of the keys get one expiry instant a few seconds ahead; from it on,
 * INFO stats expired_keys is watched (every 50 ms) while only live keys are read, until Redis
 * has removed them all or the wait is over.
 */
async function measureExpiry(
  admin: Redis,
  store: RedisStore,
  factory: RecordFactory,
  request: RedisPhaseRequest,
  random: () => number,
): Promise<RedisExpiry> {
  const { sessions } = request;
  const expireCount = Math.round(sessions * request.expireShare);
  const hz = Number(((await admin.config('GET', 'hz')) as string[])[1]);
  progress(`redis: ${expireCount} keys expire at one instant; waiting for Redis to remove them (at most ${request.expiryWaitSeconds} s)`);
  const expireKeys = Array.from({ length: expireCount }, (_, i) => store.keyPrefix + factory.key(i));
  const pexpireat = async (batch: string[], at: number): Promise<void> => {
    const pipeline = admin.pipeline();
    for (const key of batch) pipeline.pexpireat(key, at);
    await pipeline.exec();
  };
  const setupStarted = performance.now();
  // The first batch, far ahead, times the rest; then every key gets the same instant.
  const probeBatch = expireKeys.slice(0, 1000);
  await pexpireat(probeBatch, Date.now() + 3_600_000);
  const probeMillis = performance.now() - setupStarted;
  const leadMillis = Math.max(2000, Math.ceil(4 * probeMillis * (expireCount / Math.max(1, probeBatch.length))));
  const expireAt = Date.now() + leadMillis;
  for (let from = 0; from < expireCount; from += 1000) await pexpireat(expireKeys.slice(from, from + 1000), expireAt);
  const setupMillis = performance.now() - setupStarted;
  if (Date.now() >= expireAt) throw new Error('the PEXPIREATs took longer than the lead given: rerun (machine too busy?)');
  const expiredBefore = (await statsField(admin, 'expired_keys')) ?? 0;
  const memoryBeforeExpiry = await memory(admin);
  await sleep(expireAt - Date.now());
  const waitStarted = performance.now();
  const deadline = waitStarted + request.expiryWaitSeconds * 1000;
  let millisToHalf: number | null = null;
  let millisTo90: number | null = null;
  let millisToAll: number | null = null;
  const getMicros: number[] = [];
  let nextPoll = 0;
  while (performance.now() < deadline) {
    // Gets of live keys only: touching an expired key would remove it lazily.
    const key = factory.key(expireCount + randomIndex(random, sessions - expireCount));
    const started = performance.now();
    await store.get(key).catch(() => undefined);
    getMicros.push((performance.now() - started) * 1000);
    if (performance.now() >= nextPoll) {
      nextPoll = performance.now() + 50;
      const removed = ((await statsField(admin, 'expired_keys')) ?? 0) - expiredBefore;
      const elapsed = performance.now() - waitStarted;
      if (millisToHalf === null && removed >= expireCount / 2) millisToHalf = elapsed;
      if (millisTo90 === null && removed >= expireCount * 0.9) millisTo90 = elapsed;
      if (removed >= expireCount) {
        millisToAll = elapsed;
        break;
      }
    }
    // Sparse gets, about one a millisecond: a server's lookups, not a flood (each costs Redis time too).
    await sleep(1);
  }
  const waitedMillis = performance.now() - waitStarted;
  const removed = ((await statsField(admin, 'expired_keys')) ?? 0) - expiredBefore;
  const memoryAfterExpiry = await memory(admin);
  const expiredStalePerc = await statsField(admin, 'expired_stale_perc');
  const expiredTimeCapReachedCount = await statsField(admin, 'expired_time_cap_reached_count');
  return {
    how:
      'TTL on every key (SET … EX); Redis removes expired keys itself: on access, and in its active expire cycle. ' +
      'Measured: the oldest share given one expiry instant (PEXPIREAT), then INFO stats expired_keys watched while only live keys are read',
    hz,
    expired: expireCount,
    setupMillis,
    leadMillis,
    millisToHalf,
    millisTo90,
    millisToAll,
    removedWithinWait: removed,
    waitedMillis,
    freedBytesPerKey: removed > 0 ? (memoryBeforeExpiry.usedMemory - memoryAfterExpiry.usedMemory) / removed : NaN,
    getsMeanwhile: percentiles(getMicros),
    expiredStalePerc,
    expiredTimeCapReachedCount,
  };
}
