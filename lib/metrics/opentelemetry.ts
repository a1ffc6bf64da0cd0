/**
 * collectOpenTelemetryMetrics: tls-session's events as OpenTelemetry instruments, through
 * @opentelemetry/api (an optional peer dependency, loaded on the first call). Whatever SDK and
 * exporter the application set up receives them.
 */
import type * as OtelApi from '@opentelemetry/api';
import { invalidArgType } from '../errors';
import { feed, INSTRUMENTS, LABELS, loadPeer, SeriesIndex, type InstrumentId, type Label } from './instruments';
import type { MetricsCollector } from './prometheus';

/** What is used of an @opentelemetry/api Meter (typed structurally, so these declarations do not need the package). */
export interface OpenTelemetryMeter {
  createCounter(name: string, options?: { description?: string; unit?: string }): { add(value: number, attributes?: object): void };
  createHistogram(
    name: string,
    options?: { description?: string; unit?: string; advice?: { explicitBucketBoundaries?: number[] } },
  ): { record(value: number, attributes?: object): void };
}

export interface OpenTelemetryMeterProvider {
  getMeter(name: string, version?: string): OpenTelemetryMeter;
}

export interface OpenTelemetryCollectorOptions {
  /** The MeterProvider to take the meter from (default: the global one, `metrics.getMeterProvider()`). */
  meterProvider?: OpenTelemetryMeterProvider;
  /** Or a Meter directly. */
  meter?: OpenTelemetryMeter;
}

/** 'TLSv1.3' → '1.3' (OpenTelemetry's tls.protocol.version), anything else as it is. */
const otelProtocol = (protocol: string): string => /^TLSv(\d\.\d)$/.exec(protocol)?.[1] ?? protocol;

/**
 * Creates tls-session's instruments on the meter and records into them from the
 * diagnostics_channel events until stop(). Throws MetricsPeerMissingError without @opentelemetry/api.
 */
export function collectOpenTelemetryMetrics(options: OpenTelemetryCollectorOptions = {}): MetricsCollector {
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'an object', options);
  const meter =
    options.meter ??
    (
      options.meterProvider ?? (loadPeer<typeof OtelApi>('@opentelemetry/api').metrics.getMeterProvider() as OpenTelemetryMeterProvider)
    ).getMeter('tls-session');
  const instruments = new Map<
    InstrumentId,
    ReturnType<OpenTelemetryMeter['createCounter']> | ReturnType<OpenTelemetryMeter['createHistogram']>
  >();
  for (const [id, spec] of Object.entries(INSTRUMENTS) as Array<[InstrumentId, (typeof INSTRUMENTS)[InstrumentId]]>) {
    const description = spec.help;
    instruments.set(
      id,
      spec.kind === 'counter'
        ? meter.createCounter(spec.otel, { description, unit: spec.unit })
        : meter.createHistogram(spec.otel, {
            description,
            unit: spec.unit,
            advice: { explicitBucketBoundaries: [...(spec as { buckets: readonly number[] }).buckets] },
          }),
    );
  }
  // Each series' attributes object is made once (SeriesIndex) and passed to every add/record of that series.
  const index = new SeriesIndex((series): OtelApi.Attributes => {
    const out: OtelApi.Attributes = {};
    (INSTRUMENTS[series.id].labels as readonly Label[]).forEach((label, i) => {
      const value = series.values[i]!;
      out[LABELS[label]] = label === 'protocol' ? otelProtocol(value as string) : value;
    });
    return out;
  });
  let active = true;
  const unsubscribe = feed(index, {
    add: (series, value) =>
      (instruments.get(series.id) as ReturnType<OpenTelemetryMeter['createCounter']>).add(value, series.state as OtelApi.Attributes),
    observe: (series, value) =>
      (instruments.get(series.id) as ReturnType<OpenTelemetryMeter['createHistogram']>).record(value, series.state as OtelApi.Attributes),
  });
  return {
    stop() {
      if (!active) return;
      active = false;
      unsubscribe();
    },
  };
}
