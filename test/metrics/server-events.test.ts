/**
 * Every way a server handshake can miss resumption, provoked on real node:tls servers with real
 * clients, and seen both in the diagnostics_channel event and in the Prometheus collector's
 * metric (a real prom-client Registry). Also: what a resumption reports (mechanism, store
 * latency, ticket key age), and that nothing secret reaches a label.
 */
import { constants, randomBytes } from 'node:crypto';
import * as diagnostics from 'node:diagnostics_channel';
import {
  attachSessionStore,
  CHANNELS,
  MemoryStore,
  MetricsPeerMissingError,
  Sealer,
  SessionStore,
  TicketKeyRing,
  type ServerHandshakeEvent,
} from '../../lib';
import { loadPeer } from '../../lib/metrics/instruments';
import { makePki, Pki } from '../helpers/pki';
import { withSessionTimes } from '../helpers/session-der';
import { RecordingStore } from '../persist/helpers/recording-store';
import { waitFor } from '../persist/helpers/rotation';
import { close, handshake, listen, tls12Server, tls13Server } from '../persist/helpers/tls-peers';
import { prometheus, record, type Recorded, type Scraped } from './helpers';

let pki: Pki;
const secret = randomBytes(32);
let events: Recorded;
let metrics: Scraped;

beforeAll(() => {
  pki = makePki();
});
beforeEach(() => {
  events = record();
  metrics = prometheus();
});
afterEach(() => {
  events.stop();
  metrics.collector.stop();
});

/** The client sends a TLS 1.2 ClientHello with a session ID and no ticket extension. */
const TLS12_ID = { maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET } as const;

const handshakes = (): ServerHandshakeEvent[] => events.of(CHANNELS.serverHandshake);
const misses = (reason: string): Promise<number> => metrics.value('tls_session_server_resumption_misses_total', { reason });

/** The last handshake event, once it is there ('secureConnection' may follow the client's close by a tick). */
async function lastHandshake(count: number): Promise<ServerHandshakeEvent> {
  await waitFor(() => handshakes().length >= count, `${count} server handshake events`, 5000);
  return handshakes()[count - 1]!;
}

async function withServer<T>(
  make: () => ReturnType<typeof tls12Server>,
  options: Partial<Parameters<typeof attachSessionStore>[1]> & { store: SessionStore },
  run: (port: number) => Promise<T>,
): Promise<T> {
  const server = make();
  const handle = attachSessionStore(server, { secret, ...options });
  const port = await listen(server);
  try {
    return await run(port);
  } finally {
    handle.detach();
    await close(server);
  }
}

test('TLS 1.2 session ID: a full handshake (not offered), then a resumption through the store; nothing secret in the metrics', async () => {
  const store = new RecordingStore();
  await withServer(
    () => tls12Server(pki),
    { store },
    async (port) => {
      const first = await handshake(pki, port, undefined, TLS12_ID);
      expect(await lastHandshake(1)).toEqual({ protocol: 'TLSv1.2', resumed: false, mechanism: 'none', missReason: 'not-offered' });
      await waitFor(() => events.of(CHANNELS.serverStore).length === 1, 'the session to be stored', 5000);
      expect(events.of(CHANNELS.serverStore)[0]).toMatchObject({ operation: 'set', ok: true });
      const second = await handshake(pki, port, first.session, TLS12_ID);
      expect(second.reused).toBe(true);
      const resumed = await lastHandshake(2);
      expect(resumed).toMatchObject({ protocol: 'TLSv1.2', resumed: true, mechanism: 'session-id' });
      expect(resumed.storeLatencyMs).toBeGreaterThanOrEqual(0);
      expect(resumed.missReason).toBeUndefined();
      expect(events.of(CHANNELS.serverLookup)).toEqual([{ outcome: 'hit', latencyMs: expect.any(Number) }]);
    },
  );
  const labels = { protocol: 'TLSv1.2', mechanism: 'session-id', resumed: 'true' };
  expect(await metrics.value('tls_session_server_handshakes_total', labels)).toBe(1);
  expect(await metrics.value('tls_session_server_handshakes_total', { resumed: 'false', mechanism: 'none' })).toBe(1);
  expect(await misses('not-offered')).toBe(1);
  expect(await metrics.value('tls_session_sessions_stored_total')).toBe(1);
  expect(await metrics.value('tls_session_store_operation_duration_seconds_count', { operation: 'get' })).toBe(1);
  expect(await metrics.value('tls_session_store_operation_duration_seconds_count', { operation: 'set' })).toBe(1);
  // Nothing that names a session or the secret: session IDs are the store keys' hex.
  const text = await metrics.registry.metrics();
  for (const key of store.keys) expect(text).not.toContain(key.slice('session:'.length, 'session:'.length + 16));
  expect(text).not.toContain(secret.toString('hex').slice(0, 16));
  expect(JSON.stringify(events.events)).not.toMatch(/[0-9a-f]{32}/);
});

