/**
 * One benchmark server process (or, with workers, a Node cluster primary and its workers).
 * Configured by the BENCH_SERVER environment variable (JSON, see ServerSpec); tells its parent
 * { type: 'ready', port } and answers { type: 'cpu' } with the CPU time its process (and its
 * workers) used so far, in microseconds. Secrets come in BENCH_SECRET (hex) and are never printed.
 */
import cluster from 'node:cluster';
import { constants } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as tls from 'node:tls';
import { Registry } from 'prom-client';
import { collectPrometheusMetrics } from '../../lib/metrics';
import { Redis } from 'ioredis';
import { attachSessionStore, MemoryStore, RedisStore, SessionStore, SqliteStore, TicketKeyRing } from '../../lib/persist';
import type { BenchConfig } from './configs';
import { prepareToggle, type SlicesRequest } from './toggle';
import { attachMapListeners, prepareStoreToggle } from './store-toggle';

export interface ServerSpec {
  config: BenchConfig;
  keyFile: string;
  certFile: string;
  /** SQLite file (shared by a cluster's workers). */
  sqlitePath: string;
  redisUrl?: string;
  /** Redis key prefix: each configuration its own. */
  redisPrefix: string;
  /** --metrics-cost: switch the metrics state in slices on request (bench/handshake/toggle.ts); config.metrics is ignored. */
  toggle?: boolean;
  /** --store-cost: switch between the Map listeners and attachSessionStore in slices (bench/handshake/store-toggle.ts). */
  storeToggle?: boolean;
}

interface CpuMessage {
  type: 'cpu';
  micros?: number;
}

const spec = JSON.parse(process.env.BENCH_SERVER ?? '{}') as ServerSpec;
const secret = Buffer.from(process.env.BENCH_SECRET ?? '', 'hex');
const send = (message: unknown): void => {
  process.send?.(message);
};
const ownCpu = (): number => {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
};

function makeStore(): SessionStore {
  const store = openStore();
  if (!spec.config.asyncGet) return store;
  // The same store, its getNow hidden: attachSessionStore's asynchronous path.
  return {
    get: (key) => store.get(key),
    set: (key, value, ttl) => store.set(key, value, ttl),
    delete: (key) => store.delete(key),
    ready: () => store.ready?.() ?? Promise.resolve(),
    close: () => store.close(),
    settlesWithinMs: store.settlesWithinMs,
  };
}

