/**
 * The configurations `npm run bench:handshake` measures, and which reference each is compared
 * with (always a configuration measured in the same run, in alternating trials).
 */
import type { DevKeyType } from '../../examples/dev-cert';

export type Group = 'tls12' | 'tls13' | 'cluster';
export type StoreKind = 'memory' | 'sqlite' | 'redis';

export interface BenchConfig {
  /** Stable name, used by --configs and in the JSON. */
  id: string;
  group: Group;
  /** TLS 1.2 session IDs (tickets off on both sides) or TLS 1.3 (tickets). */
  protocol: 'TLSv1.2' | 'TLSv1.3';
  /**
   * Tickets on, on both sides. TLS 1.2: resumption by ticket instead of session ID. nginx:
   * ssl_session_tickets on (TLS 1.3 too; a Node server always has TLS 1.3 tickets).
   */
  tickets?: boolean;
  /** Who serves: a Node server process (absent) or nginx, the external anchor (bench/handshake/nginx.ts). */
  server?: 'nginx';
  /** Clients offer the last session they received. */
  resume: boolean;
  /** What the server has on its session events. */
  /**
   * map-async: the Map answered one promise later (what any asynchronous store API costs by itself).
   * nginx: no Node server at all, nginx's own shared session cache (server: 'nginx').
   * readme: attachSessionStore and a TicketKeyRing on one store, both sealed: the README's server.
   */
  listener: 'none' | 'map' | 'map-async' | 'store' | 'ring' | 'readme' | 'nginx';
  store?: StoreKind;
  sealed?: boolean;
  lookup?: 'written' | 'all' | 'issued';
  /**
   * The store without its getNow (SessionStore#getNow): attachSessionStore answers resumeSession
   * one promise later, as it did before the same-turn answer (that change's before/after in one run).
   */
  asyncGet?: boolean;
  /**
   * RedisStore over a client whose mgetBuffer is hidden: one GET per lookup instead of a turn's
   * lookups batched into one MGET (that change's before/after in one run).
   */
  unbatchedGets?: boolean;
  /** TicketKeyRing's renewTickets (default 'always'). */
  renewTickets?: 'always' | 'retired';
  /**
   * tls-session's metrics: 'prometheus' (collectPrometheusMetrics on a prom-client Registry, so
   * every handshake publishes and counts), 'stopped' (the collector started and stopped again:
   * the channels have no subscriber, as in a process that never asked for metrics).
   */
  metrics?: 'prometheus' | 'stopped';
  /** Node cluster workers (0: one process). */
  workers: number;
  /** Reference for server CPU per handshake. */
  cpuReference?: string;
  /** Reference for handshakes per second (the group's full handshake). */
  throughputReference: string;
  /** In the --quick set. */
  quick?: boolean;
}

const t12 = (id: string, rest: Partial<BenchConfig>): BenchConfig => ({
  id: `tls12 ${id}`,
  group: 'tls12',
  protocol: 'TLSv1.2',
  resume: false,
  listener: 'none',
  workers: 0,
  throughputReference: 'tls12 full',
  ...rest,
});
const t13 = (id: string, rest: Partial<BenchConfig>): BenchConfig => ({
  id: `tls13 ${id}`,
  group: 'tls13',
  protocol: 'TLSv1.3',
  resume: false,
  listener: 'none',
  workers: 0,
  throughputReference: 'tls13 full',
  ...rest,
});
const cl = (id: string, rest: Partial<BenchConfig>): BenchConfig => ({
  id: `cluster2 ${id}`,
  group: 'cluster',
  protocol: 'TLSv1.2',
  resume: true,
  listener: 'none',
  workers: 2,
  throughputReference: 'cluster2 full',
  ...rest,
});

/** nginx rows: each compared (CPU and throughput) with nginx's full handshake of its protocol. */
const ngx = (id: string, rest: Partial<BenchConfig> & Pick<BenchConfig, 'protocol'>): BenchConfig => {
  const full = `nginx ${rest.protocol === 'TLSv1.2' ? 'tls12' : 'tls13'} full`;
  return {
    id: `nginx ${id}`,
    group: rest.protocol === 'TLSv1.2' ? 'tls12' : 'tls13',
    resume: false,
    listener: 'nginx',
    server: 'nginx',
    workers: 0,
    throughputReference: full,
    cpuReference: rest.resume ? full : undefined,
    ...rest,
  };
};

