/**
 * SqliteStore at scale, one SQLite library per worker process: fill N sessions through the
 * store's public API (`set`, one call per session, as attachSessionStore's write-behind makes
 * them), measure the file, reopen it as a restarted server would, time lookups, then expire the
 * oldest share of the rows by moving the store's injected clock (`now`) and time `sweep()`.
 *
 * The clock: record i is written at t0 + i ms (1 000 new sessions a second) with the TTL
 * attachSessionStore gave the real session, so expires_at grows with i as in a live server; the
 * sweep's clock is set so that exactly the first `expireCount` records have expired.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { SqliteStore } from '../../lib/persist';
import { loadSqliteBackend, SqliteBackendName } from '../../lib/persist/stores/sqlite-backends';
import { measureLookups, LookupResult } from './lookups';
import { RecordFactory, RecordTemplate } from './record';
import { percentiles, Percentiles } from './stats';

export interface SqlitePhaseRequest {
  phase: 'sqlite';
  backend: SqliteBackendName;
  sessions: number;
  lookups: number;
  expireShare: number;
  seed: number;
  template: RecordTemplate;
  dir: string;
}

export interface SqliteFiles {
  /** Bytes of the database file, its -wal and -shm, as they are at that moment. */
  db: number;
  wal: number;
  shm: number;
}

export interface SqliteLayout {
  pageSize: number;
  pageCount: number;
  freelistCount: number;
  /** Bytes of pages per b-tree (the table, its expires_at index), from SQLite's dbstat. */
  btrees: Record<string, { pages: number; bytes: number; payload: number }>;
  /** Rows left and the bytes of their keys and values (what the store holds, without SQLite's own bookkeeping). */
  rows: number;
  keyAndValueBytes: number;
}

export interface SqlitePhaseResult {
  store: 'sqlite';
  backend: SqliteBackendName;
  node: string;
  sessions: number;
  fill: {
    method: string;
    wallSeconds: number;
    /** Time inside store.set alone (record making excluded). */
    setSeconds: number;
    setsPerSecond: number;
    /** µs per set over the whole fill, and the mean of the first and last tenth (how a write's cost grows with the table). */
    setMicros: Percentiles;
    setMeanMicrosFirstTenth: number;
    setMeanMicrosLastTenth: number;
    storeStats: Record<string, unknown>;
  };
  /** After the fill, the store still open (WAL as SQLite left it), then after a TRUNCATE checkpoint. */
  filesAfterFill: SqliteFiles;
  filesAfterCheckpoint: SqliteFiles;
  bytesPerSession: number;
  layout: SqliteLayout;
  /** A new SqliteStore on the filled file (what a restarted server pays): constructor time. */
  reopenMillis: number;
  lookups: LookupResult;
  sweep: {
    expired: number;
    deleted: number;
    millis: number;
    cpuMillis: number;
    /**
     * The longest the event loop was held during the sweep (perf_hooks monitorEventLoopDelay max,
     * 1 ms resolution): the sweep deletes in batches, one per turn, so this is about one batch.
     */
    longestBlockMillis: number;
    /** A second sweep right after (nothing left to delete): the timer's usual cost. */
    emptySweepMillis: number;
    /** The sweep's DELETE is one transaction: every page it touched is in the WAL until a checkpoint. */
    filesAfterSweep: SqliteFiles;
    filesAfterSweepCheckpoint: SqliteFiles;
    freelistPagesAfterSweep: number;
  };
}

/** The SQLite libraries that load in this process's Node. */
export function loadableSqliteBackends(): SqliteBackendName[] {
  const names: SqliteBackendName[] = ['better-sqlite3', 'node:sqlite'];
  return names.filter((name) => {
    try {
      loadSqliteBackend(name);
      return true;
    } catch {
      return false;
    }
  });
}

function files(path: string): SqliteFiles {
  const size = (p: string): number => statSync(p, { throwIfNoEntry: false })?.size ?? 0;
  return { db: size(path), wal: size(`${path}-wal`), shm: size(`${path}-shm`) };
}

const progress = (message: string): boolean => process.stderr.write(`  ${message}\n`);

