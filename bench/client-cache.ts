/**
 * What ClientSessionCache buys a short-lived client: a fresh process's handshake, full vs resumed.
 *
 *   npm run bench:client [-- --trials N]        (builds dist/ first; default 15 trials)
 *
 * A node:tls (https) server with an RSA-2048 certificate in this process; every trial starts new
 * client processes (bench/client-cache-child.ts), in alternating order:
 *   plain    tls.connect, no cache (the reference: what every run of a CLI pays today)
 *   miss     ClientSessionCache over an empty SQLite file (first run: full handshake + lookup + store)
 *   resumed  ClientSessionCache over a copy of a file one earlier run filled (TLS 1.3: a ticket is taken)
 * for TLS 1.2 and 1.3. Each child measures from its connect call to 'secureConnect' (TCP connect
 * excluded): latency, its own CPU, and bytes on the wire. Round trips are measured too, through a
 * loopback proxy that delays every chunk by RTT/2 each way: (proxied time − loopback median) / RTT,
 * rounded.
 * Medians (and min–max) of the trials, ratios against `plain` measured in the same run. Prints a
 * table and one JSON line.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import * as https from 'node:https';
import * as net from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { devCertificate } from '../examples/dev-cert';
import { progressLine } from '../lib/cli/output';

const CHILD = join(__dirname, 'client-cache-child.js');
const at = process.argv.indexOf('--trials');
const TRIALS = at >= 0 ? Number(process.argv[at + 1]) : 15;
if (!Number.isInteger(TRIALS) || TRIALS < 1) throw new RangeError('--trials must be an integer >= 1');
const RTT_MS = 20;

type Mode = 'plain' | 'miss' | 'resumed';
interface Sample {
  ms: number;
  cpuUs: number;
  bytes: { out: number; in: number };
  reused: boolean;
}

function child(config: Record<string, unknown>): Promise<Sample> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CHILD, JSON.stringify(config)], { timeout: 30_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${error.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as Sample);
    });
  });
}

/** A loopback proxy to `port` that delays each chunk by `oneWayMs` in each direction, in order. */
async function delayingProxy(port: number, oneWayMs: number): Promise<{ port: number; close(): void }> {
  const relay = (from: net.Socket, to: net.Socket): void => {
    from.on('data', (chunk) => setTimeout(() => to.write(chunk), oneWayMs));
    from.on('end', () => setTimeout(() => to.end(), oneWayMs));
    from.on('error', () => to.destroy());
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    relay(client, upstream);
    relay(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tls-session-bench-client-'));
  const { key, cert } = devCertificate(join(dir, 'cert'), 'rsa2048');
  const server = https.createServer({ key, cert }, (_request, response) => response.end('ok\n'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const proxy = await delayingProxy(port, RTT_MS / 2);
  const ca = join(dir, 'cert', 'cert-rsa2048.pem');
  const load = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  const results: Record<string, Record<Mode, Sample[]>> = {};
  const roundTrips: Record<string, Record<Mode, number>> = {};
  // One line, updated in place on a terminal; one line per trial in a log (no ever-growing line).
  const progress = progressLine(process.stderr);
  try {
    for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
      const samples: Record<Mode, Sample[]> = { plain: [], miss: [], resumed: [] };
      // Every 'resumed' run starts from a copy of one filled file: Node's servers send no new TLS 1.3
      // ticket on a resumption, so a file used again would run out of tickets every other run.
      const template = join(dir, `template-${version}.db`);
      await child({ mode: 'cache', db: template, port, ca, version });
      const run = (mode: Mode, trial: number): Promise<Sample> => {
        if (mode === 'plain') return child({ mode: 'plain', port, ca, version });
        const db = join(dir, `${mode}-${version}-${trial}.db`);
        if (mode === 'resumed') {
          copyFileSync(template, db);
          // The records are sealed with the key kept beside the file (ClientSessionCache's default): copied with it.
          copyFileSync(`${template}.key`, `${db}.key`);
        }
        return child({ mode: 'cache', db, port, ca, version });
      };
      const modes: Mode[] = ['plain', 'miss', 'resumed'];
      for (let trial = 0; trial < TRIALS; trial++) {
        progress.update(`${version} trial ${trial + 1}/${TRIALS} (load ${load})`);
        // Alternate the order, so drift on a noisy machine does not favour one mode.
        for (const mode of trial % 2 ? [...modes].reverse() : modes) {
          const sample = await run(mode, trial);
          if (sample.reused !== (mode === 'resumed')) throw new Error(`${version} ${mode}: reused ${sample.reused}`);
          samples[mode].push(sample);
        }
      }
      results[version] = samples;
      // Round trips through the delaying proxy: its own file, filled through the proxy's port (the peer key has the port).
      const rtt: Record<Mode, number> = { plain: 0, miss: 0, resumed: 0 };
      const proxiedHit = join(dir, `resumed-${version}-proxied.db`);
      await child({ mode: 'cache', db: proxiedHit, port: proxy.port, ca, version });
      rtt.plain = (await child({ mode: 'plain', port: proxy.port, ca, version })).ms / RTT_MS;
      rtt.miss = (await child({ mode: 'cache', db: join(dir, `rtt-miss-${version}.db`), port: proxy.port, ca, version })).ms / RTT_MS;
      const resumedSample = await child({ mode: 'cache', db: proxiedHit, port: proxy.port, ca, version });
      if (!resumedSample.reused) throw new Error(`${version}: the proxied resumption did not resume`);
      rtt.resumed = resumedSample.ms / RTT_MS;
      roundTrips[version] = rtt;
    }
  } finally {
    progress.done();
    proxy.close();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }

  const rows: string[][] = [
    [
      'protocol',
      'client',
      'handshake ms',
      'vs plain',
      'client CPU ms',
      'vs plain',
      'bytes out/in',
      'round trips',
      `ms at ${RTT_MS} ms RTT`,
    ],
  ];
  const json: Record<string, unknown> = { trials: TRIALS, loadavg: load, rttMs: RTT_MS, node: process.version, results: {} };
  for (const [version, samples] of Object.entries(results)) {
    const plainMs = median(samples.plain.map((s) => s.ms));
    const plainCpu = median(samples.plain.map((s) => s.cpuUs)) / 1000;
    const perVersion: Record<string, unknown> = {};
    for (const mode of ['plain', 'miss', 'resumed'] as const) {
      const ms = samples[mode].map((s) => s.ms);
      const cpu = samples[mode].map((s) => s.cpuUs / 1000);
      const bytes = samples[mode][0]!.bytes;
      const figure = {
        ms: { median: median(ms), min: Math.min(...ms), max: Math.max(...ms), vsPlain: median(ms) / plainMs },
        cpuMs: { median: median(cpu), min: Math.min(...cpu), max: Math.max(...cpu), vsPlain: median(cpu) / plainCpu },
        bytes,
        // The proxy adds RTT per round trip; what the handshake costs on loopback is taken off first.
        roundTrips: Math.round(roundTrips[version]![mode] - median(ms) / RTT_MS),
        msAtRtt: roundTrips[version]![mode] * RTT_MS,
      };
      perVersion[mode] = figure;
      rows.push([
        version,
        mode,
        `${figure.ms.median.toFixed(2)} (${figure.ms.min.toFixed(2)}–${figure.ms.max.toFixed(2)})`,
        `${figure.ms.vsPlain.toFixed(2)}×`,
        `${figure.cpuMs.median.toFixed(2)} (${figure.cpuMs.min.toFixed(2)}–${figure.cpuMs.max.toFixed(2)})`,
        `${figure.cpuMs.vsPlain.toFixed(2)}×`,
        `${bytes.out}/${bytes.in}`,
        String(figure.roundTrips),
        figure.msAtRtt.toFixed(1),
      ]);
    }
    (json.results as Record<string, unknown>)[version] = perVersion;
  }
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  console.log(`ClientSessionCache, fresh process per handshake: RSA-2048, loopback, ${TRIALS} trials, median (min–max); load ${load}`);
  for (const row of rows)
    console.log(
      row
        .map((cell, column) => cell.padEnd(widths[column]!))
        .join('  ')
        .trimEnd(),
    );
  console.log(JSON.stringify(json));
}

main().catch((error: Error) => {
  console.error(error.stack ?? error.message);
  process.exitCode = 1;
});
