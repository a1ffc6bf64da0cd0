/**
 * npm run demo — the package's main job, end to end, with no Redis:
 * an HTTPS server keeps its TLS sessions in SQLite (a temp dir), clients connect, the server
 * restarts (server and store closed, new ones opened on the same file), the same clients
 * connect again. Prints full vs resumed handshakes before and after the restart.
 *
 * Two kinds of client: TLS 1.2 clients that do not use tickets (resumed through the session
 * store, attachSessionStore) and TLS 1.3 clients (resumed through tickets, TicketKeyRing).
 */
import { constants, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, createServer, get, Server } from 'node:https';
import { tmpdir } from 'node:os';
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
function request(agent: Agent, port: number): Promise<{ reused: boolean; protocol: string | null }> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, servername: 'localhost', path: '/', agent, headers: { connection: 'close' } }, (res) => {
      const socket = res.socket as TLSSocket;
      const result = { reused: socket.isSessionReused(), protocol: socket.getProtocol() };
      res.resume();
      // Wait for the connection to close: TLS 1.3 tickets arrive after the response starts.
      socket.once('close', () => resolve(result));
    }).once('error', reject);
  });
}

async function drive(agents: Map<string, Agent[]>, port: number): Promise<Map<string, Tally>> {
  const tallies = new Map<string, Tally>();
  for (const [kind, list] of agents) {
    const tally = { full: 0, resumed: 0 };
    for (const agent of list) {
      for (let i = 0; i < REQUESTS_PER_CLIENT; i++) {
        const { reused } = await request(agent, port);
        if (reused) tally.resumed++;
        else tally.full++;
      }
    }
    tallies.set(kind, tally);
  }
  return tallies;
}

function printTable(rows: Array<[string, string, Tally]>): void {
  const header = ['phase', 'clients', 'full', 'resumed'];
  const body = rows.map(([phase, kind, t]) => [phase, kind, String(t.full), String(t.resumed)]);
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
