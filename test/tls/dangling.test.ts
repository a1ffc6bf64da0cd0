/**
 * The man pages' dangling-pointer scenario (SSL_CTX_sess_set_get_cb, SSL_get_session): one
 * SSL_SESSION referenced at once by JavaScript (an owned Session), by the context's internal
 * cache and by a live connection, released in every order, then flushSessions(). Every
 * ordering must leave the ledger balanced and must not crash; `npm run test:memcheck` runs
 * this file under valgrind, which fails on any invalid read, write or free.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import {
  getLeakDetection,
  ledger,
  liveTlsObjects,
  Session,
  SessionView,
  setLeakDetection,
  TlsConnection,
  TlsContext,
  type TicketKeyStats,
} from '../../lib';
import { makePki, type Pki } from '../helpers/pki';
import { blockUntilWorkerThreadGone, threadIdSlot, workerOutcome } from '../helpers/worker-exit';
import { duplexPair } from './helpers/duplex-pair';
import { destroyConnection, establish } from './helpers/established';

jest.setTimeout(120_000);

let pki: Pki;
beforeAll(() => {
  pki = makePki();
});

const FAR_FUTURE = new Date(Date.now() + 10 * 365 * 24 * 3600 * 1000);

function serverContext(): TlsContext {
  // TLS 1.2 with session IDs: the server's internal cache really holds the session.
  return new TlsContext({ role: 'server', cert: pki.serverCert, key: pki.serverKey, maxVersion: 'TLSv1.2', tickets: false });
}

function clientContext(): TlsContext {
  return new TlsContext({ role: 'client', ca: pki.ca, maxVersion: 'TLSv1.2', tickets: false, sessionCache: { mode: 'client' } });
}

type Holder = 'js' | 'cache' | 'connection';
const ORDERS: Holder[][] = [
  ['js', 'cache', 'connection'],
  ['js', 'connection', 'cache'],
  ['cache', 'js', 'connection'],
  ['cache', 'connection', 'js'],
  ['connection', 'js', 'cache'],
  ['connection', 'cache', 'js'],
];

describe.each([{ cacheRelease: 'flushSessions' as const }, { cacheRelease: 'close' as const }])(
  'one session held by JS, the context cache and live connections; the cache released by $cacheRelease',
  ({ cacheRelease }) => {
    test.each(ORDERS.map((o) => [o.join(' → '), o] as const))('released in the order %s', async (_name, order) => {
      const before = ledger();
      const objectsBefore = liveTlsObjects();
      const serverCtx = serverContext();
      const clientCtx = clientContext();
      const removed: string[] = [];
      serverCtx.on('removeSession', (view) => {
        removed.push(view.id.toString('hex'));
      });
      const e = await establish(serverCtx, clientCtx);
      const id = e.serverSession.id.toString('hex');
      expect(e.clientSession.id.toString('hex')).toBe(id);
      expect(serverCtx.sessionCacheStats().size).toBe(1);
      expect(clientCtx.sessionCacheStats().size).toBe(1);

      for (const holder of order) {
        if (holder === 'js') {
          expect(e.serverSession.free()).toBe(true);
          expect(e.clientSession.free()).toBe(true);
        } else if (holder === 'cache') {
          if (cacheRelease === 'flushSessions') {
            serverCtx.flushSessions(FAR_FUTURE);
            clientCtx.flushSessions(FAR_FUTURE);
            expect(serverCtx.sessionCacheStats().size).toBe(0);
            expect(clientCtx.sessionCacheStats().size).toBe(0);
            expect(removed).toEqual([id]);
          } else {
            serverCtx.close();
            clientCtx.close();
          }
        } else {
          await destroyConnection(e.client);
          await destroyConnection(e.server);
        }
      }
      if (!serverCtx.closed) {
        serverCtx.flushSessions(FAR_FUTURE);
        expect(serverCtx.sessionCacheStats().size).toBe(0);
      }
      const after = ledger();
      expect(after.live).toBe(before.live);
      // Server 'newSession', client 'session', and the client context's own 'newSession' (no
      // listener there: freed at once).
      expect(after.acquired - before.acquired).toBe(3);
      serverCtx.close();
      clientCtx.close();
      expect(liveTlsObjects()).toBe(objectsBefore); // every SSL and SSL_CTX owner released
    });
  },
);

test('a resumed connection keeps its session after JS freed it, the lookup returned it and the cache flushed it', async () => {
  const before = ledger();
  const serverCtx = serverContext();
  const clientCtx = clientContext();
  const first = await establish(serverCtx, clientCtx);
  // An external copy: flushing marks the cached SSL_SESSION object itself not resumable.
  const external = Session.fromDER(first.serverSession.toDER());
  // Empty the internal cache: the second handshake must ask the lookup function.
  serverCtx.flushSessions(FAR_FUTURE);
  let asked = 0;
  serverCtx.setSessionLookup((id) => {
    asked++;
    expect(id.equals(external.id)).toBe(true);
    return external; // OpenSSL gets its own copy (get_session_cb: SSL_SESSION_dup, then *copy = 0)
  });
  const second = await establish(serverCtx, clientCtx, first.clientSession);
  expect(asked).toBe(1);
  expect(second.client.isSessionReused()).toBe(true);
  expect(second.server.isSessionReused()).toBe(true);
  expect(serverCtx.sessionCacheStats().callbackHits).toBe(1);
  // Drop every JS reference while the resumed connections still use the session.
  expect(external.free()).toBe(true);
  first.serverSession.free();
  first.clientSession.free();
  await destroyConnection(first.client);
  await destroyConnection(first.server);
  serverCtx.flushSessions(FAR_FUTURE);
  clientCtx.flushSessions(FAR_FUTURE);
  // The live connections still read their (OpenSSL-held) session.
  const live = second.server.getSession();
  expect(live?.isResumable).toBe(false); // flushed sessions are marked not resumable
  live?.free();
  await destroyConnection(second.client);
  await destroyConnection(second.server);
  serverCtx.close();
  clientCtx.close();
  expect(ledger().live).toBe(before.live);
});

test("a lookup may answer with DER: the decoded session is OpenSSL's only reference", async () => {
  const before = ledger();
  const serverCtx = serverContext();
  const clientCtx = clientContext();
  const first = await establish(serverCtx, clientCtx);
  const der = first.serverSession.toDER();
  first.serverSession.free();
  serverCtx.flushSessions(FAR_FUTURE);
  serverCtx.setSessionLookup(() => der);
  const second = await establish(serverCtx, clientCtx, first.clientSession);
  expect(second.server.isSessionReused()).toBe(true);
  first.clientSession.free();
  for (const c of [first.client, first.server, second.client, second.server]) await destroyConnection(c);
  serverCtx.flushSessions(FAR_FUTURE);
  serverCtx.close();
  clientCtx.close();
  expect(ledger().live).toBe(before.live);
});

test('the removeSession view lives for the listener only; clone() keeps an owned reference', async () => {
  const before = ledger();
  const serverCtx = serverContext();
  const clientCtx = clientContext();
  const e = await establish(serverCtx, clientCtx);
  let view: SessionView | undefined;
  let kept: Session | undefined;
  let derInside: Buffer | undefined;
  serverCtx.on('removeSession', (v) => {
    view = v;
    derInside = v.toDER();
    kept = v.clone();
    expect(() => serverCtx.flushSessions()).toThrow(expect.objectContaining({ code: 'ERR_TLS_SESSION_STATE' }));
  });
  e.serverSession.free();
  e.clientSession.free();
  serverCtx.flushSessions(FAR_FUTURE);
  expect(view).toBeInstanceOf(SessionView);
  expect(view!.valid).toBe(false);
  expect(() => view!.toDER()).toThrow(expect.objectContaining({ code: 'ERR_TLS_SESSION_VIEW_EXPIRED' }));
  expect(kept!.toDER().equals(derInside!)).toBe(true);
  expect(kept!.free()).toBe(true);
  await destroyConnection(e.client);
  await destroyConnection(e.server);
  serverCtx.close();
  clientCtx.close();
  expect(ledger().live).toBe(before.live);
});

test('listeners that destroy connections, close the context and free sessions from inside callbacks', async () => {
  const before = ledger();
  const serverCtx = serverContext();
  const clientCtx = clientContext();
  const e = await establish(serverCtx, clientCtx);
  serverCtx.on('removeSession', () => {
    // Inside remove_cb (OpenSSL holds the SSL_CTX lock): every one of these is deferred or safe.
    e.server.destroy();
    e.client.destroy();
    e.serverSession.free();
    serverCtx.close();
  });
  serverCtx.flushSessions(FAR_FUTURE);
  expect(serverCtx.closed).toBe(true);
  expect(e.serverSession.freed).toBe(true);
  for (const c of [e.server, e.client]) if (!c.closed) await once(c, 'close').catch(() => undefined);
  e.clientSession.free();
  clientCtx.close();
  expect(ledger().live).toBe(before.live);
});

test('dropped contexts, connections and sessions are reclaimed by GC without calling JavaScript from finalizers', async () => {
  expect(typeof global.gc).toBe('function');
  const before = ledger();
  const mode = getLeakDetection();
  setLeakDetection('off'); // the two sessions below are dropped on purpose
  let removals = 0;
  await (async () => {
    const serverCtx = serverContext();
    const clientCtx = clientContext();
    serverCtx.on('removeSession', () => {
      removals++;
    });
    const e = await establish(serverCtx, clientCtx);
    // Connections not ended cleanly: SSL_free drops the session from the cache, firing remove_cb
    // from the finalizer, where it must stay silent.
    e.client.socket.destroy();
    e.server.socket.destroy();
    for (const c of [e.client, e.server]) if (!c.closed) await once(c, 'close').catch(() => undefined);
  })();
  const removalsBeforeGc = removals;
  for (let i = 0; i < 20 && ledger().live !== before.live; i++) {
    global.gc!();
    await new Promise((r) => setImmediate(r));
  }
  expect(ledger().live).toBe(before.live);
  expect(ledger().releasedBy.gc - before.releasedBy.gc).toBe(2);
  expect(removals).toBe(removalsBeforeGc);
  setLeakDetection(mode);
});

test('a worker that exits with live contexts, connections and sessions releases them at teardown', async () => {
  const before = ledger();
  const addon = join(__dirname, '..', '..', 'build', 'Release', 'tls_session.node');
  const source = `
    const { parentPort, workerData } = require('node:worker_threads');
    const b = require(workerData.addon);
    const held = [];
    let calls = 0;
    const dispatch = (event, arg) => { calls++; if (event === 0) held.push(arg); return undefined; };
    const server = new b.NativeTlsContext({ server: true, cert: Buffer.from(workerData.cert), key: Buffer.from(workerData.key),
      verifyPeer: false, requirePeerCertificate: false, cacheMode: 'server', tickets: false, maxVersion: 'TLSv1.2' }, dispatch);
    const client = new b.NativeTlsContext({ server: false, verifyPeer: false, requirePeerCertificate: false,
      cacheMode: 'client', tickets: false, maxVersion: 'TLSv1.2' }, dispatch);
    const conns = [];
    for (let i = 0; i < 3; i++) {
      const c = new b.NativeTlsConnection(client, {});
      const s = new b.NativeTlsConnection(server, {});
      let toServer = c.cycle(undefined).out, secure = 0;
      for (let round = 0; round < 10 && secure < 2; round++) {
        const rs = s.cycle(toServer); if (rs.secure) secure++;
        const rc = c.cycle(rs.out); if (rc.secure) secure++;
        for (const h of rc.sessions) held.push(h);
        toServer = rc.out;
      }
      conns.push(c, s, b.NativeTlsConnection);
    }
    parentPort.postMessage({ held: held.length, calls, live: b.ledger().liveInThisEnvironment });
    Atomics.store(workerData.tid, 0, Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop()));
    Atomics.notify(workerData.tid, 0);
    // Exit with everything still referenced: contexts, connections, sessions, cache entries.
  `;
  const tid = threadIdSlot();
  const worker = new Worker(source, { eval: true, workerData: { addon, cert: pki.serverCert, key: pki.serverKey, tid } });
  const outcome = workerOutcome<{ held: number; calls: number; live: number }>(worker);
  // Back to the event loop only once the worker thread has gone, as under CPU load: 'message' and
  // 'exit' then come in one go, and an 'exit' listener added after the message would miss it.
  blockUntilWorkerThreadGone(tid, 100_000);
  const message = await outcome.message;
  expect(await outcome.exit).toBe(0);
  // Per connection: the server context's newSession, the client context's newSession and the
  // client connection's session.
  expect(message.held).toBe(9);
  expect(message.live).toBe(9);
  const after = ledger();
  expect(after.acquired - before.acquired).toBe(9);
  expect(after.releasedBy.teardown - before.releasedBy.teardown).toBe(9);
  expect(after.live).toBe(before.live);
});

/** Rejects naming `what` if `promise` takes longer than 100 s (valgrind is slow): a failure, not a test timeout. */
function within<T>(what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 100_000);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