test('store-miss: the client offers a session ID the store does not hold', async () => {
  const store = new RecordingStore();
  await withServer(
    () => tls12Server(pki),
    { store },
    async (port) => {
      const first = await handshake(pki, port, undefined, TLS12_ID);
      await waitFor(() => store.keys.length === 1, 'the session to be stored', 5000);
      await store.delete(store.keys[0]!);
      expect((await handshake(pki, port, first.session, TLS12_ID)).reused).toBe(false);
      expect(await lastHandshake(2)).toMatchObject({ resumed: false, mechanism: 'none', missReason: 'store-miss' });
    },
  );
  expect(await misses('store-miss')).toBe(1);
  expect(await metrics.value('tls_session_store_lookups_total', { outcome: 'store-miss' })).toBe(1);
});

test("filtered: lookup 'issued' does not ask the store for a session another server issued", async () => {
  const store = new MemoryStore();
  const issuer = tls12Server(pki);
  const issuerHandle = attachSessionStore(issuer, { store, secret });
  const issuerPort = await listen(issuer);
  try {
    const first = await handshake(pki, issuerPort, undefined, TLS12_ID);
    await withServer(
      () => tls12Server(pki),
      { store, lookup: 'issued' },
      async (port) => {
        const before = handshakes().length;
        expect((await handshake(pki, port, first.session, TLS12_ID)).reused).toBe(false);
        expect(await lastHandshake(before + 1)).toMatchObject({ resumed: false, missReason: 'filtered' });
      },
    );
  } finally {
    issuerHandle.detach();
    await close(issuer);
  }
  expect(await misses('filtered')).toBe(1);
  expect(await metrics.value('tls_session_store_lookups_total', { outcome: 'filtered' })).toBe(1);
});

describe('refused records', () => {
  const store = new RecordingStore();
  const sealer = new Sealer(secret, 'session-record');

  async function refused(forge: (key: string, record: Buffer) => Promise<void>, extra = {}): Promise<ServerHandshakeEvent> {
    return withServer(
      () => tls12Server(pki),
      { store, ...extra },
      async (port) => {
        const first = await handshake(pki, port, undefined, TLS12_ID);
        await waitFor(() => store.keys.length > 0 && events.of(CHANNELS.serverStore).length > 0, 'the session to be stored', 5000);
        const key = store.keys[store.keys.length - 1]!;
        await forge(key, (await store.get(key))!);
        expect((await handshake(pki, port, first.session, TLS12_ID)).reused).toBe(false);
        return lastHandshake(2);
      },
    );
  }

  test('expired: the stored session lived past its timeout', async () => {
    const event = await refused(async (key, record) => {
      const payload = sealer.open(key, record);
      const scopeLength = payload.readUInt16BE(1);
      const old = withSessionTimes(payload.subarray(3 + scopeLength), {
        time: BigInt(Math.floor(Date.now() / 1000) - 86_400),
        timeout: 300n,
      });
      await store.set(key, sealer.seal(key, Buffer.concat([payload.subarray(0, 3 + scopeLength), old])), 300);
    });
    expect(event).toMatchObject({ resumed: false, missReason: 'expired' });
    expect(await misses('expired')).toBe(1);
    // The refused record is deleted: an eviction.
    await waitFor(async () => (await metrics.value('tls_session_sessions_evicted_total')) === 1, 'the eviction metric', 5000);
  });

  test('rejected: the stored record is random bytes', async () => {
    const event = await refused((key) => store.set(key, randomBytes(200), 300));
    expect(event).toMatchObject({ resumed: false, missReason: 'rejected' });
    expect(await misses('rejected')).toBe(1);
  });

  test('incompatible: the record belongs to another scope', async () => {
    const event = await refused(async (key, record) => {
      const payload = sealer.open(key, record);
      const scopeLength = payload.readUInt16BE(1);
      const foreignScope = Buffer.from('x509:another-virtual-host');
      const foreign = Buffer.concat([Buffer.from([1, 0, foreignScope.length]), foreignScope, payload.subarray(3 + scopeLength)]);
      await store.set(key, sealer.seal(key, foreign), 300);
    });
    expect(event).toMatchObject({ resumed: false, missReason: 'incompatible' });
    expect(await misses('incompatible')).toBe(1);
  });
});

