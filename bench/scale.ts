/**
 * npm run bench:scale — the stores at scale (issue 24, target 6): N sessions (default 1 000 000)
 * in SqliteStore (each SQLite library that loads) and in RedisStore; lookup latency p50/p99 at
 * that size (hits and misses), the time to expire a share of them (SqliteStore's sweep; Redis's
 * own expiry), bytes per session on disk and in Redis memory; and MemoryStore's hit rate under
 * its byte cap with a skewed access pattern.
 *
 *   node -r ./test/persist/fixtures/register-ts.js bench/scale.ts [--sessions N] [--lookups N]
 *     [--stores sqlite,redis,memory] [--backends better-sqlite3,node:sqlite] [--other-node PATH]
 *     [--expire-share F] [--caps 0.1,0.25,0.5] [--zipf 0.8,1] [--memory-keys N] [--accesses N]
 *     [--redis-window N] [--redis-expiry-wait S] [--seed N] [--json FILE] [--no-redis]
 *
 * The records are what attachSessionStore writes: one real TLS 1.2 session (a node:tls
 * handshake through attachSessionStore, sealed) copied with a distinct session ID per record and
 * sealed again under its own key (bench/scale/record.ts). Each store is measured in its own
 * worker process (bench/scale/worker.ts); a SQLite library this Node cannot load is measured on
 * `--other-node` when given (node:sqlite needs Node 22.13+). Prints tables, writes JSON. No
 * figure is asserted anywhere: docs/BENCHMARKS.md says how to read them.
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import type { SqliteBackendName } from '../lib/persist/stores/sqlite-backends';
import { SWEEP_BATCH_ROWS } from '../lib/persist/stores/sqlite';
import type { MemoryPhaseResult } from './scale/memory';
import { captureRealRecord, RecordTemplate } from './scale/record';
import type { RedisPhaseResult } from './scale/redis';
import { startBenchRedis } from './redis-server';
import { loadableSqliteBackends, type SqlitePhaseResult } from './scale/sqlite';
import type { Percentiles } from './scale/stats';
import type { WorkerRequest } from './scale/worker';

interface Options {
  sessions: number;
  lookups: number;
  stores: string;
  backends?: string;
  otherNode?: string;
  expireShare: number;
  caps: string;
  zipf: string;
  memoryKeys?: number;
  accesses?: number;
  redisWindow: number;
  redisExpiryWait: number;
  seed: number;
  json?: string;
  redis: boolean;
}

const program = new Command()
  .name('bench:scale')
  .option('--sessions <n>', 'sessions stored in each SqliteStore and in Redis', Number, 1_000_000)
  .option('--lookups <n>', 'timed lookups of stored IDs, and as many of IDs never stored, per store', Number, 20_000)
  .option('--stores <list>', 'which stores: sqlite,redis,memory', 'sqlite,redis,memory')
  .option('--backends <list>', 'SQLite libraries (default: each that loads here or on --other-node)')
  .option(
    '--other-node <path>',
    'another node binary: SQLite libraries this Node cannot load are measured there (node:sqlite: Node 22.13+)',
  )
  .option('--expire-share <f>', 'share of the sessions made to expire (the oldest)', Number, 0.1)
  .option('--caps <list>', 'MemoryStore byte caps, as shares of the working set', '0.1,0.25,0.5')
  .option('--zipf <list>', 'Zipf exponents of the MemoryStore access pattern', '0.8,1')
  .option('--memory-keys <n>', 'MemoryStore key space (default: --sessions)', Number)
  .option('--accesses <n>', 'measured MemoryStore accesses per run, after as many warm-up accesses as keys (default: 2 × keys)', Number)
  .option('--redis-window <n>', 'RedisStore sets in flight while filling', Number, 256)
  .option('--redis-expiry-wait <s>', 'longest wait for Redis to remove the expired keys (0: do not measure expiry)', Number, 60)
  .option('--seed <n>', 'seed of the session IDs and access patterns', Number, 1)
  .option('--json <file>', 'where to write the JSON results (default: a file in the temp directory)')
  .option('--no-redis', 'skip RedisStore')
  .parse();
const options = program.opts<Options>();

function integer(name: string, value: number | undefined, min: number): number {
  if (value === undefined || !Number.isInteger(value) || value < min) throw new RangeError(`--${name} must be an integer >= ${min}`);
  return value;
}
function shares(name: string, list: string): number[] {
  const values = list.split(',').map((v) => Number(v.trim()));
  if (values.length === 0 || values.some((v) => !(v > 0 && v <= 1))) throw new RangeError(`--${name}: shares in (0, 1], comma-separated`);
  return values;
}
const sessions = integer('sessions', options.sessions, 100);
const lookups = integer('lookups', options.lookups, 1);
const stores = new Set(options.stores.split(',').map((s) => s.trim()));
for (const s of stores) if (!['sqlite', 'redis', 'memory'].includes(s)) throw new RangeError(`--stores: unknown store ${s}`);
if (!options.redis) stores.delete('redis');
const expireShare = options.expireShare;
if (!(expireShare > 0 && expireShare < 1)) throw new RangeError('--expire-share must be in (0, 1)');
const caps = shares('caps', options.caps);
const exponents = options.zipf.split(',').map((v) => Number(v.trim()));
if (exponents.some((s) => !(s > 0 && s <= 3))) throw new RangeError('--zipf: exponents in (0, 3], comma-separated');
const memoryKeys = integer('memory-keys', options.memoryKeys ?? sessions, 100);
const accesses = integer('accesses', options.accesses ?? 2 * memoryKeys, 1);
const redisWindow = integer('redis-window', options.redisWindow, 1);
if (!(options.redisExpiryWait >= 0)) throw new RangeError('--redis-expiry-wait must be >= 0 (seconds)');
const seed = integer('seed', options.seed, 0);

const REGISTER_TS = join(__dirname, '..', 'test', 'persist', 'fixtures', 'register-ts.js');
const progress = (message: string): boolean => process.stderr.write(`${message}\n`);

/** Runs one request in a worker process on `execPath`; resolves with its result. */
function inWorker<T>(request: WorkerRequest, execPath = process.execPath): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = fork(join(__dirname, 'scale', 'worker.ts'), [], {
      execPath,
      execArgv: ['-r', REGISTER_TS, '--expose-gc'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let answer: { type: 'result'; result: T } | { type: 'error'; message: string } | undefined;
    child.on('message', (message: typeof answer) => (answer = message));
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (answer?.type === 'result') resolve(answer.result);
      else if (answer?.type === 'error') reject(new Error(`worker (${request.phase}): ${answer.message}`));
      else reject(new Error(`worker (${request.phase}) exited (${signal ?? code}) without an answer`));
    });
    child.send(request);
  });
}