test('ticket keys: replaced inside a handshake, used after close() by a live connection, freed with the SSL_CTX (GC, teardown)', async () => {
  const before = ledger();
  const objectsBefore = liveTlsObjects();
  const [A, B, C] = [randomBytes(48), randomBytes(48), randomBytes(48)];
  const tls13 = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' } as const;
  const serverCtx = new TlsContext({ role: 'server', cert: pki.serverCert, key: pki.serverKey, ...tls13 });
  const clientCtx = new TlsContext({ role: 'client', ca: pki.ca, ...tls13 });
  serverCtx.setTicketKeys([A]);
  // Inside SSL_do_handshake, between the two TLS 1.3 tickets: the list the first ticket was
  // sealed with is wiped and freed here, the second ticket is sealed with the new one.
  const rotations: TicketKeyStats[] = [];
  serverCtx.on('newSession', (s: Session) => {
    s.free();
    if (rotations.length === 0) serverCtx.setTicketKeys([B, A]);
    rotations.push(serverCtx.ticketKeyStats());
  });
  const handshake = async (ctx: TlsContext, offered?: Session, closeFirst = false) => {
    const [a, b] = duplexPair();
    const server = TlsConnection.accept(ctx, b);
    // The connection keeps the SSL_CTX (and its keys) alive after close().
    if (closeFirst) ctx.close();
    const client = TlsConnection.connect(clientCtx, a, { servername: 'localhost', session: offered });
    const sessions: Session[] = [];
    client.on('session', (s: Session) => sessions.push(s));
    await within('the handshake', Promise.all([once(client, 'secureConnect'), once(server, 'secure')]));
    client.write('ping');
    await within("the client's data", once(server, 'data')); // the tickets came before it
    const reused = [client.isSessionReused(), server.isSessionReused()];
    await within('the connections closing', Promise.all([destroyConnection(client), destroyConnection(server)]));
    return { reused, sessions };
  };
  const first = await handshake(serverCtx);
  expect(rotations.map((s) => s.keys)).toEqual([2, 2]);
  expect(first.sessions).toHaveLength(2);
  // A ticket starts with its key's name: the first was sealed under A, the second under B.
  expect(first.sessions.map((x) => [x.toDER().includes(A.subarray(0, 16)), x.toDER().includes(B.subarray(0, 16))])).toEqual([
    [true, false],
    [false, true],
  ]);
  serverCtx.setTicketKeys([C, B]);
  const second = await handshake(serverCtx, first.sessions[1], true);
  expect(serverCtx.closed).toBe(true);
  expect(second.reused).toEqual([true, true]);
  // A new context with C alone opens the tickets that the closed context's SSL_CTX sealed.
  const member = new TlsContext({ role: 'server', cert: pki.serverCert, key: pki.serverKey, ...tls13 });
  member.setTicketKeys([C]);
  expect(second.sessions.length).toBeGreaterThan(0);
  const third = await handshake(member, second.sessions[0]);
  expect(third.reused).toEqual([true, true]);
  for (const s of [...first.sessions, ...second.sessions, ...third.sessions]) s.free();
  member.close();
  clientCtx.close();

  // A context with keys dropped unclosed: its SSL_CTX (and the keys) go with the GC.
  const mode = getLeakDetection();
  setLeakDetection('off');
  (() => new TlsContext({ role: 'server', cert: pki.serverCert, key: pki.serverKey }).setTicketKeys([A, B]))();
  for (let i = 0; i < 20 && liveTlsObjects() !== objectsBefore; i++) {
    global.gc!();
    await new Promise((r) => setImmediate(r));
  }
  setLeakDetection(mode);
  expect(liveTlsObjects()).toBe(objectsBefore);

  // A worker that exits with keys set on a live context that issued tickets: freed at teardown.
  const addon = join(__dirname, '..', '..', 'build', 'Release', 'tls_session.node');
  const source = `
    const { parentPort, workerData } = require('node:worker_threads');
    const b = require(workerData.addon);
    const held = [];
    const dispatch = (event, arg) => { if (event === 0) held.push(arg); return undefined; };
    const options = { verifyPeer: false, requirePeerCertificate: false, tickets: true, minVersion: 'TLSv1.3' };
    const server = new b.NativeTlsContext({ ...options, server: true, cert: Buffer.from(workerData.cert),
      key: Buffer.from(workerData.key), cacheMode: 'server' }, dispatch);
    const client = new b.NativeTlsContext({ ...options, server: false, cacheMode: 'client' }, dispatch);
    server.setTicketKeys(workerData.keys.map((k) => Buffer.from(k)));
    const conns = [];
    let toServer = null;
    const c = new b.NativeTlsConnection(client, {});
    const s = new b.NativeTlsConnection(server, {});
    toServer = c.cycle(undefined).out;
    for (let round = 0; round < 10; round++) {
      const rs = s.cycle(toServer);
      const rc = c.cycle(rs.out);
      for (const h of rc.sessions) held.push(h);
      toServer = rc.out;
    }
    conns.push(c, s);
    parentPort.postMessage({ stats: server.ticketKeyStats(), held: held.length });
    // Exit with the contexts, the connections and the sessions still referenced.
  `;
  const worker = new Worker(source, { eval: true, workerData: { addon, cert: pki.serverCert, key: pki.serverKey, keys: [A, B] } });
  const exited = once(worker, 'exit');
  const [message] = (await within("the worker's message", once(worker, 'message'))) as [{ stats: TicketKeyStats; held: number }];
  const [code] = (await within('the worker exiting', exited)) as [number];
  expect(code).toBe(0);
  expect(message.stats).toMatchObject({ keys: 2, issued: 2, failed: 0 });
  expect(message.held).toBeGreaterThan(0);
  expect(ledger().live).toBe(before.live);
}, 300_000); // several handshakes, a GC and a worker: minutes under valgrind
