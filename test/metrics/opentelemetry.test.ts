/**
 * The OpenTelemetry collector through the real SDK (@opentelemetry/sdk-metrics): a MeterProvider
 * with a PeriodicExportingMetricReader into an InMemoryMetricExporter, flushed on demand (no
 * timer is waited for). Real node:tls servers and clients produce the events.
 */
import { constants, randomBytes } from 'node:crypto';
import {
  AggregationTemporality,
  DataPointType,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
  type MetricData,
} from '@opentelemetry/sdk-metrics';
import { attachSessionStore, collectOpenTelemetryMetrics, MemoryStore, publishClientHandshake, TicketKeyRing } from '../../lib';
import { makePki, Pki } from '../helpers/pki';
import { waitFor } from '../persist/helpers/rotation';
import { close, handshake, listen, tls12Server, tls13Server } from '../persist/helpers/tls-peers';

let pki: Pki;
let exporter: InMemoryMetricExporter;
let provider: MeterProvider;

beforeAll(() => {
  pki = makePki();
});
beforeEach(() => {
  exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  // A long interval: the test flushes itself.
  provider = new MeterProvider({ readers: [new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 })] });
});
afterEach(() => provider.shutdown());

async function exported(): Promise<MetricData[]> {
  await provider.forceFlush();
  const batches = exporter.getMetrics();
  return batches.at(-1)?.scopeMetrics.flatMap((scope) => scope.metrics) ?? [];
}

function points(metrics: MetricData[], name: string): Array<{ attributes: Record<string, unknown>; value: unknown }> {
  const metric = metrics.find((m) => m.descriptor.name === name);
  return metric ? metric.dataPoints.map((p) => ({ attributes: p.attributes, value: p.value })) : [];
}

test('server handshakes, misses, store latency and ticket key age, in OpenTelemetry names, units and attributes', async () => {
  const collector = collectOpenTelemetryMetrics({ meterProvider: provider });
  const tls12 = tls12Server(pki);
  const handle = attachSessionStore(tls12, { store: new MemoryStore(), secret: randomBytes(32) });
  const tls13 = tls13Server(pki);
  const ring = new TicketKeyRing({ store: new MemoryStore() });
  await ring.attach(tls13);
  const [port12, port13] = [await listen(tls12), await listen(tls13)];
  try {
    const idOnly = { maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET } as const;
    const first = await handshake(pki, port12, undefined, idOnly);
    await waitFor(async () => points(await exported(), 'tls_session.store.sessions.stored').length > 0, 'the session to be stored', 5000);
    expect((await handshake(pki, port12, first.session, idOnly)).reused).toBe(true);
    const ticket = await handshake(pki, port13);
    expect((await handshake(pki, port13, ticket.session)).reused).toBe(true);
    const count = (m: MetricData[]) => points(m, 'tls_session.server.handshakes').reduce((sum, p) => sum + (p.value as number), 0);
    await waitFor(async () => count(await exported()) === 4, 'four handshakes exported', 5000);
  } finally {
    collector.stop();
    handle.detach();
    ring.close();
    await close(tls12);
    await close(tls13);
  }
  const metrics = await exported();
  const handshakes = metrics.find((m) => m.descriptor.name === 'tls_session.server.handshakes')!;
  expect(handshakes.descriptor).toMatchObject({ unit: '{handshake}', type: 'COUNTER' });
  expect(points(metrics, 'tls_session.server.handshakes')).toEqual(
    expect.arrayContaining([
      { attributes: { 'tls.protocol.version': '1.2', 'tls_session.mechanism': 'none', 'tls.resumed': false }, value: 1 },
      { attributes: { 'tls.protocol.version': '1.2', 'tls_session.mechanism': 'session-id', 'tls.resumed': true }, value: 1 },
      { attributes: { 'tls.protocol.version': '1.3', 'tls_session.mechanism': 'none', 'tls.resumed': false }, value: 1 },
      { attributes: { 'tls.protocol.version': '1.3', 'tls_session.mechanism': 'ticket', 'tls.resumed': true }, value: 1 },
    ]),
  );
  expect(points(metrics, 'tls_session.server.resumption.misses')).toEqual([
    { attributes: { 'tls_session.miss.reason': 'not-offered' }, value: 2 },
  ]);
  const duration = metrics.find((m) => m.descriptor.name === 'tls_session.store.operation.duration')!;
  expect(duration.descriptor.unit).toBe('s');
  expect(duration.dataPointType).toBe(DataPointType.HISTOGRAM);
  const get = duration.dataPoints.find((p) => p.attributes['tls_session.store.operation'] === 'get')!;
  expect((get.value as { count: number }).count).toBe(1);
  // The store answers in far less than a second: seconds, not milliseconds.
  expect((get.value as { sum: number }).sum).toBeLessThan(1);
  const age = metrics.find((m) => m.descriptor.name === 'tls_session.ticket.key.age')!;
  expect(age.descriptor.unit).toBe('s');
  expect((age.dataPoints[0]!.value as { count: number }).count).toBe(1);
  expect(age.dataPoints[0]!.attributes).toEqual({ 'tls_session.outcome': 'renewed' }); // the ring renews every ticket it opens by default
});

test('client handshakes published by publishClientHandshake reach the OpenTelemetry instruments', async () => {
  const collector = collectOpenTelemetryMetrics({ meter: provider.getMeter('test') });
  try {
    publishClientHandshake({
      protocol: 'TLSv1.3',
      offered: true,
      resumed: true,
      mechanism: 'ticket',
      lookupLatencyMs: 2,
      ticketsStored: 0,
    });
    publishClientHandshake({
      protocol: 'TLSv1.3',
      offered: false,
      notOfferedReason: 'not-cached',
      resumed: false,
      mechanism: 'none',
      lookupLatencyMs: 1,
      ticketsStored: 0,
    });
  } finally {
    collector.stop();
  }
  const metrics = await exported();
  expect(points(metrics, 'tls_session.client.handshakes')).toEqual(
    expect.arrayContaining([
      {
        attributes: { 'tls.protocol.version': '1.3', 'tls_session.mechanism': 'ticket', 'tls_session.offered': true, 'tls.resumed': true },
        value: 1,
      },
    ]),
  );
  expect(points(metrics, 'tls_session.client.not_offered')).toEqual([
    { attributes: { 'tls_session.miss.reason': 'not-cached' }, value: 1 },
  ]);
  const lookup = metrics.find((m) => m.descriptor.name === 'tls_session.client.lookup.duration')!;
  expect(lookup.dataPoints[0]!.value).toMatchObject({ count: 2, sum: 0.003 });
});
