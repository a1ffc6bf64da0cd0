/**
 * nginx as an external anchor for `npm run bench:handshake` (issue 24): when an `nginx` binary is
 * installed (Debian: `apt-get install nginx`), the `nginx …` configurations run a real nginx —
 * one master, 1 worker, a shared session cache, tickets on or off — with the benchmark's own
 * certificate, driven by the same load generators in the same alternating trials as the Node
 * server processes. Server CPU is the nginx *worker's*, read from /proc over each trial (the
 * same bracket as a Node server's `process.cpuUsage()`).
 *
 * The anchor block then prints our resumed-handshake server CPU as a ratio of nginx's, per
 * resumption mechanism (TLS 1.2 session IDs, TLS 1.2 tickets, TLS 1.3 tickets) and key type:
 * the median of per-round ratios, like every other ratio of the benchmark.
 */
import { ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { CONFIGS, type BenchConfig } from './configs';

/** Where nginx is looked for when it is not on PATH (Debian puts it in /usr/sbin, not on a user's PATH). */
const FALLBACK_BINARY = '/usr/sbin/nginx';
export const NGINX_SESSION_CACHE = 'shared:tls:10m';

export interface NginxInfo {
  binary: string;
  version: string;
}

/** The nginx binary and its version, or why there is none. */
export function findNginx(): NginxInfo | { missing: string } {
  let binary: string | undefined;
  try {
    binary = execFileSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    binary = undefined;
  }
  if (!binary && existsSync(FALLBACK_BINARY)) binary = FALLBACK_BINARY;
  if (!binary) return { missing: `no nginx on PATH or at ${FALLBACK_BINARY} (Debian: apt-get install nginx)` };
  // `nginx -v` prints "nginx version: nginx/1.22.1" on stderr.
  const out = spawnSync(binary, ['-v'], { encoding: 'utf8' });
  const version = /nginx\/\S+/.exec(`${out.stderr ?? ''}${out.stdout ?? ''}`)?.[0];
  if (out.status !== 0 || !version) {
    return { missing: `${binary} -v failed: ${(out.stderr ?? '').trim() || out.error?.message || `status ${out.status}`}` };
  }
  return { binary, version };
}

// --- CPU of one process, from /proc ---

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** utime + stime of a process (all its threads) from /proc/<pid>/stat, in µs (resolution: one clock tick, 10 ms at 100 Hz). */
function statCpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of the line (utime, stime) are the 12th and 13th after the name.
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / ticksPerSecond();
}

/**
 * On-CPU time of a process, summed over its threads, from /proc/<pid>/task/<tid>/schedstat (ns):
 * the kernel's sum_exec_runtime, which is what getrusage — hence a Node server's
 * `process.cpuUsage()` user + system — adds up to, at nanosecond instead of clock-tick
 * resolution. undefined where the kernel does not provide it.
 */