const resumedStore = (store: StoreKind, sealed: boolean): BenchConfig =>
  t12(`resumed ${store}${sealed ? '+seal' : ''}`, {
    resume: true,
    listener: 'store',
    store,
    sealed,
    cpuReference: 'tls12 resumed Map',
    quick: store !== 'redis' && sealed,
  });

const fullStore = (store: StoreKind): BenchConfig =>
  t12(`full +${store}+seal`, { listener: 'store', store, sealed: true, cpuReference: 'tls12 full +Map', quick: store === 'sqlite' });

export const CONFIGS: BenchConfig[] = [
  t12('full', { quick: true }),
  t12('full +Map', { listener: 'map', cpuReference: 'tls12 full', quick: true }),
  // A/A control: the same configuration again. Its ratio to 'tls12 full +Map' is this run's noise floor.
  t12('full +Map (A/A control)', { listener: 'map', cpuReference: 'tls12 full +Map', quick: true }),
  fullStore('memory'),
  fullStore('sqlite'),
  fullStore('redis'),
  t12('resumed Map', { resume: true, listener: 'map', cpuReference: 'tls12 full', quick: true }),
  t12('resumed Map async', { resume: true, listener: 'map-async', cpuReference: 'tls12 resumed Map' }),
  resumedStore('memory', false),
  resumedStore('memory', true),
  resumedStore('sqlite', false),
  resumedStore('sqlite', true),
  // Before/after of the same-turn answer (SessionStore#getNow): the same store, its getNow hidden.
  t12('resumed sqlite+seal (async get)', {
    resume: true,
    listener: 'store',
    store: 'sqlite',
    sealed: true,
    asyncGet: true,
    cpuReference: 'tls12 resumed sqlite+seal',
    quick: true,
  }),
  resumedStore('redis', false),
  resumedStore('redis', true),
  t12('resumed redis (one GET each)', {
    resume: true,
    listener: 'store',
    store: 'redis',
    unbatchedGets: true,
    cpuReference: 'tls12 resumed redis',
  }),
  // Node's own tickets, no tls-session (OpenSSL's default ticket keys): what nginx's tickets are compared with.
  t12('resumed tickets (Node default)', { resume: true, tickets: true, cpuReference: 'tls12 full' }),
  t13('full', { quick: true }),
  t13('full +sqlite+seal', { listener: 'store', store: 'sqlite', sealed: true, cpuReference: 'tls13 full', quick: true }),
  t13('full +redis+seal', { listener: 'store', store: 'redis', sealed: true, cpuReference: 'tls13 full' }),
  t13('full +redis+seal lookup=issued', { listener: 'store', store: 'redis', sealed: true, lookup: 'issued', cpuReference: 'tls13 full' }),
  t13('resumed TicketKeyRing', { resume: true, listener: 'ring', store: 'memory', sealed: true, cpuReference: 'tls13 full' }),
  t13('resumed tickets (Node default)', { resume: true, cpuReference: 'tls13 full', quick: true }),
  // Issue 24: the README's servers (attachSessionStore + TicketKeyRing on one store) vs Node's own tickets.
  t13('resumed TicketKeyRing renew=retired', {
    resume: true,
    listener: 'ring',
    store: 'memory',
    sealed: true,
    renewTickets: 'retired',
    cpuReference: 'tls13 resumed tickets (Node default)',
  }),
  t13('resumed README sqlite', {
    resume: true,
    listener: 'readme',
    store: 'sqlite',
    sealed: true,
    cpuReference: 'tls13 resumed tickets (Node default)',
    quick: true,
  }),
  t13('resumed README redis', {
    resume: true,
    listener: 'readme',
    store: 'redis',
    sealed: true,
    cpuReference: 'tls13 resumed tickets (Node default)',
  }),
  // Before the fleet-wide filter of written keys: every TLS 1.3 ClientHello's legacy ID looked up in Redis.
  t13('resumed README redis lookup=all', {
    resume: true,
    listener: 'readme',
    store: 'redis',
    sealed: true,
    lookup: 'all',
    cpuReference: 'tls13 resumed README redis',
  }),
  // Issue 23: the Prometheus collector on vs off, on the resumed paths it observes most per CPU.
  t12('resumed memory+seal +prometheus', {
    resume: true,
    listener: 'store',
    store: 'memory',
    sealed: true,
    metrics: 'prometheus',
    cpuReference: 'tls12 resumed memory+seal',
    quick: true,
  }),
  // A/A-like: no subscriber (collector started and stopped) vs never started: the events' cost when nobody listens.
  t12('resumed memory+seal, metrics off (A/A-like)', {
    resume: true,
    listener: 'store',
    store: 'memory',
    sealed: true,
    metrics: 'stopped',
    cpuReference: 'tls12 resumed memory+seal',
    quick: true,
  }),
  t13('resumed TicketKeyRing +prometheus', {
    resume: true,
    listener: 'ring',
    store: 'memory',
    sealed: true,
    metrics: 'prometheus',
    cpuReference: 'tls13 resumed TicketKeyRing',
    quick: true,
  }),
  // Issue 24: nginx, 1 worker, shared session cache, as the external anchor (run only when nginx is installed).
  ngx('tls12 full', { protocol: 'TLSv1.2' }),
  ngx('tls12 resumed session IDs', { protocol: 'TLSv1.2', resume: true }),
  ngx('tls12 resumed tickets', { protocol: 'TLSv1.2', resume: true, tickets: true }),
  ngx('tls13 full', { protocol: 'TLSv1.3', tickets: true }),
  ngx('tls13 resumed tickets', { protocol: 'TLSv1.3', resume: true, tickets: true }),
  cl('full', { resume: false }),
  cl('resumed Map/worker', { listener: 'map', cpuReference: 'cluster2 full' }),
  cl('resumed sqlite+seal shared', { listener: 'store', store: 'sqlite', sealed: true, cpuReference: 'cluster2 resumed Map/worker' }),
];

