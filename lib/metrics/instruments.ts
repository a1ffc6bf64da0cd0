/**
 * The instruments both collectors (prometheus.ts, opentelemetry.ts) register, described once:
 * each with its Prometheus name and its OpenTelemetry name, and the event handlers that feed
 * them. Labels hold outcomes and protocol names only (a handful of values each): no host, no
 * scope, nothing secret, and a bounded number of series.
 */
import { MetricsPeerMissingError } from '../errors';
import { CHANNELS, MISS_REASONS, subscribe, type ChannelName, type EventMap } from './events';

/** A label's Prometheus name and its OpenTelemetry attribute name. */
export const LABELS = {
  protocol: 'tls.protocol.version',
  mechanism: 'tls_session.mechanism',
  resumed: 'tls.resumed',
  reason: 'tls_session.miss.reason',
  outcome: 'tls_session.outcome',
  operation: 'tls_session.store.operation',
  offered: 'tls_session.offered',
  local_key: 'tls_session.local_key',
  created: 'tls_session.key.created',
  result: 'tls_session.result',
} as const;

export type Label = keyof typeof LABELS;

export interface InstrumentSpec {
  kind: 'counter' | 'histogram';
  /** Prometheus name without the prefix (counters end in _total, durations in _seconds). */
  prom: string;
  /** OpenTelemetry name (dots; the unit goes in `unit`). */
  otel: string;
  /** UCUM unit for OpenTelemetry ('s', '{handshake}', …). */
  unit: string;
  help: string;
  labels: readonly Label[];
  /** Histogram bucket boundaries (seconds). */
  buckets?: readonly number[];
}

const STORE_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
// Ticket keys live for rotationSeconds (default 3600) plus retentionSeconds (default 7200).
const KEY_AGE_SECONDS = [60, 300, 900, 1800, 3600, 5400, 7200, 10800, 14400, 21600, 43200, 86400];

export const INSTRUMENTS = {
  serverHandshakes: {
    kind: 'counter',
    prom: 'server_handshakes_total',
    otel: 'tls_session.server.handshakes',
    unit: '{handshake}',
    help: 'TLS handshakes completed by servers with attachSessionStore or TicketKeyRing, by protocol, mechanism and whether they resumed.',
    labels: ['protocol', 'mechanism', 'resumed'],
  },
  serverMisses: {
    kind: 'counter',
    prom: 'server_resumption_misses_total',
    otel: 'tls_session.server.resumption.misses',
    unit: '{handshake}',
    help: 'Full handshakes on those servers, by why they did not resume.',
    labels: ['reason'],
  },
  storeLookups: {
    kind: 'counter',
    prom: 'store_lookups_total',
    otel: 'tls_session.store.lookups',
    unit: '{lookup}',
    help: 'Session-ID lookups of attachSessionStore (TLS 1.3 random legacy IDs included), by outcome.',
    labels: ['outcome'],
  },
  storeDuration: {
    kind: 'histogram',
    prom: 'store_operation_duration_seconds',
    otel: 'tls_session.store.operation.duration',
    unit: 's',
    help: 'Time attachSessionStore spent in its store, by operation (get on the handshake path; set and delete behind it).',
    labels: ['operation'],
    buckets: STORE_SECONDS,
  },
  storeErrors: {
    kind: 'counter',
    prom: 'store_errors_total',
    otel: 'tls_session.store.errors',
    unit: '{error}',
    help: 'Store operations of attachSessionStore that failed or ran over their budget, by operation.',
    labels: ['operation'],
  },
  sessionsStored: {
    kind: 'counter',
    prom: 'sessions_stored_total',
    otel: 'tls_session.store.sessions.stored',
    unit: '{session}',
    help: 'TLS 1.2 sessions attachSessionStore wrote to its store.',
    labels: [],
  },
  sessionsEvicted: {
    kind: 'counter',
    prom: 'sessions_evicted_total',
    otel: 'tls_session.store.sessions.evicted',
    unit: '{session}',
    help: 'Stored sessions attachSessionStore deleted because they were expired or refused.',
    labels: [],
  },
  tickets: {
    kind: 'counter',
    prom: 'ticket_operations_total',
    otel: 'tls_session.ticket.operations',
    unit: '{ticket}',
    help: "TicketKeyRing's ticket-key callback calls, by outcome (issued, accepted, renewed, unknown-ticket-key, retired-ticket-key).",
    labels: ['outcome'],
  },
  ticketKeyAge: {
    kind: 'histogram',
    prom: 'ticket_key_age_seconds',
    otel: 'tls_session.ticket.key.age',
    unit: 's',
    help: 'Age of the ticket key (since its epoch began) when a ticket was opened, by outcome.',
    labels: ['outcome'],
    buckets: KEY_AGE_SECONDS,
  },
  keyRotations: {
    kind: 'counter',
    prom: 'ticket_key_rotations_total',
    otel: 'tls_session.ticket.key.rotations',
    unit: '{rotation}',
    help: 'Times the key sealing new tickets changed, by whether the new key is local to this process.',
    labels: ['local_key'],
  },
  keysAdopted: {
    kind: 'counter',
    prom: 'ticket_keys_adopted_total',
    otel: 'tls_session.ticket.key.adoptions',
    unit: '{key}',
    help: 'Fleet ticket keys taken from the store, by whether this process created them.',
    labels: ['created'],
  },
  localKeys: {
    kind: 'counter',
    prom: 'ticket_local_keys_total',
    otel: 'tls_session.ticket.key.local',
    unit: '{key}',
    help: 'Ticket keys made local to this process because the store could not give the fleet key.',
    labels: [],
  },
  keyStoreOutages: {
    kind: 'counter',
    prom: 'ticket_key_store_outages_total',
    otel: 'tls_session.ticket.key.store.outages',
    unit: '{outage}',
    help: "Times TicketKeyRing's store went from answering to failing.",
    labels: [],
  },
  clientHandshakes: {
    kind: 'counter',
    prom: 'client_handshakes_total',
    otel: 'tls_session.client.handshakes',
    unit: '{handshake}',
    help: 'ClientSessionCache connections, by protocol, mechanism, whether a session was offered and whether it resumed.',
    labels: ['protocol', 'mechanism', 'offered', 'resumed'],
  },
  clientNotOffered: {
    kind: 'counter',
    prom: 'client_not_offered_total',
    otel: 'tls_session.client.not_offered',
    unit: '{handshake}',
    help: 'ClientSessionCache connections that offered no session, by why.',
    labels: ['reason'],
  },
  clientLookupDuration: {
    kind: 'histogram',
    prom: 'client_lookup_duration_seconds',
    otel: 'tls_session.client.lookup.duration',
    unit: 's',
    help: 'Time ClientSessionCache spent finding a session before connecting.',
    labels: [],
    buckets: STORE_SECONDS,
  },
  clientSessionsStored: {
    kind: 'counter',
    prom: 'client_sessions_stored_total',
    otel: 'tls_session.client.sessions.stored',
    unit: '{session}',
    help: 'Client sessions (tickets) ClientSessionCache wrote to its store, by result (ok, error).',
    labels: ['result'],
  },
} as const satisfies Record<string, InstrumentSpec>;

