/** The client-side channel helpers (ClientSessionCache publishes through them) and their Prometheus series. */
import {
  attachSessionStore,
  ClientSessionCache,
  CHANNELS,
  MemoryStore,
  publishClientHandshake,
  publishClientStore,
  resumptionMechanism,
} from '../../lib';
import { makePki } from '../helpers/pki';
import { close, listen, tls12Server, tls13Server } from '../persist/helpers/tls-peers';
import { prometheus, record } from './helpers';

test('publishClientHandshake and publishClientStore reach subscribers and the Prometheus collector', async () => {
  const events = record();
  const metrics = prometheus('app_');
  try {
    publishClientHandshake({
      protocol: 'TLSv1.2',
      offered: true,
      resumed: true,
      mechanism: 'session-id',
      lookupLatencyMs: 0.4,
      ticketsStored: 1,
    });
    publishClientHandshake({
      protocol: 'TLSv1.3',
      offered: false,
      notOfferedReason: 'store-timeout',
      resumed: false,
      mechanism: 'none',
      ticketsStored: 0,
    });
    publishClientStore({ ok: true, latencyMs: 1 });
    publishClientStore({ ok: false, latencyMs: 50, errorCode: 'ERR_TLS_SESSION_STORE_TIMEOUT' });
    expect(events.of(CHANNELS.clientHandshake)).toHaveLength(2);
    expect(events.of(CHANNELS.clientStore)[1]).toEqual({ ok: false, latencyMs: 50, errorCode: 'ERR_TLS_SESSION_STORE_TIMEOUT' });
    expect(
      await metrics.value('app_client_handshakes_total', {
        protocol: 'TLSv1.2',
        mechanism: 'session-id',
        offered: 'true',
        resumed: 'true',
      }),
    ).toBe(1);
    expect(await metrics.value('app_client_not_offered_total', { reason: 'store-timeout' })).toBe(1);
    expect(await metrics.value('app_client_lookup_duration_seconds_count')).toBe(1);
    expect(await metrics.value('app_client_sessions_stored_total', { result: 'ok' })).toBe(1);
    expect(await metrics.value('app_client_sessions_stored_total', { result: 'error' })).toBe(1);
  } finally {
    events.stop();
    metrics.collector.stop();
  }
});

test('resumptionMechanism: TLS 1.3 resumes by ticket only; TLS 1.2 by ticket or session ID', () => {
  expect(resumptionMechanism('TLSv1.3', true, false)).toBe('ticket');
  expect(resumptionMechanism('TLSv1.2', true, true)).toBe('ticket');
  expect(resumptionMechanism('TLSv1.2', true, false)).toBe('session-id');
  expect(resumptionMechanism('TLSv1.2', false, true)).toBe('none');
});

test('ClientSessionCache publishes each connection and each stored session (TLS 1.2 session IDs, TLS 1.3 tickets)', async () => {
  const pki = makePki();
  const events = record();
  const store = new MemoryStore();
  const cache = new ClientSessionCache({ store });
  const servers = [tls12Server(pki), tls13Server(pki)];
  // Node's servers resume TLS 1.2 session IDs only through newSession/resumeSession listeners.
  const serverSessions = attachSessionStore(servers[0]!, { store: new MemoryStore() });
  try {
    for (const server of servers) {
      const port = await listen(server);
      for (let i = 0; i < 2; i++) {
        const socket = await cache.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.ca });
        await new Promise((resolve) => socket.once('close', resolve).resume());
        await cache.flush();
      }
    }
    const handshakes = events.of(CHANNELS.clientHandshake);
    expect(
      handshakes.map(({ protocol, offered, notOfferedReason, resumed, mechanism }) => ({
        protocol,
        offered,
        notOfferedReason,
        resumed,
        mechanism,
      })),
    ).toEqual([
      { protocol: 'TLSv1.2', offered: false, notOfferedReason: 'not-cached', resumed: false, mechanism: 'none' },
      { protocol: 'TLSv1.2', offered: true, notOfferedReason: undefined, resumed: true, mechanism: 'session-id' },
      { protocol: 'TLSv1.3', offered: false, notOfferedReason: 'not-cached', resumed: false, mechanism: 'none' },
      { protocol: 'TLSv1.3', offered: true, notOfferedReason: undefined, resumed: true, mechanism: 'ticket' },
    ]);
    for (const event of handshakes) expect(event.lookupLatencyMs).toBeGreaterThanOrEqual(0);
    const stored = events.of(CHANNELS.clientStore);
    expect(stored.length).toBeGreaterThanOrEqual(3); // one TLS 1.2 session, TLS 1.3 tickets
    expect(stored.every((event) => event.ok)).toBe(true);
  } finally {
    events.stop();
    serverSessions.detach();
    await cache.close();
    for (const server of servers) await close(server);
  }
});
