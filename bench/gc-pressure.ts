/**
 * `npm run bench:gc`: what sessions dropped without free() cost in memory, against freeing them.
 *
 * One real TLS 1.2 handshake on loopback (EC P-256 certificates by default, as the test PKI makes
 * them; `--cert rsa2048` for RSA) gives a server-side session carrying the client's certificate
 * (~580 B of DER, ~5.5 KiB decoded). Then, each in its own child process (so one run's heap and
 * malloc arenas cannot flatter the other), N sessions (default 300,000) are decoded with
 * Session.fromDER:
 *
 *   A  each one freed explicitly (free()) right after it is made;
 *   B  each one dropped without free(): the GC safety net (FinalizationRegistry) has to reclaim it.
 *
 * The sessions are made in batches (default 1,000 per event-loop turn, `--batch`) by a plain
 * function: an async function's suspended frame would keep its last locals alive. Between batches
 * the event loop turns, as it does between a server's handshakes: that is when V8 runs
 * FinalizationRegistry callbacks (never inside a synchronous loop: with `--batch` equal to `--n`
 * run B holds every session until the end). The run never calls gc()
 * until the end, when it checks that nothing stays live: gc() and a few turns until ledger().live
 * is back to where it started.
 *
 * Reported per run: peak RSS (VmHWM), the most native sessions live at once, the most external
 * memory V8 had been told of (napi_adjust_external_memory: what makes it collect), the JavaScript
 * heap, the time, and the ledger after settling; then the ratio of the peaks B/A against the 2x target. A table, then
 * one JSON line. Options: --n N, --batch N, --cert p256|rsa2048, --runs R (best of R per mode:
 * the machines are small and shared; default 1).
 *
 * Run it with `npm run bench:gc`: the TypeScript runs directly through the transpiling require
 * hook test/persist/fixtures/register-ts.js, no build step (the children load no compiler: see
 * childPreload). `node dist/bench/gc-pressure.js` works too. The addon is build/Release's, or
 * TLS_SESSION_ADDON's.
 */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { constants } from 'node:crypto';

const TARGET_RATIO = 2;

type Mode = 'free' | 'drop';
type CertKind = 'rsa2048' | 'p256';

interface ChildResult {
  mode: Mode;
  n: number;
  batch: number;
  peakRssBytes: number;
  sampledPeakRssBytes: number;
  maxLive: number;
  maxHeapUsedBytes: number;
  /** V8's external-memory total as the binding last saw it (napi_adjust_external_memory). */
  maxV8ExternalBytes: number;
  loopMs: number;
  settleRounds: number;
  liveBefore: number;
  liveAfter: number;
  released: { explicit: number; gc: number; teardown: number };
}

// ---------------------------------------------------------------------------------------------
// Child: one run.