export type InstrumentId = keyof typeof INSTRUMENTS;

/** A label value as events carry it (booleans become 'true' / 'false' in Prometheus). */
export type LabelValue = string | boolean;

/**
 * One labelled series of an instrument, made once per distinct label set and reused for every
 * later measurement: the hot path (one handshake) then allocates nothing, and a collector keeps
 * its per-series state on it (`state`).
 */
export interface Series {
  readonly id: InstrumentId;
  /** Label values in the order of the instrument's `labels`. */
  readonly values: readonly LabelValue[];
  /** Prometheus label names → values. */
  readonly labels: Readonly<Record<string, string>>;
  /** For the collector that made the series (its accumulator). */
  state: unknown;
}

type SeriesNode = Map<LabelValue, SeriesNode | Series>;

/** The i-th of the label values (a plain function, so a lookup allocates no closure). */
function nth(i: number, a?: LabelValue, b?: LabelValue, c?: LabelValue, d?: LabelValue): LabelValue {
  return (i === 0 ? a : i === 1 ? b : i === 2 ? c : d) as LabelValue;
}

/**
 * The series of every instrument, found by label values through one Map per label (no string
 * built, no object allocated once a series exists). Label values come from a handful of known
 * strings (protocol names, outcomes, reasons), so the number of series stays small.
 */
export class SeriesIndex {
  readonly #roots = new Map<InstrumentId, SeriesNode | Series>();
  readonly #create: (series: Series) => unknown;

  /** `create`: the collector's state for a new series. */
  constructor(create: (series: Series) => unknown) {
    this.#create = create;
  }

  /** The series of `id` with label values a, b, c, d (in the instrument's label order; unused ones omitted). */
  get(id: InstrumentId, a?: LabelValue, b?: LabelValue, c?: LabelValue, d?: LabelValue): Series {
    const arity = INSTRUMENTS[id].labels.length;
    const root = this.#roots.get(id);
    if (arity === 0) return (root as Series | undefined) ?? this.#make(id, [], undefined);
    let map = root as SeriesNode | undefined;
    if (map === undefined) this.#roots.set(id, (map = new Map()));
    for (let i = 0; i < arity - 1; i++) {
      const value = nth(i, a, b, c, d);
      let next = map.get(value) as SeriesNode | undefined;
      if (next === undefined) map.set(value, (next = new Map()));
      map = next;
    }
    return (map.get(nth(arity - 1, a, b, c, d)) as Series | undefined) ?? this.#make(id, [a, b, c, d].slice(0, arity) as LabelValue[], map);
  }

