/** Observability: diagnostics_channel events and the Prometheus / OpenTelemetry collectors over them (docs/METRICS.md). */
export { CHANNELS, MISS_REASONS, subscribe, publishClientHandshake, publishClientStore, resumptionMechanism } from './events';
export type {
  ChannelName,
  EventMap,
  Mechanism,
  MissReason,
  LookupMissReason,
  TicketMissReason,
  ClientNotOfferedReason,
  ServerHandshakeEvent,
  ServerLookupEvent,
  ServerStoreEvent,
  RingTicketEvent,
  RingRotationEvent,
  RingKeyAdoptedEvent,
  RingLocalKeyEvent,
  RingStoreEvent,
  ClientHandshakeEvent,
  ClientStoreEvent,
} from './events';
export { INSTRUMENTS } from './instruments';
export { MetricsPeerMissingError } from '../errors';
export { collectPrometheusMetrics } from './prometheus';
export type { PrometheusCollectorOptions, PrometheusRegistry, MetricsCollector, PrometheusMetricsCollector } from './prometheus';
export { collectOpenTelemetryMetrics } from './opentelemetry';
export type { OpenTelemetryCollectorOptions, OpenTelemetryMeter, OpenTelemetryMeterProvider } from './opentelemetry';
