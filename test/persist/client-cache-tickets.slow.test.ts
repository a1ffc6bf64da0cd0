/**
 * Clients that keep resuming (issue 24): ten client processes in a row (fixtures/ticket-client.js,
 * on the compiled library), each making one connection through a ClientSessionCache on one shared
 * SQLite file, against a TLS 1.3 node:tls server in this process.
 *
 * TLS 1.3 tickets are single-use, and a Node server sends no new ticket after a resumption unless
 * its ticket-key callback renews. So:
 * - TicketKeyRing's default (`renewTickets: 'always'`): the first process does a full handshake,
 *   the nine others resume (each gets a fresh ticket for the next one);
 * - `renewTickets: 'retired'` (Node's own behaviour): the two tickets of each full handshake serve
 *   two processes, then one does a full handshake again (full, resumed, resumed, full, ...);
 * - the same server, or a plain Node server (its default tickets, no ring), with the client's
 *   `reuseTickets: true`: the last ticket taken is offered again once the pool is empty, and every
 *   process after the first resumes.
 * The server's own account (isSessionReused on its side) agrees with the clients' every time.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as tls from 'node:tls';
import { MemoryStore, TicketKeyRing, type TicketRenewal } from '../../lib';
import { makePki, type Pki } from '../helpers/pki';
import { close, listen, tls13Server } from './helpers/tls-peers';

const CLIENT = join(__dirname, 'fixtures', 'ticket-client.js');
const PROCESSES = 10;

let pki: Pki;
let dir: string;
beforeAll(() => {
  pki = makePki();
  dir = mkdtempSync(join(tmpdir(), 'tls-session-ticket-processes-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(pki.dir, { recursive: true, force: true });
});

interface ClientResult {
  reused: boolean;
  protocol: string;
  stats: { offered: number; resumed: number; notResumed: number; reusedTickets: number; rejected: number; errors: number };
}

/** One client process, start to exit. */
function runClient(config: Record<string, unknown>): Promise<ClientResult> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [CLIENT, JSON.stringify({ ca: pki.caCertPath, ...config })],
      { timeout: 60_000 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`client process failed: ${error.message}\n${stderr}`));
        else resolve(JSON.parse(stdout) as ClientResult);
      },
    );
  });
}

/** A TLS 1.3 server (node:tls), with a TicketKeyRing unless `renewTickets` is 'none'; it records whether each connection resumed. */
async function server(renewTickets: TicketRenewal | 'none') {
  const reused: boolean[] = [];
  const tlsServer = tls13Server(pki);
  tlsServer.on('secureConnection', (socket: tls.TLSSocket) => reused.push(socket.isSessionReused()));
  const ring = renewTickets === 'none' ? undefined : new TicketKeyRing({ store: new MemoryStore(), renewTickets });
  await ring?.attach(tlsServer);
  const port = await listen(tlsServer);
  return {
    port,
    reused,
    ring,
    tlsServer,
    async stop() {
      ring?.close();
      await close(tlsServer);
    },
  };
}

/** Ten processes in a row on one SQLite file: what each saw, as 'full' / 'resumed'. */
async function tenProcesses(port: number, name: string, reuseTickets?: boolean): Promise<{ outcomes: string[]; results: ClientResult[] }> {
  const db = join(dir, `${name}.db`);
  const results: ClientResult[] = [];
  for (let i = 0; i < PROCESSES; i++) results.push(await runClient({ db, port, ...(reuseTickets !== undefined && { reuseTickets }) }));
  expect(results.map((r) => r.protocol)).toEqual(Array(PROCESSES).fill('TLSv1.3'));
  expect(results.map((r) => r.stats.rejected + r.stats.errors)).toEqual(Array(PROCESSES).fill(0));
  return { outcomes: results.map((r) => (r.reused ? 'resumed' : 'full')), results };
}

const FIRST_FULL_THEN_RESUMED = ['full', ...Array<string>(PROCESSES - 1).fill('resumed')];

test("renewTickets 'always' (the default): ten client processes in a row, the first full, the other nine resumed", async () => {
  const s = await server('always');
  try {
    const { outcomes } = await tenProcesses(s.port, 'always');
    expect(outcomes).toEqual(FIRST_FULL_THEN_RESUMED);
    expect(s.reused).toEqual(outcomes.map((o) => o === 'resumed'));
    // Each resumption opened a ticket and sent a new one under the current key.
    const tickets = s.ring!.stats(s.tlsServer).tickets;
    expect(tickets.renewed.current).toBe(PROCESSES - 1);
    expect(tickets.decrypted).toEqual({ ahead: 0, current: 0, previous: 0, older: 0 });
  } finally {
    await s.stop();
  }
});

test("renewTickets 'retired' (Node's own behaviour): a resumption brings no new ticket, so every third process does a full handshake", async () => {
  const s = await server('retired');
  try {
    const { outcomes } = await tenProcesses(s.port, 'retired');
    // Node's server sends two tickets after a full handshake and none after a resumption.
    expect(outcomes).toEqual(['full', 'resumed', 'resumed', 'full', 'resumed', 'resumed', 'full', 'resumed', 'resumed', 'full']);
    expect(s.reused).toEqual(outcomes.map((o) => o === 'resumed'));
    const tickets = s.ring!.stats(s.tlsServer).tickets;
    expect(tickets.decrypted.current).toBe(6);
    expect(tickets.renewed).toEqual({ ahead: 0, current: 0, previous: 0, older: 0 });
  } finally {
    await s.stop();
  }
});

describe.each([
  ["TicketKeyRing with renewTickets 'retired'", 'retired'],
  ['a plain Node server (its own ticket key, no ring)', 'none'],
] as const)('reuseTickets: true against %s', (_name, renewTickets) => {
  test('every process after the first resumes: the last ticket taken is offered again once the pool is empty', async () => {
    const s = await server(renewTickets);
    try {
      const { outcomes, results } = await tenProcesses(s.port, `reuse-${renewTickets}`, true);
      expect(outcomes).toEqual(FIRST_FULL_THEN_RESUMED);
      expect(s.reused).toEqual(outcomes.map((o) => o === 'resumed'));
      // Processes 2 and 3 take the two tickets of the full handshake; 4 to 10 offer the last one again.
      expect(results.map((r) => r.stats.reusedTickets)).toEqual([0, 0, 0, 1, 1, 1, 1, 1, 1, 1]);
      expect(results.map((r) => r.stats.notResumed)).toEqual(Array(PROCESSES).fill(0));
    } finally {
      await s.stop();
    }
  });
});