function schedstatCpuMicros(pid: number): number | undefined {
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`))
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    return Number.isFinite(ns) && ns > 0 ? ns / 1000 : undefined;
  } catch {
    return undefined;
  }
}

export type CpuSource = 'schedstat' | 'stat';

/** How a process's CPU is read: schedstat where the kernel has it (checked on the process), else stat. */
function cpuReader(pid: number): { source: CpuSource; read: () => number } {
  return schedstatCpuMicros(pid) !== undefined
    ? { source: 'schedstat', read: () => schedstatCpuMicros(pid) ?? statCpuMicros(pid) }
    : { source: 'stat', read: () => statCpuMicros(pid) };
}

/** The pids whose parent is `parent` (scanning /proc: no dependency on CONFIG_PROC_CHILDREN). */
function childrenOf(parent: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === parent) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

// --- one nginx per configuration ---

export interface NginxSpec {
  config: BenchConfig;
  binary: string;
  keyFile: string;
  certFile: string;
  /** A directory of its own (config, pid, error log, temp paths). */
  dir: string;
  port: number;
}

export interface RunningNginx {
  config: BenchConfig;
  port: number;
  workerPid: number;
  cpuSource: CpuSource;
  /** The worker's CPU so far, µs. */
  cpuMicros(): Promise<number>;
  stop(): Promise<void>;
}

/** The nginx.conf of one configuration: foreground master, 1 worker, the bench's certificate, a shared session cache. */
export function nginxConfig(spec: NginxSpec): string {
  const { config, dir } = spec;
  const temp = (name: string): string => `${name}_temp_path ${join(dir, 'temp', name)};`;
  return [
    'daemon off;',
    'master_process on;',
    'worker_processes 1;',
    `pid ${join(dir, 'nginx.pid')};`,
    `error_log ${join(dir, 'error.log')} warn;`,
    'events { worker_connections 1024; }',
    'http {',
    '  access_log off;',
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((name) => `  ${temp(name)}`),
    // No keep-alive: the connection is closed as soon as it is done (the generators close after the handshake).
    '  keepalive_timeout 0;',
    '  server {',
    // tcp_nodelay (nginx's default) is set on SSL connections before the handshake, like the Node servers' noDelay.
    `    listen 127.0.0.1:${spec.port} ssl;`,
    `    ssl_certificate ${spec.certFile};`,
    `    ssl_certificate_key ${spec.keyFile};`,
    `    ssl_protocols ${config.protocol};`,
    `    ssl_session_cache ${NGINX_SESSION_CACHE};`,
    `    ssl_session_tickets ${config.tickets ? 'on' : 'off'};`,
    // Never reached by the bench's clients (they send no request; nginx closes on their close_notify + FIN).
    '    return 200;',
    '  }',
    '}',
    '',
  ].join('\n');
}

const canConnect = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = netConnect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

/** Masters still running: killed if the benchmark exits without stopping them. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGTERM');
});

/** Starts nginx for one configuration and waits for its worker and port. */
export async function startNginx(spec: NginxSpec): Promise<RunningNginx> {
  mkdirSync(join(spec.dir, 'temp'), { recursive: true });
  const confFile = join(spec.dir, 'nginx.conf');
  writeFileSync(confFile, nginxConfig(spec));
  // -p: prefix (relative paths), -e: the error log before the config is read (Debian's default is stderr).
  const child = spawn(spec.binary, ['-p', spec.dir, '-c', confFile, '-e', join(spec.dir, 'error.log')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  running.add(child);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  let spawnError: Error | undefined;
  child.once('error', (error) => (spawnError = error));
  let workerPid: number | undefined;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => running.delete(child));
  const errorLog = (): string => {
    try {
      return readFileSync(join(spec.dir, 'error.log'), 'utf8').trim();
    } catch {
      return '';
    }
  };
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM'); // nginx: fast shutdown (master and worker)
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        try {
          if (workerPid) process.kill(workerPid, 'SIGKILL');
        } catch {
          // already gone
        }
      }, 5000);
      await exited;
      clearTimeout(timer);
    }
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (spawnError) throw new Error(`nginx (${spec.config.id}) did not start: ${spawnError.message}`);
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`nginx (${spec.config.id}) exited at start: ${(stderr.trim() + '\n' + errorLog()).trim()}`);
    }
    const workers = child.pid ? childrenOf(child.pid) : [];
    if (workers.length === 1 && (await canConnect(spec.port))) {
      workerPid = workers[0]!;
      const reader = cpuReader(workerPid);
      return {
        config: spec.config,
        port: spec.port,
        workerPid,
        cpuSource: reader.source,
        cpuMicros: () => Promise.resolve(reader.read()),
        stop,
      };
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`nginx (${spec.config.id}) did not come up in 10 s (${workers.length} workers): ${errorLog()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// --- the anchor block ---

/** Which resumption a configuration measures. */
export type Mechanism = 'TLS 1.2 session IDs' | 'TLS 1.2 tickets' | 'TLS 1.3 tickets';
const mechanism = (c: BenchConfig): Mechanism =>
  c.protocol === 'TLSv1.3' ? 'TLS 1.3 tickets' : c.tickets ? 'TLS 1.2 tickets' : 'TLS 1.2 session IDs';

/** The per-trial figures of a configuration this block needs (a Summary of bench/handshake.ts). */
export interface AnchorSummary {
  key: string;
  id: string;
  trials: { round: number; serverCpuMicrosPerHandshake: number }[];
  serverCpuMicrosPerHandshake: { median: number };
  resumedShare: number;
}

type Spread = { median: number; min: number; max: number };
type PairedRatio = (trials: AnchorSummary['trials'], reference: AnchorSummary['trials']) => Spread | undefined;

export interface AnchorComparison {
  key: string;
  /** The resumption compared, or for the full handshakes of `full`, the protocol's full handshake. */
  mechanism: Mechanism | 'TLS 1.2 full' | 'TLS 1.3 full';
  /** Our configuration (a Node server process). */
  config: string;
  cpuMicrosPerHandshake: number;
  resumedShare: number;
  /** The nginx configuration it is compared with. */
  nginxConfig: string;
  nginxCpuMicrosPerHandshake: number;
  nginxResumedShare: number;
  /** Our server CPU per handshake ÷ nginx's: median (min–max) of per-round ratios. */
  ratio: Spread;
}

export type NginxAnchorRecord =
  | { status: 'skipped'; reason: string }
  | {
      status: 'measured';
      nginx: NginxInfo & { workers: 1; sessionCache: string; cpu: string };
      /** Resumed handshakes, ours vs nginx's, per key type and mechanism. */
      resumed: AnchorComparison[];
      /** Full handshakes, for reference: Node without listeners vs nginx, per protocol. */
      full: AnchorComparison[];
    };

const CPU_SOURCES: Record<CpuSource, string> = {
  schedstat: "the nginx worker's on-CPU time, /proc/<pid>/task/*/schedstat (ns), before and after each trial",
  stat: "the nginx worker's utime + stime, /proc/<pid>/stat (clock ticks), before and after each trial",
};

/**
 * Prints the "nginx anchor" block and returns its JSON: every resumed single-process Node
 * configuration of the run against the nginx configuration of the same mechanism and key type.
 */
export function reportNginxAnchor(
  summaries: AnchorSummary[],
  keys: string[],
  nginx: NginxInfo,
  cpuSource: CpuSource,
  pairedRatio: PairedRatio,
): NginxAnchorRecord {
  const byId = new Map(CONFIGS.map((c) => [c.id, c]));
  const compare = (ours: AnchorSummary, theirs: AnchorSummary, what: AnchorComparison['mechanism']): AnchorComparison | undefined => {
    const ratio = pairedRatio(ours.trials, theirs.trials);
    return ratio
      ? {
          key: ours.key,
          mechanism: what,
          config: ours.id,
          cpuMicrosPerHandshake: ours.serverCpuMicrosPerHandshake.median,
          resumedShare: ours.resumedShare,
          nginxConfig: theirs.id,
          nginxCpuMicrosPerHandshake: theirs.serverCpuMicrosPerHandshake.median,
          nginxResumedShare: theirs.resumedShare,
          ratio,
        }
      : undefined;
  };
  const resumed: AnchorComparison[] = [];
  const full: AnchorComparison[] = [];
  for (const key of keys) {
    const ofKey = summaries.filter((s) => s.key === key && byId.has(s.id));
    const nginxRows = ofKey.filter((s) => byId.get(s.id)!.server === 'nginx');
    for (const ours of ofKey) {
      const config = byId.get(ours.id)!;
      if (config.server === 'nginx' || config.workers > 0) continue;
      if (config.resume) {
        const anchor = nginxRows.find((n) => byId.get(n.id)!.resume && mechanism(byId.get(n.id)!) === mechanism(config));
        const row = anchor && compare(ours, anchor, mechanism(config));
        if (row) resumed.push(row);
      } else if (config.listener === 'none' && !config.metrics) {
        const anchor = nginxRows.find((n) => !byId.get(n.id)!.resume && byId.get(n.id)!.protocol === config.protocol);
        const row = anchor && compare(ours, anchor, config.protocol === 'TLSv1.2' ? 'TLS 1.2 full' : 'TLS 1.3 full');
        if (row) full.push(row);
      }
    }
  }
  const f = (n: number): string => n.toFixed(0);
  const r = (x: Spread): string => `${x.median.toFixed(2)}× (${x.min.toFixed(2)}–${x.max.toFixed(2)})`;
  console.log(
    `\nnginx anchor (${nginx.version}, 1 worker, ssl_session_cache ${NGINX_SESSION_CACHE}; server CPU per handshake, ` +
      `ours ÷ nginx's: median (min–max) of per-round ratios, same run):`,
  );
  console.log(`  nginx CPU: ${CPU_SOURCES[cpuSource]}`);
  if (resumed.length === 0)
    console.log('  no resumed Node configuration in this run to compare (select some, e.g. --configs resumed,nginx)');
  for (const key of keys) {
    for (const m of ['TLS 1.2 session IDs', 'TLS 1.2 tickets', 'TLS 1.3 tickets'] as Mechanism[]) {
      const rows = resumed.filter((c) => c.key === key && c.mechanism === m);
      if (rows.length === 0) continue;
      const head = rows[0]!;
      console.log(
        `  [${key}] ${m}, resumed — ${head.nginxConfig}: ${f(head.nginxCpuMicrosPerHandshake)} µs/handshake, ` +
          `${(head.nginxResumedShare * 100).toFixed(1)}% resumed`,
      );
      const width = Math.max(...rows.map((c) => c.config.length));
      for (const c of rows) {
        console.log(
          `    ${c.config.padEnd(width)}  ${f(c.cpuMicrosPerHandshake).padStart(5)} µs  ${r(c.ratio)} of nginx` +
            `${c.resumedShare < 0.9 ? `  (only ${(c.resumedShare * 100).toFixed(1)}% resumed)` : ''}`,
        );
      }
    }
    for (const c of full.filter((x) => x.key === key)) {
      console.log(
        `  [${key}] full handshake, for reference: ${c.config} ${f(c.cpuMicrosPerHandshake)} µs vs ${c.nginxConfig} ` +
          `${f(c.nginxCpuMicrosPerHandshake)} µs: ${r(c.ratio)}`,
      );
    }
  }
  return {
    status: 'measured',
    nginx: { ...nginx, workers: 1, sessionCache: NGINX_SESSION_CACHE, cpu: CPU_SOURCES[cpuSource] },
    resumed,
    full,
  };
}
