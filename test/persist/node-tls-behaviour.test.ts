/**
 * What Node 20 actually does with TLS session caching — the facts docs/PERSISTENCE.md states,
 * measured with real servers and clients:
 *  - TLS 1.2 without tickets: newSession/resumeSession carry the session (the store path);
 *    without those listeners nothing resumes (no internal server session cache).
 *  - TLS 1.2 with tickets (Node's default): no newSession; resumption by ticket.
 *  - TLS 1.3: newSession fires (once per ticket) but resumption never goes through
 *    resumeSession; it is by ticket only, decrypted with the server's ticket keys.
 *  - TLS 1.3 with SSL_OP_NO_TICKET: stateful tickets are stored via newSession but Node never
 *    looks them up, so nothing resumes.
 *  - A ticket resumes on another server only if that server has the same ticket keys.
 */
import { constants, randomBytes } from 'node:crypto';
import * as tls from 'node:tls';
import { makePki, Pki } from '../helpers/pki';
import { close, handshake, listen } from './helpers/tls-peers';

let pki: Pki;
beforeAll(() => {
  pki = makePki();
});

interface Observed {
  newSession: number;
  resumeSession: number;
  resumeHits: number;
  reused: boolean[];
  protocols: Array<string | null>;
}

/** Three sequential connections, each offering the last session received; a Map-backed cache. */
async function observe(serverOptions: tls.TlsOptions): Promise<Observed> {
  const cache = new Map<string, Buffer>();
  const seen: Observed = { newSession: 0, resumeSession: 0, resumeHits: 0, reused: [], protocols: [] };
  const server = tls.createServer({ key: pki.serverKey, cert: pki.serverCert, ...serverOptions }, (s) => s.end('hello'));
  server.on('newSession', (id: Buffer, data: Buffer, cb: () => void) => {
    seen.newSession++;
    cache.set(id.toString('hex'), data);
    cb();
  });
  server.on('resumeSession', (id: Buffer, cb: (e: null, d: Buffer | null) => void) => {
    seen.resumeSession++;
    const data = cache.get(id.toString('hex')) ?? null;
    if (data) seen.resumeHits++;
    cb(null, data);
  });
  const port = await listen(server);
  try {
    let session: Buffer | undefined;
    for (let i = 0; i < 3; i++) {
      const result = await handshake(pki, port, session);
      seen.reused.push(result.reused);
      seen.protocols.push(result.protocol);
      session = result.session ?? session;
    }
  } finally {
    await close(server);
  }
  return seen;
}

test('TLS 1.2 without tickets resumes through newSession/resumeSession', async () => {
  const seen = await observe({ maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET });
  expect(seen.protocols).toEqual(['TLSv1.2', 'TLSv1.2', 'TLSv1.2']);
  expect(seen.newSession).toBe(1);
  expect(seen.resumeHits).toBe(2);
  expect(seen.reused).toEqual([false, true, true]);
});

test('TLS 1.2 without tickets and without listeners resumes nothing (Node keeps no internal server cache)', async () => {
  const server = tls.createServer(
    { key: pki.serverKey, cert: pki.serverCert, maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET },
    (s) => s.end('hello'),
  );
  const port = await listen(server);
  try {
    const first = await handshake(pki, port);
    expect(first.session).toBeDefined();
    expect((await handshake(pki, port, first.session)).reused).toBe(false);
  } finally {
    await close(server);
  }
});

test('TLS 1.2 with tickets (default) resumes by ticket and never emits newSession', async () => {
  const seen = await observe({ maxVersion: 'TLSv1.2' });
  expect(seen.newSession).toBe(0);
  expect(seen.resumeHits).toBe(0);
  expect(seen.reused).toEqual([false, true, true]);
});

test('TLS 1.3 emits newSession but resumes only by ticket, never through resumeSession', async () => {
  const seen = await observe({});
  expect(seen.protocols).toEqual(['TLSv1.3', 'TLSv1.3', 'TLSv1.3']);
  expect(seen.newSession).toBeGreaterThanOrEqual(1);
  expect(seen.resumeHits).toBe(0);
  expect(seen.reused).toEqual([false, true, true]);
});

test('TLS 1.3 with SSL_OP_NO_TICKET (stateful tickets) stores via newSession but never resumes', async () => {
  const seen = await observe({ secureOptions: constants.SSL_OP_NO_TICKET });
  expect(seen.newSession).toBeGreaterThanOrEqual(3);
  expect(seen.resumeHits).toBe(0);
  expect(seen.reused).toEqual([false, false, false]);
});

test('a TLS 1.3 ticket resumes on another server only when both have the same ticket keys', async () => {
  const sharedKeys = randomBytes(48);
  const make = (keys?: Buffer) => tls.createServer({ key: pki.serverKey, cert: pki.serverCert, ticketKeys: keys }, (s) => s.end('hello'));
  const a = make(sharedKeys);
  const sameKeys = make(sharedKeys);
  const ownKeys = make();
  const [portA, portSame, portOwn] = [await listen(a), await listen(sameKeys), await listen(ownKeys)];
  try {
    const first = await handshake(pki, portA);
    expect(first.protocol).toBe('TLSv1.3');
    expect((await handshake(pki, portOwn, first.session)).reused).toBe(false);
    expect((await handshake(pki, portSame, first.session)).reused).toBe(true);
  } finally {
    await Promise.all([close(a), close(sameKeys), close(ownKeys)]);
  }
});

test('a TLS 1.3 client gets its session only after the handshake round trip: destroyed at once, it gets none', async () => {
  const server = tls.createServer({ key: pki.serverKey, cert: pki.serverCert }, () => {
    /* sends nothing */
  });
  const port = await listen(server);
  const sessionsSeen = (finish: (socket: tls.TLSSocket) => void) =>
    new Promise<number>((resolve, reject) => {
      let count = 0;
      const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.ca }, () => finish(socket));
      socket.on('session', () => {
        count++;
      });
      socket.once('error', reject);
      socket.once('close', () => resolve(count));
    });
  try {
    // Tickets arrive after the server reads the client's Finished: one more round trip.
    expect(await sessionsSeen((socket) => socket.destroy())).toBe(0);
    // Reading until the server closes delivers them (Node's server sends two tickets).
    expect(await sessionsSeen((socket) => socket.end())).toBeGreaterThanOrEqual(1);
  } finally {
    await close(server);
  }
});
