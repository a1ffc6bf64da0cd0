/**
 * collectPrometheusMetrics: tls-session's events as prom-client counters and histograms.
 * prom-client is an optional peer dependency, loaded on the first call.
 */
import type * as PromClient from 'prom-client';
import { invalidArgType } from '../errors';
import { feed, INITIAL_SERIES, INSTRUMENTS, loadPeer, type InstrumentId, type Labels } from './instruments';

/** What is used of a prom-client Registry (typed structurally, so these declarations do not need prom-client). */
export interface PrometheusRegistry {
  registerMetric(metric: never): void;
  removeSingleMetric(name: string): void;
}

export interface PrometheusCollectorOptions {
  /** A prom-client Registry (default: prom-client's global `register`). */
  register?: PrometheusRegistry;
  /** Prefix of every metric name (default 'tls_session_'). */
  prefix?: string;
}

export interface MetricsCollector {
  /** Unsubscribes from the events; with Prometheus, also removes the metrics from the registry. */
  stop(): void;
}

export interface PrometheusMetricsCollector extends MetricsCollector {
  /** The registry's exposition format, for a /metrics response's content-type. */
  readonly contentType: string;
  /** Everything in the registry (not only tls-session's metrics), in that format: a /metrics response body. */
  metrics(): Promise<string>;
}

const labelValue = (value: string | boolean): string => (typeof value === 'boolean' ? String(value) : value);

/**
 * Registers tls-session's metrics in `register` and keeps them up to date from the
 * diagnostics_channel events until stop(). Throws MetricsPeerMissingError without prom-client.
 */
export function collectPrometheusMetrics(options: PrometheusCollectorOptions = {}): PrometheusMetricsCollector {
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'an object', options);
  const prefix = options.prefix ?? 'tls_session_';
  if (typeof prefix !== 'string' || !/^[a-zA-Z_:][a-zA-Z0-9_:]*$|^$/.test(prefix)) {
    throw invalidArgType('options.prefix', 'a Prometheus metric name prefix ([a-zA-Z_:][a-zA-Z0-9_:]*)', prefix);
  }
  const prom = loadPeer<typeof PromClient>('prom-client');
  const register = (options.register ?? prom.register) as PromClient.Registry;
  const metrics = new Map<InstrumentId, PromClient.Counter | PromClient.Histogram>();
  for (const [id, spec] of Object.entries(INSTRUMENTS) as Array<[InstrumentId, (typeof INSTRUMENTS)[InstrumentId]]>) {
    const common = { name: prefix + spec.prom, help: spec.help, labelNames: [...spec.labels], registers: [register] };
    metrics.set(
      id,
      spec.kind === 'counter'
        ? new prom.Counter(common)
        : new prom.Histogram({ ...common, buckets: [...(spec as { buckets: readonly number[] }).buckets] }),
    );
  }
  const labelsOf = (labels: Labels): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const [key, value] of Object.entries(labels)) if (value !== undefined) out[key] = labelValue(value);
    return out;
  };
  for (const [id, labels] of INITIAL_SERIES) (metrics.get(id) as PromClient.Counter).inc(labelsOf(labels), 0);
  const unsubscribe = feed({
    add: (id, labels, value = 1) => (metrics.get(id) as PromClient.Counter).inc(labelsOf(labels), value),
    observe: (id, labels, value) => (metrics.get(id) as PromClient.Histogram).observe(labelsOf(labels), value),
  });
  let stopped = false;
  return {
    contentType: register.contentType,
    metrics: () => register.metrics(),
    stop() {
      if (stopped) return;
      stopped = true;
      unsubscribe();
      for (const spec of Object.values(INSTRUMENTS)) register.removeSingleMetric(prefix + spec.prom);
    },
  };
}
