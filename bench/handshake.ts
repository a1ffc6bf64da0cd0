/**
 * npm run bench:handshake — what resumption buys, measured: full vs resumed handshakes, through
 * a bare Map and through each store (with and without sealing), TLS 1.2 session IDs and TLS 1.3
 * tickets, RSA-2048 and P-256, one process and a Node cluster of 2 workers.
 *
 * Server and load generators run in separate processes (the generators' CPU is measured too, so
 * a generator-bound figure shows). Every configuration of a key type runs in alternating short
 * trials; each figure is a median with its range, and each ratio is the median of the per-trial
 * ratios against a reference measured in the same trial round. Prints a table and writes JSON.
 *
 *   node -r ./test/persist/fixtures/register-ts.js bench/handshake.ts [--quick] [--keys rsa2048,p256]
 *     [--configs <substring>,...] [--seconds S] [--trials N] [--connections N] [--generators N]
 *     [--json FILE] [--no-redis] [--no-nginx]
 *   ... bench/handshake.ts --metrics-cost [--keys p256] [--cycles N] [--slice-ms MS]
 *   ... bench/handshake.ts --store-cost [--keys p256] [--configs …] [--cycles N] [--slice-ms MS] [--no-redis]
 *
 * --metrics-cost measures instead what tls-session's events and the Prometheus collector cost per
 * resumed handshake: one server process per configuration, its metrics state switched in short
 * interleaved slices under steady load (bench/handshake/toggle.ts, metrics-cost.ts). --store-cost
 * measures the same way attachSessionStore against the bare Map listener (store-toggle.ts,
 * store-cost.ts).
 *
 * docs/BENCHMARKS.md explains how to read the figures.
 */
import { ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { devCertificate, DevKeyType } from '../examples/dev-cert';
import { BenchConfig, CONFIGS, KEY_TYPES, TARGETS } from './handshake/configs';
import { freePort, startBenchRedis } from './redis-server';
import type { RunRequest, RunResult } from './handshake/load';
import type { PathRow } from './handshake/path';
import type { ServerSpec } from './handshake/server';
import { findNginx, reportNginxAnchor, startNginx, type CpuSource, type NginxAnchorRecord, type NginxInfo } from './handshake/nginx';
import { reportMetricsCost, summarize, type MetricsCostResult } from './handshake/metrics-cost';
import type { ReplayPath, ToggleState, UnsubscribedPath } from './handshake/toggle';
import {
  summarizeStates,
  verdictOf,
  type Slice as GenericSlice,
  type SlicesRequest,
  type SlicesResult as GenericSlicesResult,
} from './handshake/slices';
import type { StoreToggleState } from './handshake/store-toggle';
import { reportStoreCost, STORE_COST_TARGETS, type StoreCostResult } from './handshake/store-cost';

interface Options {
  quick: boolean;
  keys: string;
  configs?: string;
  seconds: number;
  trials?: number;
  connections: number;
  generators: number;
  json?: string;
  redis: boolean;
  nginx: boolean;
  profile?: string;
  path: boolean;
  metricsCost: boolean;
  storeCost: boolean;
  sliceMs: number;
  cycles: number;
}

const program = new Command()
  .name('bench:handshake')
  .option('--quick', 'a ~1-minute run: fewer configurations, 1-second trials', false)
  .option('--keys <list>', 'certificate key types: rsa2048,p256', KEY_TYPES.join(','))
  .option('--configs <list>', 'only configurations whose id contains one of these (comma-separated); references are added')
  .option('--seconds <s>', 'length of one trial', Number, 1.2)
  .option('--trials <n>', 'alternating trials per configuration (default 5; --quick: 3)', Number)
  .option('--connections <n>', 'concurrent connections per generator process', Number, 8)
  .option('--generators <n>', 'load-generator processes', Number, 2)
  .option('--json <file>', 'where to write the JSON results (default: a file in the temp directory)')
  .option('--no-redis', 'skip the RedisStore configurations')
  .option('--no-nginx', 'skip the nginx configurations (the external anchor; skipped anyway when nginx is not installed)')
  .option('--no-path', 'skip the in-process measurement of the store path alone')
  .option('--profile <dir>', 'run the server processes with --cpu-prof, writing .cpuprofile files into <dir>')
  .option(
    '--metrics-cost',
    'instead of the matrix: server CPU per resumed handshake with metrics off / a do-nothing subscriber / the Prometheus collector, ' +
      'in one server process switched in interleaved slices (TLS 1.2 attachSessionStore, TLS 1.3 TicketKeyRing)',
    false,
  )
  .option(
    '--store-cost',
    'instead of the matrix: server CPU per handshake through attachSessionStore vs the bare Map listener (issue 24 targets 2 and 3), ' +
      'in one server process switched in interleaved slices, with an A/A control',
    false,
  )
  .option('--slice-ms <ms>', '--metrics-cost, --store-cost: length of one measured slice', Number, 100)
  .option('--cycles <n>', '--metrics-cost, --store-cost: measured cycles (each runs every state once, shuffled)', Number, 100)
  .parse();
const options = program.opts<Options>();
if (options.quick) options.seconds = Math.min(options.seconds, 1);
const trialCount = options.trials ?? (options.quick ? 3 : 5);
if (!Number.isInteger(trialCount) || trialCount < 1) throw new RangeError('--trials must be an integer >= 1');

if (options.metricsCost || options.storeCost) {
  if (options.metricsCost && options.storeCost) throw new Error('--metrics-cost and --store-cost: one at a time');
  if (!Number.isInteger(options.cycles) || options.cycles < 3) throw new RangeError('--cycles must be an integer >= 3');
  if (!(options.sliceMs >= 20)) throw new RangeError('--slice-ms must be >= 20');
}

const here = __dirname;
const SERVER_START_BATCH = 3;
const execArgv = ['-r', join(here, '..', 'test', 'persist', 'fixtures', 'register-ts.js')];

// --- which configurations ---

function selectConfigs(redisAvailable: boolean, nginxAvailable: boolean): BenchConfig[] {
  let chosen = CONFIGS.filter((c) => (options.quick ? c.quick : true));
  if (options.configs) {
    const wanted = options.configs.split(',').map((s) => s.trim());
    chosen = CONFIGS.filter((c) => wanted.some((w) => c.id.includes(w)));
  }
  if (!redisAvailable) chosen = chosen.filter((c) => c.store !== 'redis');
  if (!nginxAvailable) chosen = chosen.filter((c) => c.server !== 'nginx');
  // References travel with what refers to them.
  const ids = new Set(chosen.map((c) => c.id));
  for (;;) {
    const missing = chosen.flatMap((c) => [c.cpuReference, c.throughputReference]).filter((id): id is string => !!id && !ids.has(id));
    if (missing.length === 0) break;
    for (const id of missing) ids.add(id);
    chosen = CONFIGS.filter((c) => ids.has(c.id));
  }
  return chosen;
}

// --- processes ---

/** A child process spoken to by request/response messages of one type at a time. */
class Peer {
  readonly child: ChildProcess;
  constructor(child: ChildProcess) {
    this.child = child;
  }
  next<T>(type: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const onMessage = (message: { type?: string; message?: string }): void => {
        if (message?.type === type) {
          cleanup();
          resolve(message as T);
        } else if (message?.type === 'error') {
          cleanup();
          reject(new Error(message.message));
        }
      };
      const onExit = (code: number | null): void => {
        cleanup();
        reject(new Error(`process exited (${code}) while waiting for '${type}'`));
      };
      const cleanup = (): void => {
        this.child.off('message', onMessage);
        this.child.off('exit', onExit);
      };
      this.child.on('message', onMessage);
      this.child.on('exit', onExit);
    });
  }
  ask<T>(message: { type: string }, replyType = message.type): Promise<T> {
    const reply = this.next<T>(replyType);
    this.child.send(message);
    return reply;
  }
  /** Disconnects (the child exits by itself, writing a CPU profile if asked); killed if still there 2 s later. */
  stop(): void {
    if (this.child.connected) this.child.disconnect();
    setTimeout(() => {
      if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill();
    }, 2000).unref();
  }
}

interface RunningServer {
  config: BenchConfig;
  port: number;
  /** CPU the server used so far, µs (Node: the process, primary + workers; nginx: its worker). */
  cpuMicros(): Promise<number>;
  stop(): void | Promise<void>;
}