/** Reads a field of /proc/self/status in bytes (VmHWM: the peak resident set size so far). */
function procStatusBytes(field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

async function child(mode: Mode, derPath: string, n: number, batch: number): Promise<void> {
  // Loaded here, not at the top: the parent needs no addon.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Session, ledger } = require('../lib') as typeof import('../lib');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { native } = require('../lib/binding') as typeof import('../lib/binding');
  const der = readFileSync(derPath);
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('the child needs --expose-gc (for the final check only)');

  // A plain function: when it returns, nothing it made is reachable from a suspended frame.
  function decodeBatch(count: number): void {
    if (mode === 'free') {
      for (let i = 0; i < count; i++) Session.fromDER(der).free();
    } else {
      for (let i = 0; i < count; i++) Session.fromDER(der);
    }
  }
  const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

  // Warm up (the addon, the JIT), then start from a clean slate.
  for (let i = 0; i < 100; i++) Session.fromDER(der).free();
  await turn();
  gc();
  await turn();
  const before = ledger();
  const liveBefore = before.live;

  let sampledPeakRssBytes = 0;
  let maxLive = 0;
  let maxHeapUsedBytes = 0;
  let maxV8ExternalBytes = 0;
  const start = process.hrtime.bigint();
  for (let done = 0; done < n;) {
    const count = Math.min(batch, n - done);
    decodeBatch(count);
    done += count;
    const mem = process.memoryUsage();
    sampledPeakRssBytes = Math.max(sampledPeakRssBytes, mem.rss);
    maxHeapUsedBytes = Math.max(maxHeapUsedBytes, mem.heapUsed);
    maxV8ExternalBytes = Math.max(maxV8ExternalBytes, native.ledger().v8ExternalMemory);
    maxLive = Math.max(maxLive, ledger().live - liveBefore);
    await turn();
  }
  const loopMs = Number(process.hrtime.bigint() - start) / 1e6;
  const peakRssBytes = procStatusBytes('VmHWM');

  // Nothing may stay live: collect, let the FinalizationRegistry callbacks run, check the ledger.
  let settleRounds = 0;
  while (ledger().live !== liveBefore && settleRounds < 100) {
    settleRounds++;
    gc();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const after = ledger();
  const result: ChildResult = {
    mode,
    n,
    batch,
    peakRssBytes,
    sampledPeakRssBytes,
    maxLive,
    maxHeapUsedBytes,
    maxV8ExternalBytes,
    loopMs,
    settleRounds,
    liveBefore,
    liveAfter: after.live,
    released: {
      explicit: after.releasedBy.explicit - before.releasedBy.explicit,
      gc: after.releasedBy.gc - before.releasedBy.gc,
      teardown: after.releasedBy.teardown - before.releasedBy.teardown,
    },
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

// ---------------------------------------------------------------------------------------------
// Parent: the sample session, the child runs, the report.

function certificate(dir: string, name: string, kind: CertKind): { key: Buffer; cert: Buffer } {
  const keyArgs = kind === 'rsa2048' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      ...keyArgs,
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
      '-subj',
      `/CN=tls-session bench ${name}`,
      '-days',
      '1',
    ],
    { cwd: dir, stdio: 'ignore' },
  );
  return { key: readFileSync(join(dir, `${name}.key`)), cert: readFileSync(join(dir, `${name}.crt`)) };
}

/** One TLS 1.2 handshake in which the client presents a certificate: the server's session (session ID, no ticket) carries it. */
async function sessionWithClientCertificate(dir: string, kind: CertKind): Promise<Buffer> {
  const server = certificate(dir, 'server', kind);
  const client = certificate(dir, 'client', kind);
  let session: Buffer | undefined;
  const srv = tls.createServer(
    {
      ...server,
      maxVersion: 'TLSv1.2',
      requestCert: true,
      rejectUnauthorized: false,
      secureOptions: constants.SSL_OP_NO_TICKET,
    },
    (socket) => socket.end('x'),
  );
  srv.on('newSession', (_id: Buffer, data: Buffer, done: () => void) => {
    session = Buffer.from(data);
    done();
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const socket = tls.connect({
    port: (srv.address() as { port: number }).port,
    host: '127.0.0.1',
    rejectUnauthorized: false,
    ...client,
  });
  socket.on('error', () => {});
  socket.resume();
  await once(socket, 'close');
  srv.close();
  if (session === undefined) throw new Error('the handshake produced no server session');
  return session;
}

function listTypeScript(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return listTypeScript(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

/**
 * Run as TypeScript (npm run bench:gc), the children must not load the TypeScript compiler: it
 * would add ~90 MiB to both peaks. So the parent transpiles this file and lib/ once (the options
 * of test/persist/fixtures/register-ts.js) and the children's preload only compiles the output.
 * Run from dist/, the children run the JavaScript directly. Returns the children's node flags.
 */
function childPreload(dir: string): string[] {
  if (!__filename.endsWith('.ts')) return [];
  // The same options as the tests' hook (which this process runs under: npm run bench:gc).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { transpile } = require(join(__dirname, '..', 'test', 'persist', 'fixtures', 'register-ts.js')) as {
    transpile(filename: string, options?: { sourceMap?: boolean }): string;
  };
  const transpiled: Record<string, string> = {};
  for (const file of [__filename, ...listTypeScript(join(__dirname, '..', 'lib'))]) {
    transpiled[file] = transpile(file, { sourceMap: false });
  }
  writeFileSync(join(dir, 'transpiled.json'), JSON.stringify(transpiled));
  const preload = join(dir, 'preload.js');
  writeFileSync(
    preload,
    `'use strict';
const transpiled = JSON.parse(require('node:fs').readFileSync(${JSON.stringify(join(dir, 'transpiled.json'))}, 'utf8'));
require.extensions['.ts'] = function loadTranspiled(module, filename) {
  const code = transpiled[filename];
  if (code === undefined) throw new Error('bench:gc: ' + filename + ' was not transpiled by the parent');
  delete transpiled[filename];
  module._compile(code, filename);
};
`,
  );
  return ['-r', preload];
}

function runChild(preload: string[], mode: Mode, derPath: string, n: number, batch: number): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--expose-gc', ...preload, __filename, '--child', mode, derPath, String(n), String(batch)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (err += d.toString())); // TLS_SESSION_LEAK warnings in B: expected
    proc.on('error', reject);
    proc.on('close', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || !line.startsWith('{')) {
        reject(new Error(`the ${mode} run exited with ${code}:\n${out}\n${err}`));
        return;
      }
      resolve(JSON.parse(line) as ChildResult);
    });
  });
}

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : fallback;
}