function openStore(): SessionStore {
  switch (spec.config.store) {
    case 'sqlite':
      return new SqliteStore({ path: spec.sqlitePath });
    case 'redis':
      if (spec.config.unbatchedGets) {
        // The same client with its mgetBuffer hidden: RedisStore then sends one GET per lookup,
        // as before it batched a turn's gets into one MGET (that change's before/after in one run).
        const client = new Redis(spec.redisUrl!, { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
        const hidden = new Proxy(client, {
          get: (target, name, receiver) => (name === 'mgetBuffer' ? undefined : Reflect.get(target, name, receiver)),
        });
        return new RedisStore({ client: hidden, keyPrefix: spec.redisPrefix });
      }
      return new RedisStore({ url: spec.redisUrl!, keyPrefix: spec.redisPrefix });
    default:
      return new MemoryStore({ maxEntries: 200_000, maxBytes: 256 * 1024 * 1024 });
  }
}

async function serve(): Promise<number> {
  const { config } = spec;
  const options: tls.TlsOptions & { noDelay: boolean } = {
    key: readFileSync(spec.keyFile),
    cert: readFileSync(spec.certFile),
    noDelay: true,
  };
  if (config.protocol === 'TLSv1.2') {
    Object.assign(options, { maxVersion: 'TLSv1.2', secureOptions: config.tickets ? 0 : constants.SSL_OP_NO_TICKET });
  } else options.minVersion = 'TLSv1.3';
  // TLS 1.3: Node writes the NewSessionTicket messages after 'secureConnection' has been emitted;
  // a socket ended synchronously in it closes before they are out, and the client never gets a
  // ticket (so never resumes). Ending one turn later lets them out. TLS 1.2 sends nothing after
  // the handshake: ended at once, as before.
  const endNow = config.protocol === 'TLSv1.2';
  const onSecure = (socket: tls.TLSSocket): void => {
    socket.on('error', () => undefined);
    if (endNow) socket.end();
    else setImmediate(() => socket.end());
  };
  const server = tls.createServer(options, onSecure);
  server.on('tlsClientError', () => undefined);
  if (spec.storeToggle) {
    // --store-cost: the toggle attaches the Map or the store, slice by slice. The store's
    // written-key filter is held for the whole run (detach releases the attachment's own hold):
    // a server attaches once, so its filter is not reloaded at every switch.
    const store = makeStore();
    store.trackWrittenKeys?.('session:');
    const run = prepareStoreToggle(server, () => {
      const handle = attachSessionStore(server, {
        store,
        secret: config.sealed ? secret : undefined,
        lookup: config.lookup,
        onError: () => undefined,
      });
      return () => handle.detach();
    });
    process.on('message', (message: { type?: string }) => {
      if (message?.type === 'slices')
        run(message as SlicesRequest).then(send, (error: Error) => send({ type: 'error', message: error.message }));
    });
  } else if (config.listener === 'map' || config.listener === 'map-async') {
    // The reference: what a hand-written in-process cache costs.
    attachMapListeners(server, { later: config.listener === 'map-async' });
  } else if (config.listener === 'store') {
    const store = makeStore();
    const handle = attachSessionStore(server, {
      store,
      secret: config.sealed ? secret : undefined,
      lookup: config.lookup,
      onError: () => undefined,
    });
    process.on('message', (message: { type?: string }) => {
      if (message?.type === 'stats') send({ type: 'stats', stats: handle.stats() });
    });
  } else if (config.listener === 'ring') {
    const ring = new TicketKeyRing({ store: makeStore(), secret, renewTickets: config.renewTickets });
    await ring.attach(server);
  } else if (config.listener === 'readme') {
    // README.md's server: one store for TLS 1.2 session IDs and the fleet's ticket keys, sealed.
    const store = makeStore();
    const handle = attachSessionStore(server, { store, secret, lookup: config.lookup, onError: () => undefined });
    await new TicketKeyRing({ store, secret, renewTickets: config.renewTickets }).attach(server);
    process.on('message', (message: { type?: string }) => {
      if (message?.type === 'stats') send({ type: 'stats', stats: handle.stats() });
    });
  }
  if (spec.toggle) {
    const toggle = prepareToggle(server, [onSecure]);
    process.on('message', (message: { type?: string }) => {
      if (message?.type === 'slices') {
        toggle.run(message as SlicesRequest).then(send, (error: Error) => send({ type: 'error', message: error.message }));
      } else if (message?.type === 'unsubscribed') {
        send({ type: 'unsubscribed', ...toggle.measureUnsubscribed() });
      } else if (message?.type === 'replay') {
        send({ type: 'replay', ...toggle.measureReplay() });
      }
    });
  } else if (config.metrics) {
    const collector = collectPrometheusMetrics({ register: new Registry() });
    if (config.metrics === 'stopped') collector.stop();
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

async function main(): Promise<void> {
  if (spec.config.workers > 0 && cluster.isPrimary) {
    // The primary accepts connections and hands them to the workers (round robin): its CPU counts too.
    const workers = Array.from({ length: spec.config.workers }, () => cluster.fork({ ...process.env }));
    const port = await new Promise<number>((resolve) => {
      let listening = 0;
      cluster.on('listening', (_worker, address) => {
        listening += 1;
        if (listening === workers.length) resolve(address.port);
      });
    });
    process.on('message', async (message: { type?: string }) => {
      if (message?.type !== 'cpu') return;
      const parts = await Promise.all(
        workers.map(
          (worker) =>
            new Promise<number>((resolve) => {
              const onMessage = (reply: CpuMessage): void => {
                if (reply?.type !== 'cpu') return;
                worker.off('message', onMessage);
                resolve(reply.micros ?? 0);
              };
              worker.on('message', onMessage);
              worker.send({ type: 'cpu' });
            }),
        ),
      );
      send({ type: 'cpu', micros: ownCpu() + parts.reduce((a, b) => a + b, 0) });
    });
    process.on('disconnect', () => {
      for (const worker of workers) worker.kill();
      process.exit(0);
    });
    send({ type: 'ready', port });
    return;
  }
  const port = await serve();
  process.on('message', (message: { type?: string }) => {
    if (message?.type === 'cpu') send({ type: 'cpu', micros: ownCpu() });
  });
  process.on('disconnect', () => process.exit(0));
  if (!cluster.isWorker) send({ type: 'ready', port });
}

main().catch((error: Error) => {
  console.error(`bench server failed: ${error.message}`);
  process.exit(1);
});
