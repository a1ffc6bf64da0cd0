/**
 * npm run demo — the package's main job, end to end, with no Redis:
 * an HTTPS server keeps its TLS sessions in SQLite (a temp dir), clients connect, the server
 * restarts (server and store closed, new ones opened on the same file), the same clients
 * connect again. Prints full vs resumed handshakes before and after the restart.
 *
 * Two kinds of client: TLS 1.2 clients that do not use tickets (resumed through the session
 * store, attachSessionStore) and TLS 1.3 clients (resumed through tickets, TicketKeyRing).
 * Each row also shows the median handshake time of its full and resumed handshakes, as the
 * client measured it, and the gain (full / resumed): what resumption buys, on this machine.
 * `npm run bench:handshake` measures it properly (server CPU, throughput, separate processes).
 */
import { constants, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, createServer, get, Server } from 'node:https';
import { tmpdir } from 'node:os';
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { attachSessionStore, SessionStoreHandle, SqliteStore, TicketKeyRing } from '../lib';
import { devCertificate } from './dev-cert';

const CLIENTS_PER_KIND = 3;
const REQUESTS_PER_CLIENT = 3;

interface RunningServer {
  server: Server;
  store: SqliteStore;
  sessions: SessionStoreHandle;
  ring: TicketKeyRing;
  port: number;
}

interface Tally {
  full: number;
  resumed: number;
  /** Handshake times (ms, connect to secureConnect) of the full and of the resumed handshakes. */
  fullMs: number[];
  resumedMs: number[];
}

async function startServer(dbPath: string, secret: Buffer, certificate: { key: Buffer; cert: Buffer }, port = 0): Promise<RunningServer> {
  const server = createServer(certificate, (req, res) => res.end('hello\n'));
  const store = new SqliteStore({ path: dbPath });
  const sessions = attachSessionStore(server, { store, secret });
  const ring = new TicketKeyRing({ store, secret });
  await ring.attach(server);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { server, store, sessions, ring, port: (server.address() as { port: number }).port };
}

async function stopServer(running: RunningServer): Promise<void> {
  running.sessions.detach();
  running.ring.close();
  running.server.closeAllConnections();
  await new Promise<void>((resolve) => running.server.close(() => resolve()));
  await running.store.close();
}

/** One HTTPS request on a new connection; the agent offers its cached session, if any. */
function request(agent: Agent, port: number): Promise<{ reused: boolean; protocol: string | null; handshakeMs: number }> {
  return new Promise((resolve, reject) => {
    let handshakeMs = 0;
    const req = get({ host: '127.0.0.1', port, servername: 'localhost', path: '/', agent, headers: { connection: 'close' } }, (res) => {
      const socket = res.socket as TLSSocket;
      const result = { reused: socket.isSessionReused(), protocol: socket.getProtocol(), handshakeMs };
      res.resume();
      // Wait for the connection to close: TLS 1.3 tickets arrive after the response starts.
      socket.once('close', () => resolve(result));
    }).once('error', reject);
    req.once('socket', (socket: TLSSocket) => {
      const started = performance.now();
      socket.once('secureConnect', () => (handshakeMs = performance.now() - started));
    });
  });
}

function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

async function drive(agents: Map<string, Agent[]>, port: number): Promise<Map<string, Tally>> {
  const tallies = new Map<string, Tally>();
  for (const [kind, list] of agents) {
    const tally: Tally = { full: 0, resumed: 0, fullMs: [], resumedMs: [] };
    for (const agent of list) {
      for (let i = 0; i < REQUESTS_PER_CLIENT; i++) {
        const { reused, handshakeMs } = await request(agent, port);
        if (reused) {
          tally.resumed++;
          tally.resumedMs.push(handshakeMs);
        } else {
          tally.full++;
          tally.fullMs.push(handshakeMs);
        }
      }
    }
    tallies.set(kind, tally);
  }
  return tallies;
}

function printTable(rows: Array<[string, string, Tally]>): void {
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
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of body) console.log(line(row));
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tls-session-demo-'));
  const dbPath = join(dir, 'sessions.db');
  const secret = randomBytes(32); // in production: from your secret manager, the same across restarts
  const certificate = devCertificate(join(dir, 'cert'));
  const ca = certificate.cert;
  const agents = new Map<string, Agent[]>([
    [
      'TLS 1.2, session ID (store)',
      Array.from({ length: CLIENTS_PER_KIND }, () => new Agent({ ca, maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET })),
    ],
    ['TLS 1.3, ticket (key ring)', Array.from({ length: CLIENTS_PER_KIND }, () => new Agent({ ca, minVersion: 'TLSv1.3' }))],
  ]);

  try {
    console.log(`SQLite session store: ${dbPath}\n`);
    let running = await startServer(dbPath, secret, certificate);
    const before = await drive(agents, running.port);
    const statsBefore = running.sessions.stats();
    await stopServer(running);
    console.log('server stopped; starting a new one on the same SQLite file...\n');

    running = await startServer(dbPath, secret, certificate, running.port);
    const after = await drive(agents, running.port);
    const statsAfter = running.sessions.stats();
    await stopServer(running);

    printTable([
      ...[...before].map(([kind, t]) => ['before restart', kind, t] as [string, string, Tally]),
      ...[...after].map(([kind, t]) => ['after restart', kind, t] as [string, string, Tally]),
    ]);
    console.log(
      `\nstore (TLS 1.2): before restart stored ${statsBefore.stored}, hits ${statsBefore.hits}; ` +
        `after restart hits ${statsAfter.hits}, misses ${statsAfter.misses}, rejected ${statsAfter.rejected}`,
    );
    const all = [...before.values(), ...after.values()];
    const fullMs = median(all.flatMap((t) => t.fullMs));
    const resumedMs = median(all.flatMap((t) => t.resumedMs));
    if (fullMs !== undefined && resumedMs !== undefined) {
      console.log(
        `gain: a resumed handshake took ${resumedMs.toFixed(2)} ms, a full one ${fullMs.toFixed(2)} ms (medians, client side): ` +
          `${(fullMs / resumedMs).toFixed(1)}× faster; \`npm run bench:handshake\` measures server CPU and throughput`,
      );
    }
    const resumedAfter = [...after.values()].reduce((sum, t) => sum + t.resumed, 0);
    console.log(`resumed after restart: ${resumedAfter} of ${[...after.values()].reduce((s, t) => s + t.full + t.resumed, 0)}`);
    if (resumedAfter === 0) {
      console.error('FAIL: no session survived the restart');
      process.exitCode = 1;
    }
  } finally {
    for (const list of agents.values()) for (const agent of list) agent.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: Error & { code?: string }) => {
  console.error(`demo failed: ${error.code ?? ''} ${error.message}`);
  process.exitCode = 1;
});