function positiveInteger(name: string, fallback: number): number {
  const value = Number(option(name, String(fallback)));
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
  return value;
}

const MiB = 1024 * 1024;
const mib = (bytes: number): string => (bytes / MiB).toFixed(1);

async function parent(): Promise<void> {
  const n = positiveInteger('n', 300_000);
  const batch = positiveInteger('batch', 1000);
  const runs = positiveInteger('runs', 1);
  const cert = option('cert', 'p256') as CertKind;
  if (cert !== 'rsa2048' && cert !== 'p256') throw new Error('--cert must be p256 or rsa2048');

  const dir = mkdtempSync(join(tmpdir(), 'tls-session-gc-bench-'));
  try {
    const der = await sessionWithClientCertificate(dir, cert);
    const derPath = join(dir, 'session.der');
    writeFileSync(derPath, der);
    const preload = childPreload(dir);
    console.log(
      `tls-session bench:gc — Node ${process.version}, ${n.toLocaleString('en')} sessions of ${der.length} B ` +
        `(TLS 1.2, client certificate ${cert}), ${batch} per event-loop turn, best of ${runs}\n`,
    );

    const results: Record<Mode, ChildResult[]> = { free: [], drop: [] };
    for (let r = 0; r < runs; r++) {
      // Sequential, alternating: on two shared cores, concurrent runs would time each other.
      for (const mode of ['free', 'drop'] as const) results[mode].push(await runChild(preload, mode, derPath, n, batch));
    }
    const bestOf = (mode: Mode): ChildResult => results[mode].reduce((a, b) => (b.peakRssBytes < a.peakRssBytes ? b : a));
    const a = bestOf('free');
    const b = bestOf('drop');
    const ratio = b.peakRssBytes / a.peakRssBytes;
    const nothingLive = [...results.free, ...results.drop].every((r) => r.liveAfter === r.liveBefore);

    const rows: [string, ChildResult][] = [
      ['A: free() each', a],
      ['B: dropped, GC reclaims', b],
    ];
    console.log('run                     | peak RSS  | max live | V8 told   | heap max  | loop     | released explicit/gc | live after gc');
    console.log('------------------------|-----------|----------|-----------|-----------|----------|----------------------|--------------');
    for (const [name, r] of rows) {
      console.log(
        `${name.padEnd(23)} | ${mib(r.peakRssBytes).padStart(5)} MiB | ${String(r.maxLive).padStart(8)} | ` +
          `${mib(r.maxV8ExternalBytes).padStart(5)} MiB | ${mib(r.maxHeapUsedBytes).padStart(5)} MiB | ` +
          `${(r.loopMs / 1000).toFixed(1).padStart(6)} s | ` +
          `${`${r.released.explicit}/${r.released.gc}`.padStart(20)} | ${r.liveAfter - r.liveBefore} (${r.settleRounds} gc rounds)`,
      );
    }
    const met = ratio <= TARGET_RATIO;
    console.log(`\npeak RSS B/A: ${ratio.toFixed(2)}x (target <= ${TARGET_RATIO}x) ${met ? 'met' : 'MISSED'}`);
    console.log(`nothing left live after gc: ${nothingLive ? 'yes' : 'NO'}\n`);
    const summary = (r: ChildResult) => ({
      peakRssMiB: Number(mib(r.peakRssBytes)),
      maxLive: r.maxLive,
      maxV8ExternalMiB: Number(mib(r.maxV8ExternalBytes)),
      maxHeapUsedMiB: Number(mib(r.maxHeapUsedBytes)),
      loopMs: Math.round(r.loopMs),
      released: r.released,
      liveAfterGc: r.liveAfter - r.liveBefore,
    });
    console.log(
      JSON.stringify({
        bench: 'gc-pressure',
        node: process.version,
        n,
        batch,
        runs,
        cert,
        derBytes: der.length,
        a: summary(a),
        b: summary(b),
        ratio: Number(ratio.toFixed(3)),
        target: TARGET_RATIO,
        met,
        nothingLive,
        allRuns: { a: results.free.map((r) => Number(mib(r.peakRssBytes))), b: results.drop.map((r) => Number(mib(r.peakRssBytes))) },
      }),
    );
    if (!nothingLive) process.exitCode = 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const childAt = process.argv.indexOf('--child');
const main =
  childAt >= 0
    ? child(
        process.argv[childAt + 1] as Mode,
        process.argv[childAt + 2]!,
        Number(process.argv[childAt + 3]),
        Number(process.argv[childAt + 4]),
      )
    : parent();
main.catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
