/**
 * TicketKeyRing drives the engine's server contexts (TlsContext#setTicketKeys) as it drives Node
 * servers: two fleet members' engine contexts share the fleet's key through the store, a ticket
 * one issued resumes on the other, and across a rotation (an injected clock, no sleeping) the
 * previous key keeps opening tickets for its retention and no longer.
 */
import { connect as netConnect } from 'node:net';
import { MemoryStore, Session, TicketKeyRing, TlsConnection, TlsContext } from '../../lib';
import { makePki, type Pki } from '../helpers/pki';
import { closed, startEngineServer, type EngineServer } from '../tls/helpers/peers';
import { manualClock } from './helpers/clock';

jest.setTimeout(60_000);

let pki: Pki;
beforeAll(() => {
  pki = makePki();
});

const ROTATION_S = 3600;
const RETENTION_S = 7200;

/** One TLS 1.3 engine-client connection offering `offered` (DER); the newest ticket it got, and whether it resumed. */
async function visit(client: TlsContext, server: EngineServer, offered?: Buffer): Promise<{ reused: boolean; der: Buffer | undefined }> {
  using session = offered ? Session.fromDER(offered) : undefined;
  const conn = TlsConnection.connect(client, netConnect(server.port, '127.0.0.1'), { servername: 'localhost', session });
  let der: Buffer | undefined;
  conn.on('session', (s: Session) => {
    der = s.toDER();
    s.free();
  });
  conn.resume();
  await closed(conn);
  expect(server.errors).toEqual([]);
  return { reused: conn.isSessionReused(), der };
}

test('two members resume each other’s tickets; after a rotation the old key opens tickets for its retention, then not', async () => {
  // Both members start at the beginning of an epoch, on one clock.
  const clock = manualClock(Math.ceil(Date.now() / 1000 / ROTATION_S) * ROTATION_S * 1000 + 1000);
  const store = new MemoryStore({ now: clock.now });
  const rings = [0, 1].map(() => new TicketKeyRing({ store, rotationSeconds: ROTATION_S, retentionSeconds: RETENTION_S, now: clock.now }));
  const contexts = [0, 1].map(
    () => new TlsContext({ role: 'server', cert: pki.serverCert, key: pki.serverKey, minVersion: 'TLSv1.3', sessionIdContext: 'fleet' }),
  );
  const client = new TlsContext({ role: 'client', ca: pki.ca, minVersion: 'TLSv1.3' });
  const servers = await Promise.all(contexts.map((ctx) => startEngineServer(ctx)));
  try {
    await Promise.all(rings.map((ring, i) => ring.attach(contexts[i]!)));
    expect(rings.map((ring) => ring.stats().contexts)).toEqual([1, 1]);
    expect(rings[0]!.epoch).toBe(rings[1]!.epoch);
    expect(contexts.map((ctx) => ctx.ticketKeyStats().keys)).toEqual([1, 1]);

    const first = await visit(client, servers[0]!);
    expect(first.reused).toBe(false);
    expect((await visit(client, servers[1]!, first.der)).reused).toBe(true); // member 1 opens member 0's ticket

    // The next epoch: both rings switch to its key (the store gives both the same one).
    clock.advance(ROTATION_S * 1000);
    expect(rings[0]!.epoch).toBe(rings[1]!.epoch);
    // Each context now holds the new key first and the previous one (a sync at the boundary may still be in flight).
    await waitUntil(() => contexts.every((ctx) => ctx.ticketKeyStats().keys === 2));
    const afterRotation = await visit(client, servers[1]!, first.der);
    expect(afterRotation.reused).toBe(true); // the previous key still opens it
    const fresh = await visit(client, servers[0]!);
    expect((await visit(client, servers[1]!, fresh.der)).reused).toBe(true);

    // Past the retention of the first epoch's key: its tickets get a full handshake.
    clock.advance((RETENTION_S + 1) * 1000);
    await waitUntil(() => rings.every((ring) => ring.stats().rotations >= 2));
    expect((await visit(client, servers[1]!, first.der)).reused).toBe(false);
  } finally {
    for (const ring of rings) ring.close();
    await Promise.all(servers.map((server) => server.close()));
    for (const ctx of [...contexts, client]) ctx.close();
    await store.close();
  }
});

test('attach refuses a client context; detach leaves the keys in place; a closed ring refuses', async () => {
  const store = new MemoryStore();
  const ring = new TicketKeyRing({ store });
  const clientCtx = new TlsContext({ role: 'client', ca: pki.ca });
  const serverCtx = new TlsContext({ role: 'server', cert: pki.serverCert, key: pki.serverKey });
  try {
    await expect(ring.attach(clientCtx)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await ring.attach(serverCtx);
    const given = serverCtx.ticketKeyStats().keys; // the current key, and the next one in an epoch's second half
    expect(given).toBeGreaterThanOrEqual(1);
    ring.detach(serverCtx);
    expect(ring.stats().contexts).toBe(0);
    expect(serverCtx.ticketKeyStats().keys).toBe(given);
    ring.close();
    await expect(ring.attach(serverCtx)).rejects.toMatchObject({ code: 'ERR_TLS_SESSION_STORE_CLOSED' });
  } finally {
    ring.close();
    clientCtx.close();
    serverCtx.close();
    await store.close();
  }
});

/** Polls a condition the ring reaches by itself (a sync through the store) without a fixed sleep. */
async function waitUntil(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for the ring');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