// --- the report ---

const fmt = (n: number, digits = 0): string =>
  Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : '-';
const micros = (p: Percentiles): string => `${fmt(p.p50)} / ${fmt(p.p99)} / ${fmt(p.max)}`;
const mib = (bytes: number): string => `${fmt(bytes / 1024 / 1024, 1)} MiB`;

function table(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row));
}

function report(
  template: RecordTemplate,
  sqlite: SqlitePhaseResult[],
  redis: RedisPhaseResult | undefined,
  memory: MemoryPhaseResult | undefined,
) {
  console.log(
    `\nbench:scale: ${fmt(sessions)} sessions per store; each record ${template.recordBytes} B ` +
      `(a real ${template.protocol} session, DER ${template.derHex.length / 2} B, ${template.cipher}, sealed; key ${template.keyChars} chars; TTL ${template.ttlSeconds} s)\n`,
  );
  const rows: string[][] = [];
  for (const r of sqlite) {
    rows.push([
      `SqliteStore (${r.backend}, Node ${r.node})`,
      fmt(r.sessions),
      `${fmt(r.fill.wallSeconds, 1)} s`,
      fmt(r.fill.setsPerSecond),
      micros(r.lookups.hit),
      micros(r.lookups.miss),
      `${fmt(r.sweep.millis)} ms (${fmt(r.sweep.deleted)} rows)`,
      `${fmt(r.bytesPerSession)} on disk`,
    ]);
  }
  if (redis) {
    rows.push([
      `RedisStore (Redis ${redis.redisVersion})`,
      fmt(redis.sessions),
      `${fmt(redis.fill.wallSeconds, 1)} s`,
      fmt(redis.fill.setsPerSecond),
      micros(redis.lookups.hit),
      micros(redis.lookups.miss),
      redis.expiry === null
        ? 'not measured'
        : redis.expiry.millisToAll !== null
          ? `Redis: all ${fmt(redis.expiry.expired)} in ${fmt(redis.expiry.millisToAll)} ms`
          : `Redis: ${fmt(redis.expiry.removedWithinWait)} of ${fmt(redis.expiry.expired)} in ${fmt(redis.expiry.waitedMillis / 1000)} s`,
      `${fmt(redis.bytesPerSession)} in memory`,
    ]);
  }
  if (rows.length > 0) {
    table(['store', 'sessions', 'fill', 'writes/s', 'hit µs p50 / p99 / max', 'miss µs p50 / p99 / max', 'expiry', 'bytes/session'], rows);
  }
  for (const r of sqlite) {
    console.log(
      `\nSqliteStore (${r.backend}): fill through store.set, ${fmt(r.fill.setMeanMicrosFirstTenth)} µs per set in the first tenth, ` +
        `${fmt(r.fill.setMeanMicrosLastTenth)} µs in the last (p99 ${fmt(r.fill.setMicros.p99)} µs, max ${fmt(r.fill.setMicros.max / 1000)} ms); ` +
        `file ${mib(r.filesAfterCheckpoint.db)} + WAL ${mib(r.filesAfterCheckpoint.wal)} after a TRUNCATE checkpoint ` +
        `(WAL ${mib(r.filesAfterFill.wal)} before), ${fmt(r.layout.keyAndValueBytes / r.layout.rows)} B of key + value per row; ` +
        `b-trees: ${Object.entries(r.layout.btrees)
          .map(([name, b]) => `${name} ${mib(b.bytes)}`)
          .join(', ')}.`,
    );
    console.log(
      `  reopened in ${fmt(r.reopenMillis, 1)} ms; lookups (${r.lookups.path}): ${r.lookups.hitsNotFound} hits not found, ${r.lookups.missesFound} misses found, ` +
        `${r.lookups.errors} errors, ${r.lookups.verified} fetched records verified. ` +
        `sweep(): ${fmt(r.sweep.deleted)} of ${fmt(r.sweep.expired)} expired rows in ${fmt(r.sweep.millis)} ms ` +
        `(${fmt(r.sweep.cpuMillis)} ms CPU, in batches of ${SWEEP_BATCH_ROWS} rows, one per event-loop turn; the loop held at most ` +
        `${fmt(r.sweep.longestBlockMillis, 1)} ms at a time), an empty sweep ${fmt(r.sweep.emptySweepMillis, 2)} ms; ` +
        `WAL after the sweep ${mib(r.sweep.filesAfterSweep.wal)}, file unchanged at ${mib(r.sweep.filesAfterSweepCheckpoint.db)} ` +
        `(${fmt(r.sweep.freelistPagesAfterSweep)} free pages).`,
    );
  }
  if (redis) {
    const e = redis.expiry;
    console.log(
      `\nRedisStore: used_memory +${mib(redis.memoryAfter.usedMemory - redis.memoryBefore.usedMemory)} for ${fmt(redis.keys)} keys ` +
        `(${fmt(redis.bytesPerSession)} B/session; RSS ${fmt(redis.rssBytesPerSession)} B/session); MEMORY USAGE of a key ` +
        `${fmt(redis.memoryUsage.median)} B (median of ${redis.memoryUsage.sampled}; value encoding ${redis.valueEncoding}); ` +
        `RDB ${mib(redis.rdb.bytes)} (${fmt(redis.rdb.bytesPerSession)} B/session; SAVE ${fmt(redis.rdb.saveMillis)} ms).`,
    );
    console.log(
      `  lookups (${redis.lookups.path}): ${redis.lookups.hitsNotFound} hits not found, ${redis.lookups.missesFound} misses found, ${redis.lookups.errors} errors, ` +
        `${redis.lookups.verified} fetched records verified; GET inside Redis ${fmt(redis.serverGet.usecPerCall, 1)} µs per call ` +
        `(p50 ${fmt(redis.serverGet.p50 ?? NaN, 1)}, p99 ${fmt(redis.serverGet.p99 ?? NaN, 1)} µs; the rest is the round trip, ioredis and scheduling).`,
    );
    if (e) {
      console.log(
        `  Expiry (hz ${e.hz}): ${fmt(e.expired)} keys due at one instant; Redis removed ` +
          `50% in ${e.millisToHalf === null ? '-' : `${fmt(e.millisToHalf)} ms`}, 90% in ${e.millisTo90 === null ? '-' : `${fmt(e.millisTo90)} ms`}, ` +
          `all in ${e.millisToAll === null ? `- (${fmt(e.removedWithinWait)} within ${fmt(e.waitedMillis / 1000)} s)` : `${fmt(e.millisToAll)} ms`}; ` +
          `${fmt(e.removedWithinWait / (e.waitedMillis / 1000))} keys/s; expired_stale_perc ${e.expiredStalePerc ?? '-'}; ` +
          `${fmt(e.freedBytesPerKey)} B of used_memory freed per key; gets meanwhile µs p50 / p99 / max ${micros(e.getsMeanwhile)}.`,
      );
    }
  }
  if (memory) {
    console.log(
      `\nMemoryStore hit rate: ${fmt(memory.keys)} keys of ${memory.entryBytes} B (key + value, as the store accounts them), ` +
        `working set ${mib(memory.workingSetBytes)}; Zipf access, ${fmt(memory.warmupAccesses)} warm-up + ${fmt(memory.measuredAccesses)} measured accesses; ` +
        `a miss stores the session.\n`,
    );
    table(
      ['zipf s', 'cap', 'maxBytes', 'entries held', 'LRU hit rate', 'top-k hit rate', 'process B/entry'],
      memory.runs.map((r) => [
        String(r.zipf),
        `${fmt(r.cap * 100)}%`,
        mib(r.maxBytes),
        fmt(r.entries),
        `${fmt(r.hitRate * 100, 1)}%`,
        `${fmt(r.topKHitRate * 100, 1)}%`,
        // Heap and buffers move by about a megabyte on their own: a few thousand entries are within that.
        r.entries >= 10_000 ? fmt(r.processBytesPerEntry) : '(too few)',
      ]),
    );
  }
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const loadBefore = loadavg();
  progress(
    `bench:scale: ${sessions} sessions, stores ${[...stores].join(',')}, Node ${process.version}, ${cpus().length} CPUs; ` +
      `load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')}`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'tls-session-scale-'));
  const skipped: string[] = [];
  const sqlite: SqlitePhaseResult[] = [];
  let redis: RedisPhaseResult | undefined;
  let memory: MemoryPhaseResult | undefined;
  let template: RecordTemplate;
  try {
    template = await captureRealRecord(randomBytes(32));
    progress(
      `record: ${template.recordBytes} B sealed (${template.protocol} session DER ${template.derHex.length / 2} B), key ${template.keyChars} chars`,
    );

    if (stores.has('sqlite')) {
      const plan: Array<{ backend: SqliteBackendName; execPath: string; node: string }> = loadableSqliteBackends().map((backend) => ({
        backend,
        execPath: process.execPath,
        node: process.version,
      }));
      if (options.otherNode) {
        const other = await inWorker<{ node: string; backends: SqliteBackendName[] }>({ phase: 'probe' }, options.otherNode);
        for (const backend of other.backends) {
          if (!plan.some((p) => p.backend === backend)) plan.push({ backend, execPath: options.otherNode, node: other.node });
        }
      }
      const wanted = options.backends?.split(',').map((b) => b.trim());
      for (const name of ['better-sqlite3', 'node:sqlite'] as const) {
        if (!plan.some((p) => p.backend === name))
          skipped.push(`SqliteStore (${name}): does not load in Node ${process.version}${options.otherNode ? ' nor on --other-node' : ''}`);
      }
      for (const { backend, execPath, node } of plan) {
        if (wanted && !wanted.includes(backend)) continue;
        progress(`SqliteStore (${backend}, Node ${node}): filling ${sessions} sessions`);
        sqlite.push(
          await inWorker<SqlitePhaseResult>({ phase: 'sqlite', backend, sessions, lookups, expireShare, seed, template, dir }, execPath),
        );
        rmSync(join(dir, `scale-${backend.replace(/[^a-z0-9]/gi, '-')}.db`), { force: true });
      }
    }

    if (stores.has('redis')) {
      const server = await startBenchRedis(dir);
      if (!server) skipped.push('RedisStore: redis-server is not installed (PATH)');
      else {
        try {
          progress(`RedisStore (Redis ${server.version}): filling ${sessions} sessions`);
          redis = await inWorker<RedisPhaseResult>({
            phase: 'redis',
            url: server.url,
            sessions,
            lookups,
            expireShare,
            expiryWaitSeconds: options.redisExpiryWait,
            window: redisWindow,
            seed,
            template,
            rdbPath: server.rdbPath,
          });
        } finally {
          await server.stop();
        }
      }
    }

    if (stores.has('memory')) {
      progress(`MemoryStore: hit rate over ${memoryKeys} keys`);
      memory = await inWorker<MemoryPhaseResult>({
        phase: 'memory',
        keys: memoryKeys,
        caps,
        exponents,
        warmupAccesses: memoryKeys,
        measuredAccesses: accesses,
        seed,
        template,
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const loadAfter = loadavg();
  const seconds = (Date.now() - startedAt.getTime()) / 1000;

  report(template, sqlite, redis, memory);
  for (const reason of skipped) console.log(`\nskipped: ${reason}`);

  // The secret and the DER stay out of the JSON (throwaway, but key material all the same).
  const { secretHex: _secret, derHex, ...record } = template;
  const json = {
    benchmark: 'scale',
    startedAt: startedAt.toISOString(),
    seconds,
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    loadAverage: { before: loadBefore, after: loadAfter },
    options: {
      sessions,
      lookups,
      stores: [...stores],
      expireShare,
      caps,
      exponents,
      memoryKeys,
      accesses,
      redisWindow,
      redisExpiryWait: options.redisExpiryWait,
      seed,
      otherNode: options.otherNode,
    },
    record: { ...record, derBytes: derHex.length / 2 },
    sqlite,
    redis: redis ?? null,
    memory: memory ?? null,
    skipped,
  };
  const file = options.json ?? join(tmpdir(), `tls-session-bench-scale-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(json, null, 2));
  console.log(
    `\n${fmt(seconds, 0)} s; load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadAfter.map((l) => l.toFixed(2)).join(' ')}`,
  );
  console.log(`JSON: ${file}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