test('store-error and store-timeout: a failing and a stalled store (the handshake still completes, in full)', async () => {
  const memory = new MemoryStore();
  let mode: 'ok' | 'fail' | 'stall' = 'ok';
  // A real MemoryStore behind a switch: it answers, then fails, then never answers.
  const store: SessionStore = {
    get: (key) => (mode === 'ok' ? memory.get(key) : mode === 'fail' ? Promise.reject(new Error('backend down')) : new Promise(() => {})),
    set: (key, value, ttl) => memory.set(key, value, ttl),
    delete: (key) => memory.delete(key),
    close: () => memory.close(),
  };
  await withServer(
    () => tls12Server(pki),
    { store, budgetMs: 50, onError: () => undefined },
    async (port) => {
      const first = await handshake(pki, port, undefined, TLS12_ID);
      await waitFor(() => events.of(CHANNELS.serverStore).length === 1, 'the session to be stored', 5000);
      mode = 'fail';
      expect((await handshake(pki, port, first.session, TLS12_ID)).reused).toBe(false);
      expect(await lastHandshake(2)).toMatchObject({ resumed: false, missReason: 'store-error' });
      mode = 'stall';
      expect((await handshake(pki, port, first.session, TLS12_ID)).reused).toBe(false);
      const stalled = await lastHandshake(3);
      expect(stalled).toMatchObject({ resumed: false, missReason: 'store-timeout' });
      expect(stalled.storeLatencyMs).toBeGreaterThanOrEqual(45);
    },
  );
  expect(await misses('store-error')).toBe(1);
  expect(await misses('store-timeout')).toBe(1);
  expect(await metrics.value('tls_session_store_errors_total', { operation: 'get' })).toBe(2);
});