async function startServer(spec: ServerSpec, secretHex: string): Promise<RunningServer & { peer: Peer }> {
  const child = fork(join(here, 'handshake', 'server.ts'), [], {
    execArgv: options.profile ? [...execArgv, '--cpu-prof', `--cpu-prof-dir=${options.profile}`] : execArgv,
    env: { ...process.env, BENCH_SERVER: JSON.stringify(spec), BENCH_SECRET: secretHex },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const peer = new Peer(child);
  const { port } = await peer.next<{ port: number }>('ready');
  return {
    config: spec.config,
    peer,
    port,
    cpuMicros: async () => (await peer.ask<{ micros: number }>({ type: 'cpu' })).micros,
    stop: () => peer.stop(),
  };
}

// --- statistics ---

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

interface Trial {
  round: number;
  handshakesPerSecond: number;
  resumedShare: number;
  serverCpuMicrosPerHandshake: number;
  /** Busiest generator's CPU as a share of one core. */
  generatorCpuShare: number;
  errors: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
}

interface Summary {
  key: DevKeyType;
  id: string;
  trials: Trial[];
  handshakesPerSecond: { median: number; min: number; max: number };
  serverCpuMicrosPerHandshake: { median: number; min: number; max: number };
  resumedShare: number;
  generatorCpuShareMax: number;
  latencyP99Ms: number;
  /** Median of per-round ratios to the throughput reference (the group's full handshake). */
  throughputVsFull?: { median: number; min: number; max: number; reference: string };
  /** Median of per-round ratios of server CPU per handshake to the CPU reference. */
  cpuVsReference?: { median: number; min: number; max: number; reference: string };
}

const spread = (values: number[]) => ({ median: median(values), min: Math.min(...values), max: Math.max(...values) });

function pairedRatio<T extends { round: number }>(trials: T[], reference: T[], pick: (t: T) => number) {
  const ratios = trials.flatMap((t) => {
    const ref = reference.find((r) => r.round === t.round);
    return ref && pick(ref) > 0 ? [pick(t) / pick(ref)] : [];
  });
  return ratios.length ? spread(ratios) : undefined;
}

// --- running ---

// --- --metrics-cost ---

/** The resumed paths the collector observes, one per mechanism: TLS 1.2 session IDs, TLS 1.3 tickets. */
const METRICS_COST_CONFIGS = ['tls12 resumed memory+seal', 'tls13 resumed TicketKeyRing'];
/** Slices run and thrown away first (JIT of both paths, the collector's first series). */
const METRICS_COST_WARMUP_CYCLES = 3;
/** Gap after each switch, outside the measured slice (in-flight handshakes, the switch's garbage). */
const METRICS_COST_GAP_MS = 15;

/** The key types --keys names, checked. */
function keyTypes(): DevKeyType[] {
  const keys = options.keys.split(',').map((k) => k.trim()) as DevKeyType[];
  for (const key of keys) if (!KEY_TYPES.includes(key)) throw new Error(`--keys: unknown key type ${key}`);
  return keys;
}

interface SlicedRun<S extends string> {
  slices: Array<GenericSlice<S>>;
  generatorCpuShareMax: number;
  clientResumedShare: number;
  errors: number;
  /** The server, still running: for questions after the slices (then stopped by the caller's return). */
  server: RunningServer & { peer: Peer };
}

/**
 * One sliced measurement (--metrics-cost, --store-cost): starts the server with `spec`, loads it
 * with the generators, asks it for the slices, stops the load; `after` may ask the server more
 * before it is stopped.
 */
async function slicedRun<S extends string, R>(
  generators: Peer[],
  spec: ServerSpec,
  secretHex: string,
  request: SlicesRequest,
  estimatedSeconds: number,
  after: (run: SlicedRun<S>) => Promise<R>,
): Promise<R> {
  const server = await startServer(spec, secretHex);
  try {
    const load: RunRequest = {
      type: 'run',
      port: server.port,
      protocol: spec.config.protocol,
      resume: spec.config.resume,
      connections: options.connections,
      // Stopped when the slices are done; this is only a ceiling.
      durationMs: Math.round(estimatedSeconds * 3000) + 60_000,
      caFile: spec.certFile,
    };
    const running = Promise.all(generators.map((g) => g.ask<RunResult>(load, 'result')));
    await new Promise((resolve) => setTimeout(resolve, 500)); // connections up and resuming
    const { slices } = await server.peer.ask<GenericSlicesResult<S>>(request);
    for (const g of generators) g.child.send({ type: 'stop' });
    const results = await running;
    const handshakes = results.reduce((a, r) => a + r.handshakes, 0);
    return await after({
      slices,
      generatorCpuShareMax: Math.max(...results.map((r) => r.cpuMicros / 1000 / r.wallMs)),
      clientResumedShare: handshakes ? results.reduce((a, r) => a + r.resumed, 0) / handshakes : 0,
      errors: results.reduce((a, r) => a + r.errors, 0),
      server,
    });
  } finally {
    server.peer.stop();
  }
}

function startGenerators(): Peer[] {
  return Array.from(
    { length: options.generators },
    () => new Peer(fork(join(here, 'handshake', 'load.ts'), [], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })),
  );
}

async function metricsCost(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tls-session-bench-'));
  const secretHex = randomBytes(32).toString('hex');
  const keys = keyTypes();
  const wanted = options.configs?.split(',').map((w) => w.trim());
  const configs = METRICS_COST_CONFIGS.filter((id) => !wanted || wanted.some((w) => id.includes(w))).map((id) =>
    CONFIGS.find((c) => c.id === id)!,
  );
  if (configs.length === 0) throw new Error(`--configs: --metrics-cost measures ${METRICS_COST_CONFIGS.join(' and ')}`);
  const generators = startGenerators();
  const loadBefore = loadavg();
  const startedAt = new Date();
  const slicesPerCycle = 4;
  const seconds = ((METRICS_COST_WARMUP_CYCLES + options.cycles) * slicesPerCycle * (options.sliceMs + METRICS_COST_GAP_MS)) / 1000;
  process.stderr.write(
    `bench:handshake --metrics-cost: ${configs.length} configurations × ${keys.length} key types, ${options.cycles} cycles × ` +
      `${slicesPerCycle} slices of ${options.sliceMs} ms (~${Math.round(seconds)} s each), ${options.generators} generators × ` +
      `${options.connections} connections; load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')}\n`,
  );
  const results: MetricsCostResult[] = [];
  try {
    for (const key of keys) {
      const { keyFile, certFile } = certificateFiles(dir, key);
      for (const [index, config] of configs.entries()) {
        process.stderr.write(`[${key}] ${config.id}: slicing...\n`);
        const spec: ServerSpec = {
          config: { ...config, metrics: undefined },
          keyFile,
          certFile,
          sqlitePath: join(dir, `${key}-mc-${index}.db`),
          redisPrefix: `bench:${key}:mc:${index}:`,
          toggle: true,
        };
        const request: SlicesRequest = {
          type: 'slices',
          sliceMs: options.sliceMs,
          gapMs: METRICS_COST_GAP_MS,
          cycles: options.cycles,
          warmupCycles: METRICS_COST_WARMUP_CYCLES,
          seed: 0x5eed + index,
        };
        await slicedRun<ToggleState, void>(generators, spec, secretHex, request, seconds, async (run) => {
          const unsubscribed = await run.server.peer.ask<UnsubscribedPath>({ type: 'unsubscribed' });
          const replay = await run.server.peer.ask<ReplayPath>({ type: 'replay' });
          const result = summarize(run.slices, unsubscribed, replay, {
            key,
            id: config.id,
            sliceMs: options.sliceMs,
            cycles: options.cycles,
            generatorCpuShareMax: run.generatorCpuShareMax,
            clientResumedShare: run.clientResumedShare,
            errors: run.errors,
          });
          results.push(Object.assign(result, { slices: run.slices }));
        });
      }
    }
  } finally {
    for (const generator of generators) generator.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const loadAfter = loadavg();
  reportMetricsCost(results);
  writeRunRecord('metrics-cost', startedAt, loadBefore, loadAfter, {
    warmupCycles: METRICS_COST_WARMUP_CYCLES,
    gapMs: METRICS_COST_GAP_MS,
    results,
  });
}

// --- --store-cost ---

/**
 * Gap after each switch: a resumed configuration's connections need one full handshake each to
 * get a session of the new state (16 connections at ~1,000/s), a full one only settles.
 */
const storeCostGapMs = (config: BenchConfig): number => (config.resume ? 60 : 15);

async function storeCost(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tls-session-bench-'));
  const secretHex = randomBytes(32).toString('hex');
  const keys = keyTypes();
  const wanted = options.configs?.split(',').map((w) => w.trim());
  let targets = STORE_COST_TARGETS.filter((t) => !wanted || wanted.some((w) => t.config.includes(w)));
  const redis = targets.some((t) => t.config.includes('redis')) && options.redis ? await startBenchRedis(dir) : undefined;
  if (!redis) targets = targets.filter((t) => !t.config.includes('redis'));
  if (targets.length === 0) throw new Error(`--configs: --store-cost measures ${STORE_COST_TARGETS.map((t) => t.config).join(', ')}`);
  const generators = startGenerators();
  const loadBefore = loadavg();
  const startedAt = new Date();
  process.stderr.write(
    `bench:handshake --store-cost: ${targets.length} configurations × ${keys.length} key types, ${options.cycles} cycles × ` +
      `3 slices of ${options.sliceMs} ms, ${options.generators} generators × ${options.connections} connections; ` +
      `load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')}${redis ? `; Redis ${redis.version}` : ''}\n`,
  );
  const results: StoreCostResult[] = [];
  try {
    for (const key of keys) {
      const { keyFile, certFile } = certificateFiles(dir, key);
      for (const [index, target] of targets.entries()) {
        const config = CONFIGS.find((c) => c.id === target.config)!;
        process.stderr.write(`[${key}] ${config.id}: slicing...\n`);
        const gapMs = storeCostGapMs(config);
        const spec: ServerSpec = {
          config,
          keyFile,
          certFile,
          sqlitePath: join(dir, `${key}-sc-${index}.db`),
          redisUrl: redis?.url,
          redisPrefix: `bench:${key}:sc:${index}:`,
          storeToggle: true,
        };
        const request: SlicesRequest = {
          type: 'slices',
          sliceMs: options.sliceMs,
          gapMs,
          cycles: options.cycles,
          warmupCycles: 3,
          seed: 0x5c0 + index,
        };
        const seconds = ((3 + options.cycles) * 3 * (options.sliceMs + gapMs)) / 1000;
        await slicedRun<StoreToggleState, void>(generators, spec, secretHex, request, seconds, async (run) => {
          const { states, dropped } = summarizeStates(run.slices, 'map');
          results.push({
            key,
            id: config.id,
            target,
            sliceMs: options.sliceMs,
            gapMs,
            cycles: options.cycles,
            droppedSlices: dropped,
            states,
            verdict: verdictOf(states.find((s) => s.state === 'store')?.vsReference, target.bound),
            generatorCpuShareMax: run.generatorCpuShareMax,
            clientResumedShare: run.clientResumedShare,
            errors: run.errors,
            slices: run.slices,
          });
        });
      }
    }
  } finally {
    for (const generator of generators) generator.stop();
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const loadAfter = loadavg();
  reportStoreCost(results);
  writeRunRecord('store-cost', startedAt, loadBefore, loadAfter, { results });
}

/** Writes a run's JSON (where --json says, else a dated file in tmpdir) with the machine and load around it, and says where. */
function writeRunRecord(kind: string, startedAt: Date, loadBefore: number[], loadAfter: number[], body: Record<string, unknown>): void {
  const json = {
    startedAt: startedAt.toISOString(),
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    loadAverage: { before: loadBefore, after: loadAfter },
    options: { ...options },
    ...body,
  };
  const file = options.json ?? join(tmpdir(), `tls-session-bench-${kind}-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(json, null, 2));
  console.log(
    `\nload average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadAfter.map((l) => l.toFixed(2)).join(' ')}`,
  );
  console.log(`JSON: ${file}`);
}

/** The throwaway certificate for `key` as two files in `dir` (the key file 0600), for the server processes. */
function certificateFiles(dir: string, key: DevKeyType): { keyFile: string; certFile: string } {
  const cert = devCertificate(join(dir, 'cert'), key);
  const keyFile = join(dir, `${key}.key.pem`);
  const certFile = join(dir, `${key}.cert.pem`);
  writeFileSync(keyFile, cert.key, { mode: 0o600 });
  writeFileSync(certFile, cert.cert);
  return { keyFile, certFile };
}

async function main(): Promise<void> {
  if (options.metricsCost) return metricsCost();
  if (options.storeCost) return storeCost();
  const dir = mkdtempSync(join(tmpdir(), 'tls-session-bench-'));
  const secretHex = randomBytes(32).toString('hex');
  const redis = options.redis ? await startBenchRedis(dir) : undefined;
  const nginx = options.nginx ? findNginx() : { missing: '--no-nginx' };
  const configs = selectConfigs(redis !== undefined, 'binary' in nginx);
  const keys = options.keys.split(',').map((k) => k.trim()) as DevKeyType[];
  for (const key of keys) if (!KEY_TYPES.includes(key)) throw new Error(`--keys: unknown key type ${key}`);
  const generators = Array.from(
    { length: options.generators },
    () => new Peer(fork(join(here, 'handshake', 'load.ts'), [], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })),
  );
  const loadBefore = loadavg();
  const startedAt = new Date();
  const durationMs = Math.round(options.seconds * 1000);
  const log = (line: string): void => void process.stderr.write(line);
  // A progress line: rewritten in place on a terminal; elsewhere (CI logs) only the round changes are printed.
  const tty = process.stderr.isTTY === true;
  let lastPlain = '';
  const progress = (text: string, plain: string): void => {
    if (tty) log(`\r${text}`.padEnd(110));
    else if (plain !== lastPlain) log(`${(lastPlain = plain)}\n`);
  };
  log(
    `bench:handshake: ${configs.length} configurations × ${keys.length} key types, ${trialCount} alternating trials of ${options.seconds} s, ` +
      `${options.generators} generators × ${options.connections} connections; load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')}\n`,
  );
  if (!redis && options.redis) log('redis-server not found: RedisStore configurations skipped\n');
  const nginxSkipped =
    'missing' in nginx ? nginx.missing : configs.some((c) => c.server === 'nginx') ? undefined : 'no nginx configuration selected';
  let nginxCpuSource: CpuSource | undefined;
  const summaries: Summary[] = [];
  let pathRows: PathRow[] | undefined;
  try {
    for (const key of keys) {
      const { keyFile, certFile } = certificateFiles(dir, key);
      const servers: RunningServer[] = [];
      try {
        // Started a few at a time: each start is mostly loading (CPU), and there are two cores.
        let started = 0;
        const startOne = async (index: number): Promise<RunningServer> => {
          const config = configs[index]!;
          const server: RunningServer =
            config.server === 'nginx'
              ? await startNginx({
                  config,
                  binary: (nginx as NginxInfo).binary,
                  keyFile,
                  certFile,
                  dir: join(dir, `${key}-nginx-${index}`),
                  port: await freePort(),
                }).then((n) => ((nginxCpuSource = n.cpuSource), n))
              : await startServer(
                  {
                    config,
                    keyFile,
                    certFile,
                    sqlitePath: join(dir, `${key}-${index}.db`),
                    redisUrl: redis?.url,
                    redisPrefix: `bench:${key}:${index}:`,
                  },
                  secretHex,
                );
          started += 1;
          progress(`[${key}] started server ${started}/${configs.length}: ${config.id}`, `[${key}] starting ${configs.length} servers`);
          return server;
        };
        for (let index = 0; index < configs.length; index += SERVER_START_BATCH) {
          const batch = configs.slice(index, index + SERVER_START_BATCH).map((_c, offset) => startOne(index + offset));
          servers.push(...(await Promise.all(batch)));
        }
        const trials = new Map<string, Trial[]>(configs.map((c) => [c.id, []]));
        const runTrial = async (server: RunningServer, ms: number): Promise<Trial> => {
          const before = await server.cpuMicros();
          const request: RunRequest = {
            type: 'run',
            port: server.port,
            protocol: server.config.protocol,
            tickets: server.config.tickets,
            resume: server.config.resume,
            connections: options.connections,
            durationMs: ms,
            caFile: certFile,
          };
          const results = await Promise.all(generators.map((g) => g.ask<RunResult>(request, 'result')));
          const after = await server.cpuMicros();
          const handshakes = results.reduce((s, r) => s + r.handshakes, 0);
          const wallMs = Math.max(...results.map((r) => r.wallMs));
          return {
            round: -1,
            handshakesPerSecond: (handshakes / wallMs) * 1000,
            resumedShare: handshakes ? results.reduce((s, r) => s + r.resumed, 0) / handshakes : 0,
            serverCpuMicrosPerHandshake: handshakes ? (after - before) / handshakes : 0,
            generatorCpuShare: Math.max(...results.map((r) => r.cpuMicros / 1000 / r.wallMs)),
            errors: results.reduce((s, r) => s + r.errors, 0),
            latencyP50Ms: median(results.map((r) => r.latencyMs.p50)),
            latencyP99Ms: Math.max(...results.map((r) => r.latencyMs.p99)),
          };
        };
        // Warm-up: JIT, session caches, store files, Redis connections.
        for (const [index, server] of servers.entries()) {
          progress(`[${key}] warm-up ${index + 1}/${servers.length}: ${server.config.id}`, `[${key}] warm-up`);
          await runTrial(server, Math.min(400, durationMs));
        }
        for (let round = 0; round < trialCount; round++) {
          // Alternate the order each round, so drift (thermal, other load) spreads over every configuration.
          const order = round % 2 === 0 ? servers : [...servers].reverse();
          for (const [index, server] of order.entries()) {
            progress(
              `[${key}] trial ${round + 1}/${trialCount}, ${index + 1}/${order.length}: ${server.config.id}`,
              `[${key}] trial round ${round + 1}/${trialCount}`,
            );
            const trial = await runTrial(server, durationMs);
            trial.round = round;
            trials.get(server.config.id)!.push(trial);
          }
        }
        for (const config of configs) {
          const list = trials.get(config.id)!;
          const summary: Summary = {
            key,
            id: config.id,
            trials: list,
            handshakesPerSecond: spread(list.map((t) => t.handshakesPerSecond)),
            serverCpuMicrosPerHandshake: spread(list.map((t) => t.serverCpuMicrosPerHandshake)),
            resumedShare: median(list.map((t) => t.resumedShare)),
            generatorCpuShareMax: Math.max(...list.map((t) => t.generatorCpuShare)),
            latencyP99Ms: median(list.map((t) => t.latencyP99Ms)),
          };
          const throughputRef = trials.get(config.throughputReference);
          if (throughputRef && config.throughputReference !== config.id) {
            const r = pairedRatio(list, throughputRef, (t) => t.handshakesPerSecond);
            if (r) summary.throughputVsFull = { ...r, reference: config.throughputReference };
          }
          const cpuRef = config.cpuReference ? trials.get(config.cpuReference) : undefined;
          if (cpuRef) {
            const r = pairedRatio(list, cpuRef, (t) => t.serverCpuMicrosPerHandshake);
            if (r) summary.cpuVsReference = { ...r, reference: config.cpuReference! };
          }
          summaries.push(summary);
        }
      } finally {
        await Promise.all(servers.map((server) => server.stop()));
      }
    }
    if (options.path) {
      progress('store path alone (in-process, no handshakes)...', 'store path alone');
      const key = keys[0]!;
      const child = fork(join(here, 'handshake', 'path.ts'), [], {
        execArgv,
        env: {
          ...process.env,
          BENCH_PATH: JSON.stringify({
            keyFile: join(dir, `${key}.key.pem`),
            certFile: join(dir, `${key}.cert.pem`),
            redisUrl: redis?.url,
          }),
          BENCH_PATH_CALLS: options.quick ? '1500' : '4000',
        },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      pathRows = (await new Peer(child).next<{ rows: PathRow[] }>('path')).rows;
    }
  } finally {
    for (const generator of generators) generator.stop();
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  if (tty) log('\r'.padEnd(110) + '\r');
  const loadAfter = loadavg();
  report(summaries, keys);
  const modeled = pathRows ? reportPath(pathRows, summaries, keys) : undefined;
  const targets = evaluateTargets(summaries, keys);
  let nginxAnchor: NginxAnchorRecord;
  if (nginxSkipped || !nginxCpuSource) {
    nginxAnchor = { status: 'skipped', reason: nginxSkipped ?? 'no nginx server started' };
    console.log(`\nnginx anchor skipped: ${nginxAnchor.reason}`);
  } else {
    nginxAnchor = reportNginxAnchor(summaries, keys, nginx as NginxInfo, nginxCpuSource, (a, b) =>
      pairedRatio(a, b, (t) => t.serverCpuMicrosPerHandshake),
    );
  }
  writeRunRecord('handshake', startedAt, loadBefore, loadAfter, { results: summaries, storePath: pathRows, modeled, targets, nginxAnchor });
}

const fmt = (n: number, digits = 0): string => n.toFixed(digits);
const ratio = (r: { median: number; min: number; max: number } | undefined): string =>
  r ? `${r.median.toFixed(2)}× (${r.min.toFixed(2)}–${r.max.toFixed(2)})` : '';

function report(summaries: Summary[], keys: DevKeyType[]): void {
  const header = ['key', 'configuration', 'handshakes/s', 'vs full', 'resumed', 'server µs/hs', 'CPU vs ref', 'ref', 'p99 ms', 'gen CPU'];
  const rows = summaries.map((s) => [
    s.key,
    s.id,
    `${fmt(s.handshakesPerSecond.median)} (${fmt(s.handshakesPerSecond.min)}–${fmt(s.handshakesPerSecond.max)})`,
    ratio(s.throughputVsFull),
    `${fmt(s.resumedShare * 100, 1)}%`,
    `${fmt(s.serverCpuMicrosPerHandshake.median)} (${fmt(s.serverCpuMicrosPerHandshake.min)}–${fmt(s.serverCpuMicrosPerHandshake.max)})`,
    ratio(s.cpuVsReference),
    s.cpuVsReference?.reference ?? '',
    fmt(s.latencyP99Ms, 1),
    `${fmt(s.generatorCpuShareMax * 100)}%${s.generatorCpuShareMax > 0.9 ? ' !' : ''}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  let previousKey = keys[0];
  for (const [index, row] of rows.entries()) {
    if (summaries[index]!.key !== previousKey) {
      console.log('');
      previousKey = summaries[index]!.key;
    }
    console.log(line(row));
  }
  if (summaries.some((s) => s.generatorCpuShareMax > 0.9)) {
    console.log('! a generator process used > 90% of a core: that figure may be bounded by the generator, not the server');
  }
}

/**
 * The store path alone, and what it adds to a handshake: each attachSessionStore variant's CPU
 * per call minus the bare Map's, added to the Map configuration's server CPU per handshake
 * measured above (robust to the noise of a shared machine, unlike the end-to-end ratio).
 */
function reportPath(rows: PathRow[], summaries: Summary[], keys: DevKeyType[]) {
  const map = rows.find((r) => r.variant === 'Map')!;
  console.log('\nstore path alone (in-process CPU µs per call, median of 3 alternating rounds; "+" = more than the bare Map):');
  const header = ['store', 'newSession', 'resume hit', 'TLS 1.3 legacy-ID miss'];
  const cells = rows.map((r) => [
    r.variant,
    `${r.newSessionMicros.toFixed(1)}${r === map ? '' : ` (+${(r.newSessionMicros - map.newSessionMicros).toFixed(1)})`}`,
    `${r.resumeHitMicros.toFixed(1)}${r === map ? '' : ` (+${(r.resumeHitMicros - map.resumeHitMicros).toFixed(1)})`}`,
    `${r.legacyMissMicros.toFixed(1)}${r === map ? '' : ` (+${(r.legacyMissMicros - map.legacyMissMicros).toFixed(1)})`}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]): string => c.map((x, i) => x.padEnd(widths[i]!)).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const c of cells) console.log(line(c));
  const modeled = [];
  for (const key of keys) {
    const cpu = (id: string): number | undefined => summaries.find((s) => s.key === key && s.id === id)?.serverCpuMicrosPerHandshake.median;
    const resumedMap = cpu('tls12 resumed Map');
    const fullMap = cpu('tls12 full +Map');
    const tls13 = cpu('tls13 full');
    const parts: string[] = [];
    for (const r of rows) {
      if (r === map) continue;
      const entry: Record<string, unknown> = { key, variant: r.variant };
      if (resumedMap) entry.resumedVsMap = (resumedMap + r.resumeHitMicros - map.resumeHitMicros) / resumedMap;
      if (fullMap) entry.fullStoringVsMap = (fullMap + r.newSessionMicros - map.newSessionMicros) / fullMap;
      if (tls13) entry.tls13MissVsNone = tls13 / (tls13 + r.legacyMissMicros);
      modeled.push(entry);
      const f = (v: unknown): string => (typeof v === 'number' ? `${v.toFixed(3)}×` : '-');
      parts.push(
        `  ${r.variant.padEnd(26)} resumed ${f(entry.resumedVsMap)}  full+store ${f(entry.fullStoringVsMap)}  TLS 1.3 throughput ${f(entry.tls13MissVsNone)}`,
      );
    }
    console.log(
      `\n[${key}] modeled from the path costs and this run's Map/TLS 1.3 CPU per handshake (targets: resumed ≤ 1.10×, full+store ≤ 1.05×, TLS 1.3 ≥ 0.95×):`,
    );
    for (const p of parts) console.log(p);
  }
  return modeled;
}

function evaluateTargets(summaries: Summary[], keys: DevKeyType[]) {
  const results = [];
  console.log('\ntargets (ratios of medians of per-round ratios, same run):');
  for (const key of keys) {
    for (const target of TARGETS) {
      const config = summaries.find((s) => s.key === key && s.id === target.config);
      const reference = summaries.find((s) => s.key === key && s.id === target.reference);
      if (!config || !reference) continue;
      const value =
        target.metric === 'cpu'
          ? pairedRatio(config.trials, reference.trials, (t) => t.serverCpuMicrosPerHandshake)
          : pairedRatio(config.trials, reference.trials, (t) => t.handshakesPerSecond);
      if (!value) continue;
      const met = target.metric === 'cpu' ? value.median <= target.bound : value.median >= target.bound;
      results.push({ key, ...target, value, met });
      console.log(
        `  [${key}] ${target.name}: ${ratio(value)} — target ${target.metric === 'cpu' ? '≤' : '≥'} ${target.bound.toFixed(2)}× ${met ? 'met' : 'MISSED'}`,
      );
    }
  }
  return results;
}

main().catch((error: Error) => {
  console.error(`bench:handshake failed: ${error.stack ?? error.message}`);
  process.exitCode = 1;
});
