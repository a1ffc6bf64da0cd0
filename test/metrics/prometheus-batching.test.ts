/**
 * The Prometheus collector counts on the handshake path into its own numbers and hands them to
 * prom-client in batches (lib/metrics/prometheus.ts): counters when read, histogram observations
 * when read or when 256 wait. Whatever the batching, a read sees every measurement published
 * before it, once. Events are published on the real channels; the Registry is prom-client's.
 */
import * as diagnostics from 'node:diagnostics_channel';
import { CHANNELS, type RingTicketEvent, type ServerHandshakeEvent, type ServerLookupEvent } from '../../lib';
import { prometheus, type Scraped } from './helpers';

let metrics: Scraped;
beforeEach(() => {
  metrics = prometheus();
});
afterEach(() => metrics.collector.stop());

const publish = (channel: string, event: object): void => diagnostics.channel(channel).publish(event);
const lookup = (latencyMs: number): ServerLookupEvent => ({ outcome: 'store-miss', latencyMs });

test('counters: every event before a read is in it, and none twice across reads', async () => {
  const resumed: ServerHandshakeEvent = { protocol: 'TLSv1.3', resumed: true, mechanism: 'ticket' };
  for (let i = 0; i < 7; i++) publish(CHANNELS.serverHandshake, resumed);
  const labels = { protocol: 'TLSv1.3', mechanism: 'ticket', resumed: 'true' };
  expect(await metrics.value('tls_session_server_handshakes_total', labels)).toBe(7);
  expect(await metrics.value('tls_session_server_handshakes_total', labels)).toBe(7);
  publish(CHANNELS.serverHandshake, resumed);
  publish(CHANNELS.serverHandshake, { protocol: 'TLSv1.2', resumed: false, mechanism: 'none', missReason: 'store-miss' });
  expect(await metrics.value('tls_session_server_handshakes_total', labels)).toBe(8);
  expect(await metrics.value('tls_session_server_resumption_misses_total', { reason: 'store-miss' })).toBe(1);
  // The series a ratio needs are there at 0 before any event of theirs.
  expect(await metrics.value('tls_session_server_resumption_misses_total', { reason: 'expired' })).toBe(0);
  expect(await metrics.registry.metrics()).toMatch(/tls_session_server_resumption_misses_total\{reason="expired"\} 0/);
});

test('histograms: observations past the batch size and a partial batch are all counted, with their sum and buckets', async () => {
  const count = 256 * 2 + 37;
  let sum = 0;
  for (let i = 0; i < count; i++) {
    const latencyMs = i % 2 === 0 ? 0.05 : 3; // 50 µs and 3 ms: the 0.0001 s and 0.005 s buckets
    sum += latencyMs / 1000;
    publish(CHANNELS.serverLookup, lookup(latencyMs));
  }
  expect(await metrics.value('tls_session_store_operation_duration_seconds_count', { operation: 'get' })).toBe(count);
  expect(await metrics.value('tls_session_store_operation_duration_seconds_sum', { operation: 'get' })).toBeCloseTo(sum, 9);
  const text = await metrics.registry.metrics();
  expect(text).toMatch(
    new RegExp(`tls_session_store_operation_duration_seconds_bucket\\{le="0.0001",operation="get"\\} ${Math.ceil(count / 2)}\\n`),
  );
  expect(text).toMatch(new RegExp(`tls_session_store_operation_duration_seconds_bucket\\{le="0.005",operation="get"\\} ${count}\\n`));
  expect(await metrics.value('tls_session_store_lookups_total', { outcome: 'store-miss' })).toBe(count);
  // A second read adds nothing.
  expect(await metrics.value('tls_session_store_operation_duration_seconds_count', { operation: 'get' })).toBe(count);
});

test('boolean and string label values of one instrument are separate series (no collision in the lookup)', async () => {
  const ticket = (outcome: RingTicketEvent['outcome'], keyAgeSeconds: number): RingTicketEvent => ({
    outcome,
    keyAgeSeconds,
    localKey: false,
  });
  publish(CHANNELS.ringTicket, ticket('accepted', 10));
  publish(CHANNELS.ringTicket, ticket('renewed', 4000));
  publish(CHANNELS.ringTicket, ticket('renewed', 4000));
  publish(CHANNELS.ringRotation, { epoch: 2, previousEpoch: 1, localKey: true });
  publish(CHANNELS.ringRotation, { epoch: 3, previousEpoch: 2, localKey: false });
  expect(await metrics.value('tls_session_ticket_operations_total', { outcome: 'renewed' })).toBe(2);
  expect(await metrics.value('tls_session_ticket_key_age_seconds_count', { outcome: 'accepted' })).toBe(1);
  expect(await metrics.value('tls_session_ticket_key_age_seconds_sum', { outcome: 'renewed' })).toBe(8000);
  expect(await metrics.value('tls_session_ticket_key_rotations_total', { local_key: 'true' })).toBe(1);
  expect(await metrics.value('tls_session_ticket_key_rotations_total', { local_key: 'false' })).toBe(1);
});

test('stop(): events after it are not counted, and the metrics leave the registry', async () => {
  publish(CHANNELS.serverLookup, lookup(1));
  metrics.collector.stop();
  publish(CHANNELS.serverLookup, lookup(1));
  expect(await metrics.registry.metrics()).not.toMatch(/tls_session_/);
});