  #make(id: InstrumentId, values: LabelValue[], parent: SeriesNode | undefined): Series {
    const names = INSTRUMENTS[id].labels;
    const labels: Record<string, string> = {};
    names.forEach((name, i) => (labels[name] = String(values[i])));
    const series: Series = { id, values, labels, state: undefined };
    series.state = this.#create(series);
    if (parent) parent.set(values[values.length - 1]!, series);
    else this.#roots.set(id, series);
    return series;
  }
}

/** What a collector does with a measurement. */
export interface Sink {
  add(series: Series, value: number): void;
  observe(series: Series, value: number): void;
}

/** require(name) of an optional peer dependency, or MetricsPeerMissingError. */
export function loadPeer<T>(name: string): T {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(name) as T;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND') throw new MetricsPeerMissingError(name, error);
    throw error;
  }
}

const ms = (milliseconds: number): number => milliseconds / 1000;

/** Subscribes `sink` to every channel, resolving series in `index`; returns the function that unsubscribes it. */
export function feed(index: SeriesIndex, sink: Sink): () => void {
  const handlers: { [N in ChannelName]: (event: EventMap[N]) => void } = {
    [CHANNELS.serverHandshake]: (e) => {
      sink.add(index.get('serverHandshakes', e.protocol, e.mechanism, e.resumed), 1);
      if (e.missReason !== undefined) sink.add(index.get('serverMisses', e.missReason), 1);
    },
    [CHANNELS.serverLookup]: (e) => {
      sink.add(index.get('storeLookups', e.outcome), 1);
      if (e.outcome === 'store-error' || e.outcome === 'store-timeout') sink.add(index.get('storeErrors', 'get'), 1);
      if (e.outcome !== 'filtered') sink.observe(index.get('storeDuration', 'get'), ms(e.latencyMs));
    },
    [CHANNELS.serverStore]: (e) => {
      sink.observe(index.get('storeDuration', e.operation), ms(e.latencyMs));
      if (!e.ok) sink.add(index.get('storeErrors', e.operation), 1);
      else sink.add(index.get(e.operation === 'set' ? 'sessionsStored' : 'sessionsEvicted'), 1);
    },
    [CHANNELS.ringTicket]: (e) => {
      sink.add(index.get('tickets', e.outcome), 1);
      if (e.outcome !== 'issued' && e.keyAgeSeconds !== undefined) sink.observe(index.get('ticketKeyAge', e.outcome), e.keyAgeSeconds);
    },
    [CHANNELS.ringRotation]: (e) => sink.add(index.get('keyRotations', e.localKey), 1),
    [CHANNELS.ringKeyAdopted]: (e) => sink.add(index.get('keysAdopted', e.created), 1),
    [CHANNELS.ringLocalKey]: () => sink.add(index.get('localKeys'), 1),
    [CHANNELS.ringStore]: (e) => {
      if (e.state === 'outage') sink.add(index.get('keyStoreOutages'), 1);
    },
    [CHANNELS.clientHandshake]: (e) => {
      sink.add(index.get('clientHandshakes', e.protocol, e.mechanism, e.offered, e.resumed), 1);
      if (e.notOfferedReason !== undefined) sink.add(index.get('clientNotOffered', e.notOfferedReason), 1);
      if (e.lookupLatencyMs !== undefined) sink.observe(index.get('clientLookupDuration'), ms(e.lookupLatencyMs));
    },
    [CHANNELS.clientStore]: (e) => sink.add(index.get('clientSessionsStored', e.ok ? 'ok' : 'error'), 1),
  };
  const unsubscribers = (Object.keys(handlers) as ChannelName[]).map((name) =>
    subscribe(name, (event) => {
      try {
        (handlers[name] as (event: unknown) => void)(event);
      } catch {
        /* a metric must never break a handshake */
      }
    }),
  );
  return () => unsubscribers.forEach((unsubscribe) => unsubscribe());
}

/** Series worth showing at 0 before the first event (so rate() and dashboards see them): instrument, then label values. */
export const INITIAL_SERIES: ReadonlyArray<readonly [InstrumentId, ...LabelValue[]]> = [
  // Every series of a ratio present from the first scrape: rate() then extrapolates numerator and denominator alike.
  ...(['TLSv1.2', 'TLSv1.3'] as const).flatMap((protocol) => [
    ['serverHandshakes', protocol, 'none', false] as const,
    ['serverHandshakes', protocol, 'ticket', true] as const,
    ...(protocol === 'TLSv1.2' ? [['serverHandshakes', protocol, 'session-id', true] as const] : []),
  ]),
  ...MISS_REASONS.map((reason) => ['serverMisses', reason] as const),
  ['sessionsStored'],
  ['sessionsEvicted'],
  ['localKeys'],
  ['keyStoreOutages'],
];
