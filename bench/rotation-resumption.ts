/**
 * Resumption across ticket-key rotations: what share of clients loses resumption because a key
 * rotation fell between getting a ticket and coming back, before and after the overlap.
 *
 * Two fleet members (TLS 1.3 servers A and B, one TicketKeyRing each on one MemoryStore) rotate
 * every `--rotation` seconds (default 2). Each of `--clients` clients (default 200) gets a ticket
 * from A at a random moment over two rotation periods, waits a random time up to one rotation
 * period, and comes back to B with it. Run twice:
 *
 *   before  the setTicketKeys path: one ticket key per server, replaced at each rotation (what the
 *           ring did before the ticket-key callback; forced here as a Node without the internal
 *           looks: enableTicketKeyCallback deleted on each server's own context);
 *   after   the ticket-key callback: the current key seals, the previous ones open and renew
 *           tickets for `--retention` seconds (default two rotation periods) after they stop sealing.
 *
 * A client whose return falls in a later epoch than its ticket "crossed a rotation". Expected
 * before: about half the clients cross (the wait is uniform over one period) and all of those
 * lose resumption; after: none. Prints a table and one JSON line.
 *
 *   node -r ./test/persist/fixtures/register-ts.js bench/rotation-resumption.ts [--clients N] [--rotation S] [--retention S]
 *
 * (or `node dist/bench/rotation-resumption.js` after `npm run build:ts`). Needs the openssl CLI
 * (a throwaway P-256 certificate). The first mode's setTicketKeys warning goes to stderr.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { MemoryStore, TicketKeyRing } from '../lib/persist';
import { devCertificate } from '../examples/dev-cert';

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  const value = at >= 0 ? Number(process.argv[at + 1]) : fallback;
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`--${name} must be an integer >= 1`);
  return value;
}

const CLIENTS = option('clients', 200);
const ROTATION_SECONDS = option('rotation', 2);
const RETENTION_SECONDS = option('retention', 2 * ROTATION_SECONDS);

type Mode = 'before' | 'after';

interface ClientResult {
  crossed: boolean;
  resumed: boolean;
}

const epochNow = () => Math.floor(Date.now() / 1000 / ROTATION_SECONDS);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One connection: handshake, read until the server closes; the last ticket Node handed out. */
function connect(port: number, ca: Buffer, session?: Buffer): Promise<{ reused: boolean; session: Buffer | undefined }> {
  return new Promise((resolve, reject) => {
    let received: Buffer | undefined;
    let reused = false;
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca, session });
    socket.once('secureConnect', () => {
      reused = socket.isSessionReused();
    });
    socket.on('session', (ticket: Buffer) => {
      received = ticket;
    });
    socket.on('data', () => {});
    socket.once('error', reject);
    socket.once('close', () => resolve({ reused, session: received }));
  });
}

async function run(mode: Mode, pem: { key: Buffer; cert: Buffer }): Promise<ClientResult[]> {
  const store = new MemoryStore();
  const servers = [0, 1].map(() => {
    const server = tls.createServer(pem, (socket) => socket.end('hello'));
    if (mode === 'before') {
      const context = (server as unknown as { _sharedCreds: { context: object } })._sharedCreds.context;
      Object.defineProperty(context, 'enableTicketKeyCallback', { value: undefined, configurable: true });
    }
    return server;
  });
  const rings = servers.map(() => new TicketKeyRing({ store, rotationSeconds: ROTATION_SECONDS, retentionSeconds: RETENTION_SECONDS }));
  for (let i = 0; i < 2; i++) await rings[i]!.attach(servers[i]!);
  const ports = await Promise.all(
    servers.map(
      (server) =>
        new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port))),
    ),
  );
  try {
    const periodMs = ROTATION_SECONDS * 1000;
    return await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        await sleep(Math.random() * 2 * periodMs);
        const issued = await connect(ports[0]!, pem.cert);
        const issuedIn = epochNow();
        await sleep(Math.random() * periodMs);
        const returnedIn = epochNow();
        const back = await connect(ports[1]!, pem.cert, issued.session);
        return { crossed: returnedIn !== issuedIn, resumed: back.reused };
      }),
    );
  } finally {
    for (const ring of rings) ring.close();
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
    await store.close();
  }
}

function summary(results: ClientResult[]) {
  const crossed = results.filter((r) => r.crossed);
  const stayed = results.filter((r) => !r.crossed);
  return {
    clients: results.length,
    crossed: crossed.length,
    resumed: results.filter((r) => r.resumed).length,
    resumedCrossed: crossed.filter((r) => r.resumed).length,
    resumedWithin: stayed.filter((r) => r.resumed).length,
    lost: results.filter((r) => !r.resumed).length,
  };
}

async function main(): Promise<void> {
  // A throwaway certificate: made in a temporary directory, removed at the end.
  const certDir = mkdtempSync(join(tmpdir(), 'tls-session-bench-'));
  const pem = devCertificate(certDir);
  rmSync(certDir, { recursive: true, force: true });
  const pct = (part: number, whole: number) => (whole === 0 ? '-' : `${((100 * part) / whole).toFixed(1)}%`);
  const rows: Array<[string, ReturnType<typeof summary>]> = [];
  for (const mode of ['before', 'after'] as const) rows.push([mode, summary(await run(mode, pem))]);
  console.log(
    `${CLIENTS} clients, Node ${process.version}, rotation every ${ROTATION_SECONDS} s, retention ${RETENTION_SECONDS} s, ` +
      `return after 0-${ROTATION_SECONDS} s (uniform)`,
  );
  console.log('mode    crossed a rotation  resumed (all)   resumed (crossed)    resumed (same epoch)  lost resumption');
  for (const [mode, s] of rows) {
    console.log(
      `${mode.padEnd(8)}${String(s.crossed).padEnd(20)}${`${s.resumed} (${pct(s.resumed, s.clients)})`.padEnd(16)}` +
        `${`${s.resumedCrossed} of ${s.crossed} (${pct(s.resumedCrossed, s.crossed)})`.padEnd(21)}` +
        `${`${s.resumedWithin} of ${s.clients - s.crossed}`.padEnd(22)}${s.lost} (${pct(s.lost, s.clients)})`,
    );
  }
  console.log(
    JSON.stringify({
      nodeVersion: process.version,
      rotationSeconds: ROTATION_SECONDS,
      retentionSeconds: RETENTION_SECONDS,
      ...Object.fromEntries(rows),
    }),
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
