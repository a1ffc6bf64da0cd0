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
export type Labels = Partial<Record<Label, string | boolean>>;

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

/** What a collector does with a measurement. */
export interface Sink {
  add(id: InstrumentId, labels: Labels, value?: number): void;
  observe(id: InstrumentId, labels: Labels, value: number): void;
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

/** Subscribes `sink` to every channel; returns the function that unsubscribes it. */
export function feed(sink: Sink): () => void {
  const handlers: { [N in ChannelName]: (event: EventMap[N]) => void } = {
    [CHANNELS.serverHandshake]: (e) => {
      sink.add('serverHandshakes', { protocol: e.protocol, mechanism: e.mechanism, resumed: e.resumed });
      if (e.missReason !== undefined) sink.add('serverMisses', { reason: e.missReason });
    },
    [CHANNELS.serverLookup]: (e) => {
      sink.add('storeLookups', { outcome: e.outcome });
      if (e.outcome === 'store-error' || e.outcome === 'store-timeout') sink.add('storeErrors', { operation: 'get' });
      if (e.outcome !== 'filtered') sink.observe('storeDuration', { operation: 'get' }, ms(e.latencyMs));
    },
    [CHANNELS.serverStore]: (e) => {
      sink.observe('storeDuration', { operation: e.operation }, ms(e.latencyMs));
      if (!e.ok) sink.add('storeErrors', { operation: e.operation });
      else if (e.operation === 'set') sink.add('sessionsStored', {});
      else sink.add('sessionsEvicted', {});
    },
    [CHANNELS.ringTicket]: (e) => {
      sink.add('tickets', { outcome: e.outcome });
      if (e.outcome !== 'issued' && e.keyAgeSeconds !== undefined) sink.observe('ticketKeyAge', { outcome: e.outcome }, e.keyAgeSeconds);
    },
    [CHANNELS.ringRotation]: (e) => sink.add('keyRotations', { local_key: e.localKey }),
    [CHANNELS.ringKeyAdopted]: (e) => sink.add('keysAdopted', { created: e.created }),
    [CHANNELS.ringLocalKey]: () => sink.add('localKeys', {}),
    [CHANNELS.ringStore]: (e) => {
      if (e.state === 'outage') sink.add('keyStoreOutages', {});
    },
    [CHANNELS.clientHandshake]: (e) => {
      sink.add('clientHandshakes', { protocol: e.protocol, mechanism: e.mechanism, offered: e.offered, resumed: e.resumed });
      if (e.notOfferedReason !== undefined) sink.add('clientNotOffered', { reason: e.notOfferedReason });
      if (e.lookupLatencyMs !== undefined) sink.observe('clientLookupDuration', {}, ms(e.lookupLatencyMs));
    },
    [CHANNELS.clientStore]: (e) => sink.add('clientSessionsStored', { result: e.ok ? 'ok' : 'error' }),
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

/** Series worth showing at 0 before the first event (so rate() and dashboards see them). */
export const INITIAL_SERIES: ReadonlyArray<[InstrumentId, Labels]> = [
  // Every series of a ratio present from the first scrape: rate() then extrapolates numerator and denominator alike.
  ...(['TLSv1.2', 'TLSv1.3'] as const).flatMap((protocol): Array<[InstrumentId, Labels]> => [
    ['serverHandshakes', { protocol, mechanism: 'none', resumed: false }],
    ['serverHandshakes', { protocol, mechanism: 'ticket', resumed: true }],
    ...(protocol === 'TLSv1.2'
      ? [['serverHandshakes', { protocol, mechanism: 'session-id', resumed: true }] as [InstrumentId, Labels]]
      : []),
  ]),
  ...MISS_REASONS.map((reason): [InstrumentId, Labels] => ['serverMisses', { reason }]),
  ['sessionsStored', {}],
  ['sessionsEvicted', {}],
  ['localKeys', {}],
  ['keyStoreOutages', {}],
];
