/**
 * collectPrometheusMetrics: tls-session's events as prom-client counters and histograms.
 * prom-client is an optional peer dependency, loaded on the first call.
 */
import type * as PromClient from 'prom-client';
import { invalidArgType } from '../errors';
import { feed, INITIAL_SERIES, INSTRUMENTS, loadPeer, SeriesIndex, type InstrumentId, type Series } from './instruments';

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

/**
 * Observations a histogram series holds before they go to prom-client. Measurements are counted
 * into plain numbers on the handshake path and handed to prom-client (whose inc() and observe()
 * build a label hash string and objects per call) in batches: counters when scraped, histograms
 * when scraped or when this many observations wait.
 */
const PENDING_OBSERVATIONS = 256;

interface PendingCount {
  count: number;
}
interface PendingObservations {
  values: Float64Array;
  length: number;
}

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
  const seriesOf = new Map<InstrumentId, Series[]>();
  const index = new SeriesIndex((series) => {
    seriesOf.get(series.id)!.push(series);
    return INSTRUMENTS[series.id].kind === 'counter'
      ? ({ count: 0 } satisfies PendingCount)
      : ({ values: new Float64Array(PENDING_OBSERVATIONS), length: 0 } satisfies PendingObservations);
  });
  const flushCounts = (counter: PromClient.Counter, id: InstrumentId): void => {
    for (const series of seriesOf.get(id)!) {
      const pending = series.state as PendingCount;
      if (pending.count === 0) continue;
      counter.inc(series.labels, pending.count);
      pending.count = 0;
    }
  };
  const flushObservations = (histogram: PromClient.Histogram, series: Series): void => {
    const pending = series.state as PendingObservations;
    for (let i = 0; i < pending.length; i++) histogram.observe(series.labels, pending.values[i]!);
    pending.length = 0;
  };
  const counters = new Map<InstrumentId, PromClient.Counter>();
  const histograms = new Map<InstrumentId, PromClient.Histogram>();
  for (const [id, spec] of Object.entries(INSTRUMENTS) as Array<[InstrumentId, (typeof INSTRUMENTS)[InstrumentId]]>) {
    seriesOf.set(id, []);
    const common = { name: prefix + spec.prom, help: spec.help, labelNames: [...spec.labels], registers: [register] };
    if (spec.kind === 'counter') {
      // prom-client calls collect() (with the metric as `this`) before every read of the metric.
      counters.set(
        id,
        new prom.Counter({
          ...common,
          collect(this: PromClient.Counter) {
            flushCounts(this, id);
          },
        }),
      );
    } else {
      const histogram: PromClient.Histogram = new prom.Histogram({
        ...common,
        buckets: [...(spec as { buckets: readonly number[] }).buckets],
        collect() {
          for (const series of seriesOf.get(id)!) flushObservations(histogram, series);
        },
      });
      histograms.set(id, histogram);
    }
  }
  for (const [id, ...values] of INITIAL_SERIES) counters.get(id)!.inc(index.get(id, ...values).labels, 0);
  const unsubscribe = feed(index, {
    add: (series, value) => {
      (series.state as PendingCount).count += value;
    },
    observe: (series, value) => {
      const pending = series.state as PendingObservations;
      pending.values[pending.length++] = value;
      if (pending.length === PENDING_OBSERVATIONS) flushObservations(histograms.get(series.id)!, series);
    },
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
