/**
 * npm run bench:tickets — clients that connect once per process (issue 24, target 4): does every
 * process after the first resume its TLS 1.3 session?
 *
 *   npm run bench:tickets [-- --processes N] [-- --json FILE]      (builds dist/ first; default 10 processes)
 *
 * A TLS 1.3 node:tls server in this process (a throwaway P-256 certificate); `--processes` client
 * processes in a row (test/persist/fixtures/ticket-client.js, on dist/lib), each making one
 * connection through ClientSessionCache on one SQLite file per scenario, then exiting. Five
 * scenarios:
 *
 *   ring, renewTickets 'retired'             TicketKeyRing renewing only tickets of retired keys (Node's own policy)
 *   ring, default (renewTickets 'always')    TicketKeyRing as it comes: every ticket it opens is renewed
 *   ring 'retired' + client reuseTickets     the client offers its last ticket again when it has no other
 *   plain Node server (no ring)              Node's own ticket key, no renewal after a resumption
 *   plain Node server + client reuseTickets
 *
 * TLS 1.3 tickets are single-use and Node sends no new ticket after a resumption unless the
 * ticket-key callback renews: without renewal or reuse the client runs out every third process
 * (F R R F R R ...). Prints one line per scenario — the outcome of each process (F full handshake,
 * R resumed), how many resumed, whether the server saw the same, and the ring's ticket counts —
 * two target lines, and writes JSON (--json, else a dated file in the temp directory). Outcome
 * counts, not speed: nothing is timed.
 *
 * Needs the openssl CLI (the certificate). Temporary files are removed at the end.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { Command } from 'commander';
import { devCertificate } from '../examples/dev-cert';
import { MemoryStore, TicketKeyRing, type TicketRenewal } from '../lib';

interface Options {
  processes: number;
  json?: string;
}

const program = new Command()
  .name('bench:tickets')
  .option('--processes <n>', 'client processes in a row per scenario (one connection each)', Number, 10)
  .option('--json <file>', 'where to write the JSON results (default: a file in the temp directory)')
  .parse();
const options = program.opts<Options>();
const PROCESSES = options.processes;
if (!Number.isInteger(PROCESSES) || PROCESSES < 2) throw new RangeError('--processes must be an integer >= 2');

// The repository root, from bench/ (register-ts) or from dist/bench/ (compiled).
const ROOT = [join(__dirname, '..'), join(__dirname, '..', '..')].find((dir) => existsSync(join(dir, 'package.json')))!;
const CLIENT = join(ROOT, 'test', 'persist', 'fixtures', 'ticket-client.js');

interface Scenario {
  id: string;
  name: string;
  /** The ring's renewTickets ('default': the option not given), or no ring at all. */
  ring: TicketRenewal | 'default' | 'none';
  reuseTickets: boolean;
}

const SCENARIOS: readonly Scenario[] = [
  { id: 'ring-retired', name: "ring, renewTickets 'retired'", ring: 'retired', reuseTickets: false },
  { id: 'ring-default', name: "ring, default (renewTickets 'always')", ring: 'default', reuseTickets: false },
  { id: 'ring-retired-reuse', name: "ring 'retired' + client reuseTickets", ring: 'retired', reuseTickets: true },
  { id: 'plain', name: 'plain Node server (no ring)', ring: 'none', reuseTickets: false },
  { id: 'plain-reuse', name: 'plain Node server + client reuseTickets', ring: 'none', reuseTickets: true },
];

type Outcome = 'F' | 'R';

interface ClientResult {
  reused: boolean;
  protocol: string;
  stats: { reusedTickets: number };
}

interface ScenarioResult {
  id: string;
  name: string;
  renewTickets: TicketRenewal | null;
  reuseTickets: boolean;
  outcomes: Outcome[];
  serverOutcomes: Outcome[];
  serverAgrees: boolean;
  resumed: number;
  protocols: string[];
  /** Of the client's offers, tickets offered again (reuseTickets), summed over the processes. */
  ticketsOfferedAgain: number;
  /** The ring's counts for this server (decrypted / renewed summed over key ages); null without a ring. */
  ring: { issued: number; decrypted: number; renewed: number; rejected: number } | null;
}

/** One client process: one connection through ClientSessionCache on `db`; its JSON line. */
function client(config: Record<string, unknown>): Promise<ClientResult> {
  return new Promise((resolve, reject) => {
    // Asynchronously: the server runs on this event loop.
    execFile(process.execPath, [CLIENT, JSON.stringify(config)], { timeout: 30_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${error.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as ClientResult);
    });
  });
}

const sum = (counts: Record<string, number>): number => Object.values(counts).reduce((a, b) => a + b, 0);