export async function runSqlitePhase(request: SqlitePhaseRequest): Promise<SqlitePhaseResult> {
  const { backend, sessions, template } = request;
  const factory = new RecordFactory(template, `seed-${request.seed}`);
  const path = join(request.dir, `scale-${backend.replace(/[^a-z0-9]/gi, '-')}.db`);
  const t0 = Date.now();
  let clock = t0;
  const now = (): number => clock;
  const ttl = template.ttlSeconds;
  const expireCount = Math.round(sessions * request.expireShare);

  // --- fill, through the public API ---
  const fillStore = new SqliteStore({ path, backend, sweepIntervalMs: 0, now });
  const setMicros = new Float64Array(sessions);
  const fillStarted = performance.now();
  let setMillis = 0;
  const step = Math.max(1, Math.floor(sessions / 10));
  for (let i = 0; i < sessions; i++) {
    const id = factory.id(i);
    const key = factory.key(i, id);
    const record = factory.record(i, id, key);
    clock = t0 + i;
    const started = performance.now();
    await fillStore.set(key, record, ttl);
    const took = performance.now() - started;
    setMillis += took;
    setMicros[i] = took * 1000;
    if ((i + 1) % step === 0) progress(`${backend}: ${i + 1} sessions stored (${((performance.now() - fillStarted) / 1000).toFixed(1)} s)`);
  }
  const fillWallSeconds = (performance.now() - fillStarted) / 1000;
  const tenth = Math.max(1, Math.floor(sessions / 10));
  const mean = (from: number, to: number): number => {
    let sum = 0;
    for (let i = from; i < to; i++) sum += setMicros[i]!;
    return sum / (to - from);
  };
  const fill = {
    method: 'SqliteStore#set, one call per session, awaited one at a time (as write-behind issues them)',
    wallSeconds: fillWallSeconds,
    setSeconds: setMillis / 1000,
    setsPerSecond: sessions / (setMillis / 1000),
    setMicros: percentiles(setMicros),
    setMeanMicrosFirstTenth: mean(0, tenth),
    setMeanMicrosLastTenth: mean(sessions - tenth, sessions),
    storeStats: { ...fillStore.stats() },
  };
  const filesAfterFill = files(path);

  // --- bytes on disk: a second connection of the same library checkpoints (TRUNCATE) and reads the layout ---
  const sqlite = loadSqliteBackend(backend);
  const checkpointAndInspect = (): { layout: SqliteLayout; after: SqliteFiles } => {
    const db = sqlite.open(path, { busyTimeoutMs: 5000, fileMustExist: true });
    try {
      db.prepare('PRAGMA wal_checkpoint(TRUNCATE)').get();
      const btrees: SqliteLayout['btrees'] = {};
      for (const row of db
        .prepare('SELECT name, count(*) AS pages, sum(pgsize) AS bytes, sum(payload) AS payload FROM dbstat GROUP BY name')
        .all()) {
        btrees[String(row.name)] = { pages: Number(row.pages), bytes: Number(row.bytes), payload: Number(row.payload) };
      }
      const totals = db.prepare('SELECT count(*) AS n, coalesce(sum(length(key) + length(value)), 0) AS bytes FROM tls_sessions').get()!;
      return {
        layout: {
          pageSize: Number(db.pragma('page_size')),
          pageCount: Number(db.pragma('page_count')),
          freelistCount: Number(db.pragma('freelist_count')),
          btrees,
          rows: Number(totals.n),
          keyAndValueBytes: Number(totals.bytes),
        },
        after: files(path),
      };
    } finally {
      db.close();
    }
  };
  const { layout, after: filesAfterCheckpoint } = checkpointAndInspect();
  await fillStore.close();

  // --- a restarted server: a new store on the full file, lookups ---
  const reopenStarted = performance.now();
  const store = new SqliteStore({ path, backend, sweepIntervalMs: 0, now });
  const reopenMillis = performance.now() - reopenStarted;
  clock = t0 + sessions;
  progress(`${backend}: ${request.lookups} hit and ${request.lookups} miss lookups`);
  const lookups = await measureLookups(store, factory, {
    lookups: request.lookups,
    hitFrom: 0,
    hitTo: sessions,
    missFrom: sessions,
    seed: request.seed + 1,
  });

  // --- the oldest expireCount records expire: move the clock, sweep ---
  clock = t0 + ttl * 1000 + expireCount - 1;
  progress(`${backend}: sweep of ${expireCount} expired sessions`);
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const cpuBefore = process.cpuUsage();
  const sweepStarted = performance.now();
  const deleted = await store.sweep();
  const sweepMillis = performance.now() - sweepStarted;
  const cpu = process.cpuUsage(cpuBefore);
  delay.disable();
  const longestBlockMillis = delay.max / 1e6;
  const emptyStarted = performance.now();
  await store.sweep();
  const emptySweepMillis = performance.now() - emptyStarted;
  const filesAfterSweep = files(path);
  const afterSweep = checkpointAndInspect();
  await store.close();
  return {
    store: 'sqlite',
    backend,
    node: process.version,
    sessions,
    fill,
    filesAfterFill,
    filesAfterCheckpoint,
    bytesPerSession: (filesAfterCheckpoint.db + filesAfterCheckpoint.wal) / sessions,
    layout,
    reopenMillis,
    lookups,
    sweep: {
      expired: expireCount,
      deleted,
      millis: sweepMillis,
      cpuMillis: (cpu.user + cpu.system) / 1000,
      longestBlockMillis,
      emptySweepMillis,
      filesAfterSweep,
      filesAfterSweepCheckpoint: afterSweep.after,
      freelistPagesAfterSweep: afterSweep.layout.freelistCount,
    },
  };
}