describe('tickets (TicketKeyRing)', () => {
  async function ringServer(store: SessionStore, make = () => tls13Server(pki), options = {}) {
    const server = make();
    const ring = new TicketKeyRing({ store, ...options });
    await ring.attach(server);
    const port = await listen(server);
    return {
      server,
      ring,
      port,
      stop: async () => {
        ring.close();
        await close(server);
      },
    };
  }

  test('TLS 1.3: not offered, then resumed by ticket with the key age observed (renewed: the default sends a new ticket); TLS 1.2 tickets are "ticket" too', async () => {
    const a = await ringServer(new MemoryStore());
    try {
      const first = await handshake(pki, a.port);
      expect(await lastHandshake(1)).toEqual({ protocol: 'TLSv1.3', resumed: false, mechanism: 'none', missReason: 'not-offered' });
      expect((await handshake(pki, a.port, first.session)).reused).toBe(true);
      expect(await lastHandshake(2)).toEqual({ protocol: 'TLSv1.3', resumed: true, mechanism: 'ticket' });
      const renewed = events.of(CHANNELS.ringTicket).filter((e) => e.outcome === 'renewed');
      expect(renewed).toHaveLength(1);
      expect(renewed[0]!.keyAgeSeconds).toBeGreaterThanOrEqual(0);
      expect(renewed[0]!.keyAgeSeconds).toBeLessThan(3600);
      expect(events.of(CHANNELS.ringTicket).filter((e) => e.outcome === 'accepted')).toHaveLength(0);
      const tls12 = await handshake(pki, a.port, undefined, { maxVersion: 'TLSv1.2' });
      expect((await handshake(pki, a.port, tls12.session, { maxVersion: 'TLSv1.2' })).reused).toBe(true);
      expect(await lastHandshake(4)).toEqual({ protocol: 'TLSv1.2', resumed: true, mechanism: 'ticket' });
    } finally {
      await a.stop();
    }
    expect(await metrics.value('tls_session_server_handshakes_total', { protocol: 'TLSv1.3', mechanism: 'ticket', resumed: 'true' })).toBe(
      1,
    );
    expect(await metrics.value('tls_session_server_handshakes_total', { protocol: 'TLSv1.2', mechanism: 'ticket', resumed: 'true' })).toBe(
      1,
    );
    expect(await metrics.value('tls_session_ticket_key_age_seconds_count', { outcome: 'renewed' })).toBe(2);
    expect(await metrics.value('tls_session_ticket_operations_total', { outcome: 'issued' })).toBeGreaterThanOrEqual(2);
  });

  test("renewTickets 'retired': a current key's ticket is 'accepted' (no new ticket); 'renewed' is left to retired keys", async () => {
    const a = await ringServer(new MemoryStore(), () => tls13Server(pki), { renewTickets: 'retired' });
    try {
      const first = await handshake(pki, a.port);
      const resumed = await handshake(pki, a.port, first.session);
      expect(resumed.reused).toBe(true);
      expect(resumed.session).toBeUndefined();
      const opened = events.of(CHANNELS.ringTicket).filter((e) => e.outcome === 'accepted' || e.outcome === 'renewed');
      expect(opened).toEqual([{ outcome: 'accepted', keyAgeSeconds: expect.any(Number), localKey: false }]);
      // Two tickets after the full handshake, none after the resumption.
      expect(events.of(CHANNELS.ringTicket).filter((e) => e.outcome === 'issued')).toHaveLength(2);
    } finally {
      await a.stop();
    }
    expect(await metrics.value('tls_session_ticket_key_age_seconds_count', { outcome: 'accepted' })).toBe(1);
    expect(await metrics.value('tls_session_ticket_operations_total', { outcome: 'renewed' })).toBe(0);
  });

  test('unknown-ticket-key: a ticket from a server of another fleet (another store)', async () => {
    const a = await ringServer(new MemoryStore());
    const b = await ringServer(new MemoryStore());
    try {
      const first = await handshake(pki, a.port);
      expect((await handshake(pki, b.port, first.session)).reused).toBe(false);
      expect(await lastHandshake(2)).toMatchObject({ protocol: 'TLSv1.3', resumed: false, missReason: 'unknown-ticket-key' });
      expect(events.of(CHANNELS.ringTicket).filter((e) => e.outcome === 'unknown-ticket-key')).toEqual([
        { outcome: 'unknown-ticket-key', localKey: false },
      ]);
    } finally {
      await a.stop();
      await b.stop();
    }
    expect(await misses('unknown-ticket-key')).toBe(1);
    expect(await metrics.value('tls_session_ticket_operations_total', { outcome: 'unknown-ticket-key' })).toBe(1);
  });

  test('retired-ticket-key: the store replaced the key (retentionSeconds 0), and its tickets are refused at once', async () => {
    const rotationSeconds = 4;
    const store = new MemoryStore();
    // Early in an epoch, so the ring's mid-epoch sync (which re-reads the key) comes before the boundary.
    await waitFor(() => (Date.now() / 1000) % rotationSeconds < 1, 'the start of an epoch', 10_000);
    const a = await ringServer(store, () => tls13Server(pki), { rotationSeconds, retentionSeconds: 0 });
    try {
      const epoch = a.ring.epoch!;
      const first = await handshake(pki, a.port);
      // Another writer replaces the fleet key of this epoch (as a store failover could): the ring adopts it and retires its own.
      await store.set(`ticket-key:${rotationSeconds}:${epoch}`, Buffer.concat([Buffer.from([0x54, 0x53, 1, 0]), randomBytes(48)]), 60);
      await waitFor(
        () => events.of(CHANNELS.ringKeyAdopted).some((e) => e.epoch === epoch && !e.created),
        'the ring to adopt the replaced key',
        10_000,
      );
      const count = handshakes().length;
      expect((await handshake(pki, a.port, first.session)).reused).toBe(false);
      expect(await lastHandshake(count + 1)).toMatchObject({ resumed: false, missReason: 'retired-ticket-key' });
      const retired = events.of(CHANNELS.ringTicket).find((e) => e.outcome === 'retired-ticket-key');
      expect(retired?.keyAgeSeconds).toBeGreaterThanOrEqual(0);
      expect(events.of(CHANNELS.ringRotation).at(-1)).toMatchObject({ epoch, previousEpoch: epoch, localKey: false });
    } finally {
      await a.stop();
    }
    expect(await misses('retired-ticket-key')).toBe(1);
    expect(await metrics.value('tls_session_ticket_key_age_seconds_count', { outcome: 'retired-ticket-key' })).toBe(1);
    expect(await metrics.value('tls_session_ticket_key_rotations_total', { local_key: 'false' })).toBeGreaterThanOrEqual(1);
  });

  test('key ring: store outage (local key in use), recovery, the fleet key adopted', async () => {
    const memory = new MemoryStore();
    let down = true;
    const store: SessionStore = {
      get: (key) => (down ? Promise.reject(Object.assign(new Error('down'), { code: 'ECONNREFUSED' })) : memory.get(key)),
      set: (key, value, ttl) => (down ? Promise.reject(new Error('down')) : memory.set(key, value, ttl)),
      setIfAbsent: (key, value, ttl) => (down ? Promise.reject(new Error('down')) : memory.setIfAbsent(key, value, ttl)),
      delete: (key) => memory.delete(key),
      close: () => memory.close(),
    };
    const a = await ringServer(store, () => tls13Server(pki), { onError: () => undefined });
    try {
      expect(events.of(CHANNELS.ringStore)).toEqual([{ state: 'outage', errorCode: 'ECONNREFUSED' }]);
      expect(events.of(CHANNELS.ringLocalKey)).toHaveLength(1);
      await handshake(pki, a.port);
      expect(events.of(CHANNELS.ringTicket).some((e) => e.outcome === 'issued' && e.localKey)).toBe(true);
      down = false;
      await waitFor(() => events.of(CHANNELS.ringStore).length === 2, 'the ring to reach the store again', 10_000);
      expect(events.of(CHANNELS.ringStore)[1]).toEqual({ state: 'recovered' });
      expect(events.of(CHANNELS.ringKeyAdopted)).toContainEqual({ epoch: a.ring.epoch, created: true });
      expect(events.of(CHANNELS.ringRotation).at(-1)).toMatchObject({ localKey: false });
    } finally {
      await a.stop();
    }
    expect(await metrics.value('tls_session_ticket_key_store_outages_total')).toBe(1);
    expect(await metrics.value('tls_session_ticket_local_keys_total')).toBe(1);
    // One per key the ring created in the store: the recovery's, and on a slow run the next epoch's too.
    const created = events.of(CHANNELS.ringKeyAdopted).filter((e) => e.created).length;
    expect(created).toBeGreaterThanOrEqual(1);
    expect(await metrics.value('tls_session_ticket_keys_adopted_total', { created: 'true' })).toBe(created);
  });
});

test('stop() unsubscribes and unregisters; with no subscriber nothing is observed', async () => {
  events.stop();
  metrics.collector.stop();
  for (const name of Object.values(CHANNELS))
    expect({ name, subscribed: diagnostics.channel(name).hasSubscribers }).toEqual({ name, subscribed: false });
  expect(await metrics.registry.getMetricsAsJSON()).toEqual([]);
  metrics.collector.stop(); // twice: nothing happens
});

test('a missing optional peer is a typed error naming the package', () => {
  expect(() => loadPeer('tls-session-no-such-peer')).toThrow(MetricsPeerMissingError);
  expect(() => loadPeer('tls-session-no-such-peer')).toThrow(
    expect.objectContaining({ code: 'ERR_TLS_SESSION_METRICS_PEER_MISSING', peer: 'tls-session-no-such-peer' }),
  );
});