async function run(scenario: Scenario, pem: { key: Buffer; cert: Buffer }, ca: string, dir: string): Promise<ScenarioResult> {
  const serverOutcomes: Outcome[] = [];
  const server = tls.createServer({ ...pem, minVersion: 'TLSv1.3' }, (socket) => socket.end('hello'));
  server.on('secureConnection', (socket: tls.TLSSocket) => serverOutcomes.push(socket.isSessionReused() ? 'R' : 'F'));
  const store = new MemoryStore();
  const ring =
    scenario.ring === 'none'
      ? undefined
      : new TicketKeyRing({ store, ...(scenario.ring !== 'default' && { renewTickets: scenario.ring }) });
  try {
    if (ring) await ring.attach(server);
    const port = await new Promise<number>((resolve) =>
      server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)),
    );
    const config = { db: join(dir, `${scenario.id}.db`), port, ca, ...(scenario.reuseTickets && { reuseTickets: true }) };
    const outcomes: Outcome[] = [];
    const protocols = new Set<string>();
    let ticketsOfferedAgain = 0;
    for (let i = 0; i < PROCESSES; i++) {
      const result = await client(config);
      outcomes.push(result.reused ? 'R' : 'F');
      protocols.add(result.protocol);
      ticketsOfferedAgain += result.stats.reusedTickets;
    }
    const tickets = ring?.stats(server).tickets;
    return {
      id: scenario.id,
      name: scenario.name,
      renewTickets: ring ? ring.renewTickets : null,
      reuseTickets: scenario.reuseTickets,
      outcomes,
      serverOutcomes,
      serverAgrees: serverOutcomes.join('') === outcomes.join(''),
      resumed: outcomes.filter((o) => o === 'R').length,
      protocols: [...protocols],
      ticketsOfferedAgain,
      ring: tickets
        ? {
            issued: tickets.issued,
            decrypted: sum({ ...tickets.decrypted }),
            renewed: sum({ ...tickets.renewed }),
            rejected: sum(tickets.rejected),
          }
        : null,
    };
  } finally {
    ring?.close();
    await new Promise((resolve) => server.close(resolve));
    await store.close();
  }
}

function line(r: ScenarioResult): string {
  return (
    `${r.name.padEnd(40)} ${r.outcomes.join(' ')}   resumed ${r.resumed}/${PROCESSES}` +
    `${r.reuseTickets ? `, tickets offered again ${r.ticketsOfferedAgain}` : ''}` +
    `${r.ring ? `, ring: issued ${r.ring.issued} decrypted ${r.ring.decrypted} renewed ${r.ring.renewed} rejected ${r.ring.rejected}` : ''}` +
    `${r.serverAgrees ? '' : `  (SERVER DISAGREES: ${r.serverOutcomes.join(' ')})`}` +
    `${r.protocols.length === 1 && r.protocols[0] === 'TLSv1.3' ? '' : `  (protocols: ${r.protocols.join(', ')})`}`
  );
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const dir = mkdtempSync(join(tmpdir(), 'tls-session-bench-tickets-'));
  const results: ScenarioResult[] = [];
  try {
    const pem = devCertificate(join(dir, 'cert'));
    // The clients read the CA from a file: this one, whatever devCertificate took it from.
    const ca = join(dir, 'ca.pem');
    writeFileSync(ca, pem.cert);
    console.log(
      `${PROCESSES} client processes in a row per scenario, one TLS 1.3 connection each through ClientSessionCache on one ` +
        `SQLite file; Node ${process.version}. F = full handshake, R = resumed (client and server agree unless said)`,
    );
    for (const scenario of SCENARIOS) {
      const result = await run(scenario, pem, ca, dir);
      results.push(result);
      console.log(line(result));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const byId = (id: string): ScenarioResult => results.find((r) => r.id === id)!;
  // Every process after the first resumed, on the client and on the server.
  const everyAfterFirst = (r: ScenarioResult): boolean => r.resumed === PROCESSES - 1 && r.serverAgrees;
  const target = (scenarios: ScenarioResult[]) => ({
    met: scenarios.every(everyAfterFirst),
    needed: PROCESSES - 1,
    resumed: Object.fromEntries(scenarios.map((r) => [r.id, r.resumed])),
  });
  const targets = {
    ringDefault: target([byId('ring-default')]),
    reuseTickets: target([byId('ring-retired-reuse'), byId('plain-reuse')]),
  };
  const counts = (t: ReturnType<typeof target>): string =>
    Object.values(t.resumed)
      .map((n) => `${n}/${t.needed}`)
      .join(', ');
  console.log(
    `issue 24 target 4: a server with TicketKeyRing (default) resumes every once-per-process client after the first: ` +
      `${targets.ringDefault.met ? 'met' : 'MISSED'} (resumed ${counts(targets.ringDefault)})`,
  );
  console.log(
    `issue 24 target 4: reuseTickets against a non-renewing server: ${targets.reuseTickets.met ? 'met' : 'MISSED'} ` +
      `(resumed ${counts(targets.reuseTickets)}: ring 'retired', plain Node server)`,
  );

  const file = options.json ?? join(tmpdir(), `tls-session-bench-tickets-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(
    file,
    JSON.stringify(
      { startedAt: startedAt.toISOString(), node: process.version, options: { processes: PROCESSES }, scenarios: results, targets },
      null,
      2,
    ),
  );
  console.log(`JSON: ${file}`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
});
