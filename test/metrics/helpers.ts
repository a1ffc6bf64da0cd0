/** Shared by the metrics tests: every event of every tls-session channel, and counter values read from a real prom-client Registry. */
import { Registry } from 'prom-client';
import { CHANNELS, collectPrometheusMetrics, subscribe, type ChannelName, type EventMap, type MetricsCollector } from '../../lib';

export interface Recorded {
  events: Array<{ [N in ChannelName]: { channel: N; event: EventMap[N] } }[ChannelName]>;
  of<N extends ChannelName>(channel: N): Array<EventMap[N]>;
  clear(): void;
  stop(): void;
}

/** Subscribes to every channel and keeps what is published. */
export function record(): Recorded {
  const events: Recorded['events'] = [];
  const stops = (Object.values(CHANNELS) as ChannelName[]).map((channel) =>
    subscribe(channel, (event) => void events.push({ channel, event } as Recorded['events'][number])),
  );
  return {
    events,
    of: <N extends ChannelName>(channel: N) => events.filter((e) => e.channel === channel).map((e) => e.event as EventMap[N]),
    clear: () => void events.splice(0),
    stop: () => stops.forEach((stop) => stop()),
  };
}

export interface Scraped {
  registry: Registry;
  collector: MetricsCollector;
  /** The value of a counter series (0 when absent); for a histogram name ending in _count/_sum, that series. */
  value(name: string, labels?: Record<string, string>): Promise<number>;
}

/** A fresh Registry with the Prometheus collector on it. */
export function prometheus(prefix?: string): Scraped {
  const registry = new Registry();
  const collector = collectPrometheusMetrics({ register: registry, prefix });
  return {
    registry,
    collector,
    async value(name, labels = {}) {
      const metrics = await registry.getMetricsAsJSON();
      const base = name.replace(/_(count|sum)$/, '');
      const metric = metrics.find((m) => m.name === name || m.name === base);
      if (!metric) throw new Error(`no metric ${name}`);
      const wanted = metric.name === name ? name : name;
      return (metric.values as Array<{ labels: Record<string, string | number>; value: number; metricName?: string }>)
        .filter((v) => (v.metricName ?? metric.name) === wanted)
        .filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
        .reduce((sum, v) => sum + v.value, 0);
    },
  };
}
