/**
 * TlsConnection as a stream, against node:tls: data both ways, backpressure, half-close,
 * ALPN, client certificates and the tls.TLSSocket-like getters.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import * as tls from 'node:tls';
import { ledger, liveTlsObjects, type Session, TlsConnection, TlsContext } from '../../lib';
import { makePki, type Pki } from '../helpers/pki';
import { closed, readAll, startEngineServer } from './helpers/peers';

let pki: Pki;
beforeAll(() => {
  pki = makePki();
});

async function nodeServer(options: tls.TlsOptions, onSocket: (s: tls.TLSSocket) => void) {
  const server = tls.createServer({ key: pki.serverKey, cert: pki.serverCert, ...options }, (s) => {
    s.on('error', () => {});
    onSocket(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as { port: number }).port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('8 MiB each way through a node:tls echo server, with backpressure on the writer', async () => {
  const before = ledger();
  const server = await nodeServer({}, (s) => s.pipe(s));
  const ctx = new TlsContext({ role: 'client', ca: pki.ca });
  const conn = TlsConnection.connect(ctx, netConnect(server.port, '127.0.0.1'), { servername: 'localhost' });
  await once(conn, 'secureConnect');
  const payload = randomBytes(8 * 1024 * 1024);
  const received = readAll(conn);
  let sawBackpressure = false;
  for (let offset = 0; offset < payload.length; offset += 64 * 1024) {
    if (!conn.write(payload.subarray(offset, offset + 64 * 1024))) {
      sawBackpressure = true;
      await once(conn, 'drain');
    }
  }
  conn.end();
  const echoed = await received;
  expect(sawBackpressure).toBe(true);
  expect(echoed.length).toBe(payload.length);
  expect(sha(echoed)).toBe(sha(payload));
  await closed(conn);
  ctx.close();
  await server.close();
  expect(ledger().live).toBe(before.live);
});

test("half-close: after the client's end() (close_notify), the server can still answer", async () => {
  let serverSawEnd = false;
  const server = await nodeServer({ allowHalfOpen: true }, (s) => {
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('end', () => {
      serverSawEnd = true;
      s.end(`got ${Buffer.concat(chunks).toString()}`);
    });
  });
  const ctx = new TlsContext({ role: 'client', ca: pki.ca });
  const conn = TlsConnection.connect(ctx, netConnect({ port: server.port, host: '127.0.0.1', allowHalfOpen: true }), {
    servername: 'localhost',
  });
  conn.end('question');
  const answer = await readAll(conn);
  expect(serverSawEnd).toBe(true);
  expect(answer.toString()).toBe('got question');
  await closed(conn);
  ctx.close();
  await server.close();
});

test('the engine server half-closes too: node:tls client ends, the engine answers after end', async () => {
  const ctx = new TlsContext({ role: 'server', cert: pki.serverCert, key: pki.serverKey });
  const objects = liveTlsObjects();
  const net = await import('node:net');
  const tcp = net.createServer({ allowHalfOpen: true }, (socket) => {
    const conn = TlsConnection.accept(ctx, socket, { allowHalfOpen: true });
    const chunks: Buffer[] = [];
    conn.on('data', (d: Buffer) => chunks.push(d));
    conn.on('end', () => conn.end(`engine got ${Buffer.concat(chunks).toString()}`));
    conn.on('error', () => {});
  });
  tcp.listen(0, '127.0.0.1');
  await once(tcp, 'listening');
  const client = tls.connect({
    port: (tcp.address() as { port: number }).port,
    host: '127.0.0.1',
    servername: 'localhost',
    ca: pki.ca,
    allowHalfOpen: true,
  } as tls.ConnectionOptions);
  client.end('ping');
  const answer = await readAll(client);
  expect(answer.toString()).toBe('engine got ping');
  await new Promise<void>((r) => tcp.close(() => r()));
  ctx.close();
  expect(liveTlsObjects()).toBeLessThanOrEqual(objects);
});

test('getters: protocol, cipher, peer certificate, ALPN and authorization, like tls.TLSSocket', async () => {
  const server = await nodeServer({ ALPNProtocols: ['h2', 'http/1.1'], maxVersion: 'TLSv1.2' }, (s) => s.end('x'));
  const ctx = new TlsContext({ role: 'client', ca: pki.ca, alpnProtocols: ['http/1.1', 'h2'] });
  const conn = TlsConnection.connect(ctx, netConnect(server.port, '127.0.0.1'), { servername: 'localhost' });
  expect(conn.getProtocol()).toBeNull();
  expect(conn.alpnProtocol).toBe(false);
  await once(conn, 'secureConnect');
  expect(conn.getProtocol()).toBe('TLSv1.2');
  expect(conn.getCipher()).toMatchObject({ name: expect.stringMatching(/ECDHE-ECDSA/), version: 'TLSv1.2' });
  expect(conn.getCipher()!.standardName).toMatch(/^TLS_ECDHE_ECDSA_/);
  expect(conn.getPeerCertificate()!.subject).toContain('CN=localhost');
  expect(conn.alpnProtocol).toBe('h2'); // the server's preference wins
  expect(conn.authorized).toBe(true);
  expect(conn.authorizationError).toBeUndefined();
  conn.resume();
  await closed(conn);
  ctx.close();
  await server.close();
});

test("client certificates: an engine server that requests one sees the node:tls client's", async () => {
  const ctx = new TlsContext({
    role: 'server',
    cert: pki.serverCert,
    key: pki.serverKey,
    ca: pki.ca,
    requestCert: true,
    alpnProtocols: ['h2'],
  });
  const server = await startEngineServer(ctx);
  const client = tls.connect({
    port: server.port,
    host: '127.0.0.1',
    servername: 'localhost',
    ca: pki.ca,
    cert: pki.clientCert,
    key: pki.clientKey,
    ALPNProtocols: ['h2'],
  });
  await once(client, 'secureConnect');
  expect(client.alpnProtocol).toBe('h2');
  client.resume();
  await once(client, 'close');
  const conn = server.connections[0];
  expect(conn.authorized).toBe(true);
  expect(conn.getPeerCertificate()!.subject).toContain('CN=tls-session test client');
  expect(conn.alpnProtocol).toBe('h2');
  await server.close();
  ctx.close();
});

test('an engine server that requires a certificate refuses a client without one', async () => {
  const ctx = new TlsContext({
    role: 'server',
    cert: pki.serverCert,
    key: pki.serverKey,
    ca: pki.ca,
    requestCert: true,
    maxVersion: 'TLSv1.2',
  });
  const server = await startEngineServer(ctx);
  const client = tls.connect({ port: server.port, host: '127.0.0.1', servername: 'localhost', ca: pki.ca });
  const [error] = (await once(client, 'error')) as [Error & { code?: string }];
  expect(error.code).toMatch(/ERR_SSL|ECONNRESET/);
  while (server.errors.length === 0) await new Promise((r) => setImmediate(r));
  expect(server.errors[0]).toMatchObject({ code: 'ERR_TLS_SESSION_PROTOCOL' });
  expect((server.errors[0] as { opensslReason?: string }).opensslReason).toMatch(/peer did not return a certificate/);
  await server.close();
  ctx.close();
});

test('setSession() after the handshake started is refused with a typed error', async () => {
  const server = await nodeServer({}, (s) => setImmediate(() => s.end('x')));
  const ctx = new TlsContext({ role: 'client', ca: pki.ca });
  const conn = TlsConnection.connect(ctx, netConnect(server.port, '127.0.0.1'), { servername: 'localhost' });
  await once(conn, 'secureConnect');
  const session = conn.getSession();
  expect(session).not.toBeNull();
  expect(() => conn.setSession(session!)).toThrow(expect.objectContaining({ code: 'ERR_TLS_SESSION_STATE' }));
  session!.free();
  conn.resume();
  await closed(conn);
  expect(conn.getSession()).toBeNull();
  ctx.close();
  await server.close();
});

test('setSession() in the same tick as connect() resumes, and the caller still owns its Session', async () => {
  const before = ledger();
  const server = await nodeServer({ maxVersion: 'TLSv1.2' }, (s) => s.end('x'));
  const ctx = new TlsContext({ role: 'client', ca: pki.ca });
  const first = TlsConnection.connect(ctx, netConnect(server.port, '127.0.0.1'), { servername: 'localhost' });
  const got: { session: Session | null } = { session: null };
  first.once('secureConnect', () => {
    got.session = first.getSession();
  }); // while the SSL is live
  first.resume();
  await closed(first);
  const session = got.session;
  if (session === null) throw new Error('no session');
  const second = TlsConnection.connect(ctx, netConnect(server.port, '127.0.0.1'), { servername: 'localhost' });
  second.setSession(session);
  expect(session.free()).toBe(true); // OpenSSL holds its own reference from here
  second.resume();
  await once(second, 'secureConnect');
  expect(second.isSessionReused()).toBe(true);
  await closed(second);
  ctx.close();
  await server.close();
  expect(ledger().live).toBe(before.live);
});
