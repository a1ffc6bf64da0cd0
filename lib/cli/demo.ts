/**
 * `tls-session demo` (also `npm run demo` and examples/demo.ts): the package's main job, end to
 * end, with no Redis and nothing but the shipped code. An HTTPS server keeps its TLS sessions in
 * SQLite (a temp dir), clients connect, the server restarts (server and store closed, new ones
 * opened on the same file), the same clients connect again. Every full handshake is explained
 * with the reason the library's own counters give (handle.stats(), ring.stats(server), onError).
 *
 * Two kinds of client: TLS 1.2 clients that do not use tickets (resumed through the session
 * store, attachSessionStore) and TLS 1.3 clients (resumed through tickets, TicketKeyRing).
 * Only node built-ins load at the top: the addon and SQLite load when the demo runs.
 */
import type { Command } from 'commander';
import { constants, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Agent, Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { TLSSocket } from 'node:tls';
import type { SessionStoreHandle, SessionStoreStats, SqliteStore, TicketCounts, TicketKeyRing } from '../persist';
import { EXIT_FAILURE, EXIT_USAGE, fail } from './output';

const CLIENTS_PER_KIND = 3;
const REQUESTS_PER_CLIENT = 3;

/** What the restarted server gets: the same store and secret (the point), or one of the two mistakes it shows. */
export type RestartWith = 'same' | 'new-secret' | 'new-store';
const RESTART_CHOICES: readonly RestartWith[] = ['same', 'new-secret', 'new-store'];

export interface DemoOptions {
  restartWith?: RestartWith;
  /** Where the output goes (default stdout). */
  write?: (text: string) => void;
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('run a local HTTPS server that keeps its TLS sessions in SQLite, restart it, and show (and explain) what resumes')
    .option(
      '--restart-with <what>',
      `what the restarted server gets: "same" store and secret, a "new-secret" or a "new-store" (shows what goes wrong)`,
      'same',
    )
    .addHelpText(
      'after',
      `
Everything stays on 127.0.0.1 and in a temporary directory, deleted at exit. The certificate is
a throwaway self-signed one for localhost made at start (demo only: its key never leaves the
process). Exit code 1 when no session resumed after the restart.

Examples:
  $ tls-session demo
  $ tls-session demo --restart-with new-secret`,
    )
    .action(async (options: { restartWith: string }) => {
      if (!RESTART_CHOICES.includes(options.restartWith as RestartWith)) {
        fail(`--restart-with must be one of ${RESTART_CHOICES.join(', ')}, not ${JSON.stringify(options.restartWith)}`, EXIT_USAGE);
      }
      process.exitCode = await runDemo({ restartWith: options.restartWith as RestartWith });
    });
}

interface RunningServer {
  server: Server;
  store: SqliteStore;
  sessions: SessionStoreHandle;
  ring: TicketKeyRing;
  port: number;
  /** onError reports (attachSessionStore's and the ring's) not yet attributed to a handshake. */
  errors: string[];
}

interface Tally {
  full: number;
  resumed: number;
  /** Handshake times (ms, connect to secureConnect) of the full and of the resumed handshakes. */
  fullMs: number[];
  resumedMs: number[];
}

interface Client {
  kind: string;
  name: string;
  agent: Agent;
  /** The client has been given a session (the 'session' event) and offers it on its next connection. */
  hasSession: boolean;
}

/** One connection as both ends saw it. */
interface Visit {
  reused: boolean;
  protocol: string | null;
  handshakeMs: number;
  /** The client offered a session (it had one from an earlier connection). */
  offered: boolean;
  store: SessionStoreStats;
  tickets: TicketCounts;
  errors: string[];
}

type Counter = 'hits' | 'misses' | 'expired' | 'rejected' | 'incompatible' | 'errors' | 'filtered' | 'stored';
const COUNTERS: readonly Counter[] = ['hits', 'misses', 'expired', 'rejected', 'incompatible', 'errors', 'filtered', 'stored'];

function storeDelta(after: SessionStoreStats, before: SessionStoreStats): Record<Counter, number> {
  return Object.fromEntries(COUNTERS.map((name) => [name, after[name] - before[name]])) as Record<Counter, number>;
}

function ticketDelta(after: TicketCounts, before: TicketCounts): { opened: number; unknownKey: number; pastRetention: number } {
  const sum = (t: TicketCounts) =>
    Object.values(t.decrypted).reduce((a, b) => a + b, 0) + Object.values(t.renewed).reduce((a, b) => a + b, 0);
  return {
    opened: sum(after) - sum(before),
    unknownKey: after.rejected.unknownKey - before.rejected.unknownKey,
    pastRetention: after.rejected.pastRetention - before.rejected.pastRetention,
  };
}

/**
 * Why a handshake was full, from what the client knew and what the server's counters moved by
 * during it (the demo's connections run one at a time, so each delta is that connection's).
 */
function explainFullHandshake(visit: Visit, before: { store: SessionStoreStats; tickets: TicketCounts }, afterRestart: boolean): string {
  const because = visit.errors.length > 0 ? ` (onError: ${visit.errors[visit.errors.length - 1]})` : '';
  const restart = afterRestart ? 'the session was issued before the restart, but ' : '';
  if (!visit.offered) return 'first visit (no session yet)';
  if (visit.protocol === 'TLSv1.3') {
    const t = ticketDelta(visit.tickets, before.tickets);
    if (t.unknownKey > 0)
      return `${restart}its ticket was sealed with a key this server does not have (ticket-key store or secret not shared)${because}`;
    if (t.pastRetention > 0) return `${restart}its ticket's key was past its retention${because}`;
    if (t.opened > 0) return `the ticket opened, but Node ${process.version} made a full handshake anyway${because}`;
    return `the client offered a ticket but the server's ticket-key callback never saw it${because}`;
  }
  const d = storeDelta(visit.store, before.store);
  if (d.incompatible > 0)
    return `${restart}this server cannot resume the stored record (another scope, or a Node release that binds sessions differently)${because}`;
  if (d.rejected > 0)
    return `${restart}the stored record was refused${because || ' (tampered, undecodable or sealed with another secret)'}`;
  if (d.expired > 0) return `${restart}the stored session had expired`;
  if (d.errors > 0) return `${restart}the store failed or was too slow${because}`;
  if (d.hits > 0) return `the store returned the session, but Node ${process.version} made a full handshake anyway${because}`;
  if (d.misses > 0) return `${restart}the store has no record of it (a miss)`;
  return `the client offered a session but the server never looked it up (Node did not ask resumeSession)${because}`;
}

/** Runs the demo; resolves with the exit code (1 when nothing resumed after the restart). */
export async function runDemo(options: DemoOptions = {}): Promise<number> {
  const write = options.write ?? ((text: string) => void process.stdout.write(text));
  const restartWith = options.restartWith ?? 'same';
  // Loaded here, not at the top: `tls-session --help` must not load the addon or SQLite.
  const https = await import('node:https');
  const { attachSessionStore, SqliteStore, TicketKeyRing } = await import('../persist');
  const { makeDemoCertificate } = await import('./demo-cert');

  const metrics = await startMetrics();
  const dir = mkdtempSync(join(tmpdir(), 'tls-session-demo-'));
  const dbPath = join(dir, 'sessions.db');
  // In production: from your secret manager, the same across restarts. Never printed.
  const secret = randomBytes(32);
  const certificate = makeDemoCertificate();

  async function startServer(path: string, key: Buffer, port = 0): Promise<RunningServer> {
    const errors: string[] = [];
    const onError = (error: Error) => void errors.push(error.message);
    const server = https.createServer(certificate, (_req, res) => res.end('hello\n'));
    const store = new SqliteStore({ path });
    const sessions = attachSessionStore(server, { store, secret: key, onError });
    const ring = new TicketKeyRing({ store, secret: key, onError });
    await ring.attach(server);
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    return { server, store, sessions, ring, port: (server.address() as { port: number }).port, errors };
  }

  async function stopServer(running: RunningServer): Promise<void> {
    running.sessions.detach();
    running.ring.close();
    running.server.closeAllConnections();
    await new Promise<void>((resolve) => running.server.close(() => resolve()));
    await running.store.close();
  }

  /** One HTTPS request on a new connection; the agent offers its cached session, if any. */
  function request(running: RunningServer, client: Client): Promise<Visit> {
    const offered = client.hasSession;
    running.errors.length = 0;
    return new Promise((resolve, reject) => {
      let handshakeMs = 0;
      const req = https
        .get(
          {
            host: '127.0.0.1',
            port: running.port,
            servername: 'localhost',
            path: '/',
            agent: client.agent,
            headers: { connection: 'close' },
          },
          (res) => {
            const socket = res.socket as TLSSocket;
            const reused = socket.isSessionReused();
            const protocol = socket.getProtocol();
            res.resume();
            // Wait for the connection to close: TLS 1.3 tickets arrive after the response starts.
            socket.once('close', () =>
              resolve({
                reused,
                protocol,
                handshakeMs,
                offered,
                store: running.sessions.stats(),
                tickets: running.ring.stats(running.server).tickets,
                errors: [...running.errors],
              }),
            );
          },
        )
        .once('error', reject);
      req.once('socket', (socket: TLSSocket) => {
        const started = performance.now();
        socket.once('secureConnect', () => (handshakeMs = performance.now() - started));
        socket.once('session', () => (client.hasSession = true));
      });
    });
  }

  interface Phase {
    tallies: Map<string, Tally>;
    /** Store lookups made for TLS 1.3 ClientHellos' random legacy session IDs (always misses). */
    legacyIdLookups: number;
    /** Store misses of TLS 1.2 connections. */
    tls12Misses: number;
    reasons: string[];
    stats: SessionStoreStats;
    /** Of the connections that offered a session made before this phase began, how many resumed. */
    carried: { offered: number; resumed: number };
  }

  async function drive(running: RunningServer, clients: Client[], afterRestart: boolean): Promise<Phase> {
    const phase: Phase = {
      tallies: new Map(),
      legacyIdLookups: 0,
      tls12Misses: 0,
      reasons: [],
      stats: running.sessions.stats(),
      carried: { offered: 0, resumed: 0 },
    };
    if (running.errors.length > 0) write(running.errors.map((message) => `  onError while starting: ${message}\n`).join(''));
    let fullHandshakes = 0;
    for (const client of clients) {
      const tally = phase.tallies.get(client.kind) ?? { full: 0, resumed: 0, fullMs: [], resumedMs: [] };
      phase.tallies.set(client.kind, tally);
      for (let i = 1; i <= REQUESTS_PER_CLIENT; i++) {
        const before = { store: running.sessions.stats(), tickets: running.ring.stats(running.server).tickets };
        const visit = await request(running, client);
        if (i === 1 && visit.offered) {
          phase.carried.offered++;
          if (visit.reused) phase.carried.resumed++;
        }
        const misses = visit.store.misses - before.store.misses;
        if (visit.protocol === 'TLSv1.3') phase.legacyIdLookups += misses;
        else phase.tls12Misses += misses;
        if (visit.reused) {
          tally.resumed++;
          tally.resumedMs.push(visit.handshakeMs);
          continue;
        }
        tally.full++;
        fullHandshakes++;
        tally.fullMs.push(visit.handshakeMs);
        const reason = explainFullHandshake(visit, before, afterRestart);
        if (visit.offered) phase.reasons.push(reason);
        write(`  full handshake: ${client.name}, visit ${i} (${visit.protocol}): ${reason}\n`);
      }
    }
    if (fullHandshakes === 0) write('  no full handshake: every connection resumed\n');
    phase.stats = running.sessions.stats();
    return phase;
  }

  const clients: Client[] = [];
  for (let i = 1; i <= CLIENTS_PER_KIND; i++) {
    const agent = new https.Agent({ ca: certificate.cert, maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET });
    clients.push({ kind: 'TLS 1.2, session ID (store)', name: `TLS 1.2 client ${i}`, agent, hasSession: false });
  }
  for (let i = 1; i <= CLIENTS_PER_KIND; i++) {
    const agent = new https.Agent({ ca: certificate.cert, minVersion: 'TLSv1.3' });
    clients.push({ kind: 'TLS 1.3, ticket (key ring)', name: `TLS 1.3 client ${i}`, agent, hasSession: false });
  }

  try {
    write(
      `tls-session demo: an HTTPS server on 127.0.0.1 keeps its TLS sessions in SQLite, restarts, and resumes them (Node ${process.version})\n` +
        'certificate: a throwaway self-signed one for localhost, made now (demo only: its key never leaves this process)\n' +
        `SQLite session store: ${dbPath} (deleted at exit)\n\n` +
        `before restart: ${clients.length} clients, ${REQUESTS_PER_CLIENT} connections each\n`,
    );
    let running = await startServer(dbPath, secret);
    const before = await drive(running, clients, false);
    await stopServer(running);

    const restartPath = restartWith === 'new-store' ? join(dir, 'another.db') : dbPath;
    const restartSecret = restartWith === 'new-secret' ? randomBytes(32) : secret;
    const what = {
      same: 'on the same SQLite file, with the same secret',
      'new-secret': 'on the same SQLite file but with ANOTHER secret',
      'new-store': 'on a NEW, empty SQLite file',
    }[restartWith];
    write(`\nserver stopped; starting a new one ${what}...\nafter restart\n`);
    running = await startServer(restartPath, restartSecret, running.port);
    const after = await drive(running, clients, true);
    await stopServer(running);

    write('\n');
    printTable(write, [
      ...[...before.tallies].map(([kind, t]) => ['before restart', kind, t] as [string, string, Tally]),
      ...[...after.tallies].map(([kind, t]) => ['after restart', kind, t] as [string, string, Tally]),
    ]);
    const s = after.stats;
    write(
      `\nstore (TLS 1.2 session IDs): before restart stored ${before.stats.stored}, hits ${before.stats.hits}; ` +
        `after restart hits ${s.hits}, misses ${after.tls12Misses}, expired ${s.expired}, rejected ${s.rejected}, incompatible ${s.incompatible}, errors ${s.errors}\n` +
        `store lookups of TLS 1.3 legacy session IDs: ${before.legacyIdLookups} before, ${after.legacyIdLookups} after restart ` +
        "(every TLS 1.3 ClientHello carries a random one; they always miss and are expected: TLS 1.3 resumes by ticket; attachSessionStore's lookup: 'issued' skips them)\n",
    );
    const all = [...before.tallies.values(), ...after.tallies.values()];
    const fullMs = median(all.flatMap((t) => t.fullMs));
    const resumedMs = median(all.flatMap((t) => t.resumedMs));
    if (fullMs !== undefined && resumedMs !== undefined) {
      write(
        `gain: a resumed handshake took ${resumedMs.toFixed(2)} ms, a full one ${fullMs.toFixed(2)} ms (medians, client side): ` +
          `${(fullMs / resumedMs).toFixed(1)}× faster; \`npm run bench:handshake\` (in a clone) measures server CPU and throughput\n`,
      );
    }
    const resumedAfter = [...after.tallies.values()].reduce((sum, t) => sum + t.resumed, 0);
    const totalAfter = [...after.tallies.values()].reduce((sum, t) => sum + t.full + t.resumed, 0);
    write(`resumed after restart: ${resumedAfter} of ${totalAfter}\n`);
    const { offered, resumed } = after.carried;
    write(`sessions from before the restart that resumed after it: ${resumed} of ${offered}\n`);
    write(metrics ? await metrics.report() : METRICS_HINT);
    // The point of the demo: sessions surviving a restart. Those made after it resuming is not that.
    if (resumed === 0) {
      const reasons = [...count(after.reasons)].map(([reason, n]) => `  ${n}× ${reason}\n`).join('');
      write(`FAIL: no session survived the restart. Why, by the server's counters:\n${reasons}`);
      return EXIT_FAILURE;
    }
    return 0;
  } finally {
    for (const client of clients) client.agent.destroy();
    metrics?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const METRICS_HINT = 'metrics: `npm install prom-client` and the demo also shows what Prometheus would scrape (docs/METRICS.md)\n';

/**
 * The Prometheus collector over a registry of its own, served on a loopback /metrics while the
 * demo runs (as examples/metrics.ts serves a real server's); undefined without prom-client (an
 * optional peer dependency).
 */
async function startMetrics(): Promise<{ report(): Promise<string>; stop(): void } | undefined> {
  const { collectPrometheusMetrics } = await import('../metrics');
  const { loadPeer } = await import('../metrics/instruments');
  let prom: { Registry: new () => unknown };
  try {
    prom = loadPeer('prom-client');
  } catch {
    return undefined;
  }
  const collector = collectPrometheusMetrics({ register: new prom.Registry() as never });
  const http = await import('node:http');
  const server = http.createServer((_request, response) => {
    void collector.metrics().then((text) => response.setHeader('content-type', collector.contentType).end(text));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/metrics`;
  return {
    async report() {
      // What a scrape of /metrics shows now: the handshake series, and the resumption rate from them.
      const text = await new Promise<string>((resolve, reject) => {
        http
          .get(url, (response) => {
            let body = '';
            response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
            response.on('end', () => resolve(body));
          })
          .on('error', reject);
      });
      const series = text.split('\n').filter((line) => /^tls_session_server_handshakes_total\{/.test(line) && !/ 0$/.test(line));
      const sum = (lines: string[]) => lines.reduce((total, line) => total + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
      const all = sum(series);
      const resumed = sum(series.filter((line) => line.includes('resumed="true"')));
      const rate = all > 0 ? ((100 * resumed) / all).toFixed(1) : '0';
      return `metrics: while the demo ran, ${url} served (prom-client; examples/metrics.ts does this for a real server):\n${series.map((line) => `  ${line}\n`).join('')}  resumption rate: ${resumed} of ${all} handshakes (${rate}%)\n`;
    },
    stop() {
      collector.stop();
      server.close();
    },
  };
}

function count(values: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  return counts;
}

function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The table docs/PERSISTENCE.md shows (same header, labels and columns). */
function printTable(write: (text: string) => void, rows: Array<[string, string, Tally]>): void {
  const header = ['phase', 'clients', 'full', 'resumed', 'full ms', 'resumed ms', 'gain'];
  const ms = (value: number | undefined) => (value === undefined ? '-' : value.toFixed(2));
  const body = rows.map(([phase, kind, t]) => {
    const full = median(t.fullMs);
    const resumed = median(t.resumedMs);
    const gain = full !== undefined && resumed !== undefined && resumed > 0 ? `${(full / resumed).toFixed(1)}×` : '-';
    return [phase, kind, String(t.full), String(t.resumed), ms(full), ms(resumed), gain];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i >= 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
  write(`${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n`);
  for (const row of body) write(`${line(row)}\n`);
}