export const KEY_TYPES: DevKeyType[] = ['rsa2048', 'p256'];

/** The targets of issue 14, each a ratio of two configurations measured in the same run. */
export interface Target {
  name: string;
  config: string;
  reference: string;
  metric: 'cpu' | 'throughput';
  /** cpu: at most; throughput: at least. */
  bound: number;
}

export const TARGETS: Target[] = [
  ...['memory+seal', 'sqlite+seal'].map((s): Target => ({
    name: `resumed through attachSessionStore (${s}) vs bare Map: server CPU`,
    config: `tls12 resumed ${s}`,
    reference: 'tls12 resumed Map',
    metric: 'cpu',
    bound: 1.1,
  })),
  ...['memory', 'sqlite'].map((s): Target => ({
    name: `full handshake storing its session (${s}+seal) vs Map listener: server CPU`,
    config: `tls12 full +${s}+seal`,
    reference: 'tls12 full +Map',
    metric: 'cpu',
    bound: 1.05,
  })),
  ...['sqlite+seal', 'redis+seal lookup=issued', 'redis+seal'].map((s): Target => ({
    name: `TLS 1.3 with a store attached (${s}) vs none: handshakes/s`,
    config: `tls13 full +${s}`,
    reference: 'tls13 full',
    metric: 'throughput',
    bound: 0.95,
  })),
  // Issue 24, target 1: the README's servers resume TLS 1.3 as cheaply as Node with its own tickets.
  ...['sqlite', 'redis'].flatMap((store): Target[] => [
    {
      name: `TLS 1.3 resumed, README server (${store}) vs Node's default tickets: handshakes/s`,
      config: `tls13 resumed README ${store}`,
      reference: 'tls13 resumed tickets (Node default)',
      metric: 'throughput',
      bound: 0.97,
    },
    {
      name: `TLS 1.3 resumed, README server (${store}) vs Node's default tickets: server CPU`,
      config: `tls13 resumed README ${store}`,
      reference: 'tls13 resumed tickets (Node default)',
      metric: 'cpu',
      bound: 1.03,
    },
  ]),
  // Issue 24, target 2: TLS 1.2 session IDs through RedisStore.
  ...['redis', 'redis+seal'].map((s): Target => ({
    name: `TLS 1.2 resumed through RedisStore (${s}) vs bare Map: server CPU`,
    config: `tls12 resumed ${s}`,
    reference: 'tls12 resumed Map',
    metric: 'cpu',
    bound: 1.1,
  })),
  ...['tls12 resumed memory+seal', 'tls13 resumed TicketKeyRing'].map((config): Target => ({
    name: `${config} with the Prometheus collector on vs off: server CPU`,
    config: `${config} +prometheus`,
    reference: config,
    metric: 'cpu',
    bound: 1.02,
  })),
];
