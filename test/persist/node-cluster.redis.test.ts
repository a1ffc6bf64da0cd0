/**
 * Node `cluster`: two TLS workers on one port (round-robin), each with its own TicketKeyRing on
 * one redis-server (fixtures/cluster-primary.js). In a worker, listen() sets the primary's cached
 * ticket keys on the context (Server#_setServerData); after a rotation a restarted worker would
 * serve that stale key. The ring owns the keys anyway: through the ticket-key callback, which
 * listen() does not touch (a ticket from before the rotation resumes on both workers, the
 * restarted one included, until its retention has passed), and in the setTicketKeys fallback by
 * applying its key again on 'listening' (fresh tickets resume across the workers; tickets from
 * before a rotation do not: one key per server).
 */
import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { makePki, Pki } from '../helpers/pki';
import { RedisServer, startRedis } from './helpers/redis-server';
import { handshake, HandshakeResult } from './helpers/tls-peers';
import { epochEndMs, lateInEpoch, waitFor } from './helpers/rotation';

const FIXTURE = join(__dirname, 'fixtures', 'cluster-primary.js');
const ROTATION_SECONDS = 3;
const RETENTION_SECONDS = 8;

let pki: Pki;
let redis: RedisServer;
beforeAll(async () => {
  pki = makePki();
  redis = await startRedis();
});
afterAll(async () => {
  await redis.stop();
});

interface Event {
  event: 'listening' | 'stats';
  worker: number;
  port?: number;
  stats?: { mode: string; tickets: { renewed: { previous: number }; decrypted: { current: number } } };
}

/** The cluster's primary process and what it printed. */
function startCluster(fallback: boolean) {
  const config = {
    url: redis.url,
    secretHex: randomBytes(32).toString('hex'),
    certPath: pki.serverCertPath,
    keyPath: pki.serverKeyPath,
    rotationSeconds: ROTATION_SECONDS,
    retentionSeconds: RETENTION_SECONDS,
    workers: 2,
    fallback,
  };
  const child: ChildProcess = spawn(process.execPath, [FIXTURE, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const events: Event[] = [];
  let buffered = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      events.push(JSON.parse(buffered.slice(0, newline)) as Event);
      buffered = buffered.slice(newline + 1);
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const listeningWorkers = () => events.filter((e) => e.event === 'listening').map((e) => e.worker);
  return {
    child,
    events,
    stderr: () => stderr,
    listeningWorkers,
    port: () => events.find((e) => e.event === 'listening')!.port!,
    send(command: object) {
      child.stdin!.write(`${JSON.stringify(command)}\n`);
    },
    async statsOf(worker: number) {
      const before = events.length;
      child.stdin!.write(`${JSON.stringify({ cmd: 'stats' })}\n`);
      await waitFor(() => events.slice(before).some((e) => e.event === 'stats' && e.worker === worker), `stats of worker ${worker}`);
      return events.slice(before).find((e) => e.event === 'stats' && e.worker === worker)!.stats!;
    },
  };
}

/** Connections in a row (round-robin spreads them over the workers): which worker, and whether it resumed. */
async function offer(port: number, session: Buffer | undefined, count: number): Promise<Array<HandshakeResult & { worker: number }>> {
  const results = [];
  for (let i = 0; i < count; i++) {
    const result = await handshake(pki, port, session);
    results.push({ ...result, worker: Number(result.data) });
  }
  return results;
}

describe.each([
  ['callback', false],
  ['setTicketKeys (fallback)', true],
] as const)('2 workers, %s: a rotation, then a worker restarted', (_mode, fallback) => {
  test('tickets across the workers and the rotation resume as documented', async () => {
    const cluster = startCluster(fallback);
    try {
      await waitFor(() => cluster.listeningWorkers().length === 2, `two workers listening (stderr: ${cluster.stderr()})`);
      const port = cluster.port();
      const { result: issued, epoch } = await lateInEpoch(ROTATION_SECONDS, () => handshake(pki, port));
      expect(issued.reused).toBe(false);

      // After the rotation: restart the first worker; its replacement listens on the shared port.
      await waitFor(() => Date.now() > epochEndMs(epoch, ROTATION_SECONDS) + 200, 'the rotation');
      const [first, second] = cluster.listeningWorkers();
      cluster.send({ cmd: 'restart', worker: first });
      await waitFor(() => cluster.listeningWorkers().length === 3, 'the restarted worker to listen');
      const restarted = cluster.listeningWorkers()[2]!;

      const old = await offer(port, issued.session, 6);
      expect(new Set(old.map((r) => r.worker))).toEqual(new Set([second, restarted]));
      // Fresh tickets: each one is offered on the next connection, which goes to the other worker.
      const fresh: boolean[] = [];
      for (let i = 0; i < 6; i++) {
        const [made] = await offer(port, undefined, 1);
        const [resumed] = await offer(port, made!.session, 1);
        expect(resumed!.worker).not.toBe(made!.worker);
        fresh.push(resumed!.reused);
      }
      expect(fresh).toEqual([true, true, true, true, true, true]);

      if (!fallback) {
        expect(old.map((r) => r.reused)).toEqual([true, true, true, true, true, true]);
        const stats = await cluster.statsOf(restarted);
        expect(stats.mode).toBe('callback');
        expect(stats.tickets.renewed.previous).toBeGreaterThanOrEqual(1);
        // Past its retention the ticket from before the rotation is refused by both workers.
        await waitFor(() => Date.now() > epochEndMs(epoch, ROTATION_SECONDS) + RETENTION_SECONDS * 1000 + 100, 'the retention to pass');
        expect((await offer(port, issued.session, 2)).map((r) => r.reused)).toEqual([false, false]);
      } else {
        // One key per server: what was issued before the rotation gets a full handshake.
        expect(old.map((r) => r.reused)).toEqual([false, false, false, false, false, false]);
        expect((await cluster.statsOf(restarted)).mode).toBe('setTicketKeys');
      }
      expect(cluster.child.exitCode).toBeNull();
    } finally {
      cluster.child.kill('SIGTERM');
    }
  }, 90_000);
});
