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
  /** Clients offer the last session they received. */
  resume: boolean;
  /** What the server has on its session events. */
  /** map-async: the Map answered one promise later (what any asynchronous store API costs by itself). */
  listener: 'none' | 'map' | 'map-async' | 'store' | 'ring';
  store?: StoreKind;
  sealed?: boolean;
  lookup?: 'all' | 'issued';
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
  resumedStore('redis', false),
  resumedStore('redis', true),
  t13('full', { quick: true }),
  t13('full +sqlite+seal', { listener: 'store', store: 'sqlite', sealed: true, cpuReference: 'tls13 full', quick: true }),
  t13('full +redis+seal', { listener: 'store', store: 'redis', sealed: true, cpuReference: 'tls13 full' }),
  t13('full +redis+seal lookup=issued', { listener: 'store', store: 'redis', sealed: true, lookup: 'issued', cpuReference: 'tls13 full' }),
  t13('resumed TicketKeyRing', { resume: true, listener: 'ring', store: 'memory', sealed: true, cpuReference: 'tls13 full' }),
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
  ...['tls12 resumed memory+seal', 'tls13 resumed TicketKeyRing'].map((config): Target => ({
    name: `${config} with the Prometheus collector on vs off: server CPU`,
    config: `${config} +prometheus`,
    reference: config,
    metric: 'cpu',
    bound: 1.02,
  })),
];
