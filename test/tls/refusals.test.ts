/**
 * Clean, typed endings where the engine says no: a peer that asks to renegotiate (the engine
 * refuses with SSL_OP_NO_RENEGOTIATION), and a handshake that fails with writes and end()
 * queued behind it. Regressions: a renegotiating TLS 1.2 server killed a writing engine client
 * with "TLS write failed (SSL_get_error 2)"; callbacks of writes queued before a failed
 * handshake were never called, so `await write()` hung forever.
 */
import { once } from 'node:events';
import { connect as netConnect, createServer } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { TlsConnection, TlsContext, TlsProtocolError, TlsSessionError } from '../../lib';
import { makePki, type Pki } from '../helpers/pki';

let pki: Pki;
beforeAll(() => {
  pki = makePki();
});

function writeAsync(conn: TlsConnection, data: string): Promise<Error | null> {
  return new Promise((resolve) => conn.write(data, (err) => resolve(err ?? null)));
}

test('a TLS 1.2 server that renegotiates mid-stream is refused; the writing engine client ends with a typed error naming why', async () => {
  const serverErrors: Error[] = [];
  const serverSide = createTlsServer({ key: pki.serverKey, cert: pki.serverCert, maxVersion: 'TLSv1.2' }, (socket: TLSSocket) => {
    socket.on('error', (e) => serverErrors.push(e));
    socket.once('data', () => socket.renegotiate({ rejectUnauthorized: false }, () => {}));
    socket.resume();
  });
  serverSide.listen(0, '127.0.0.1');
  await once(serverSide, 'listening');
  const { port } = serverSide.address() as { port: number };
  const ctx = new TlsContext({ role: 'client', ca: pki.ca });
  const conn = TlsConnection.connect(ctx, netConnect(port, '127.0.0.1'), { servername: 'localhost' });
  const errors: Error[] = [];
  conn.on('error', (e) => errors.push(e));
  await once(conn, 'secureConnect');
  // Writes keep coming while the HelloRequest arrives (before the fix, one of them failed with
  // "TLS write failed (SSL_get_error 2)": SSL_write wanted to read the renegotiation).
  const results: Array<Error | null> = [];
  for (let i = 0; i < 400 && !conn.destroyed; i++) {
    results.push(await writeAsync(conn, 'x'.repeat(4000)));
    if (i % 10 === 9) await new Promise((r) => setTimeout(r, 1));
  }
  if (!conn.closed) await once(conn, 'close');
  await promisify(serverSide.close.bind(serverSide))();
  ctx.close();

  expect(serverErrors.map((e) => e.message).join()).toMatch(/no renegotiation/);
  expect(errors).toHaveLength(1);
  expect(errors[0]).toBeInstanceOf(TlsProtocolError);
  expect(errors[0]!.message).toMatch(/asked to renegotiate/);
  const messages = [...errors, ...results.filter((r): r is Error => r !== null)].map((e) => e.message);
  expect(messages.join('\n')).not.toMatch(/SSL_get_error/);
});

test('an engine server refuses a node:tls client that renegotiates', async () => {
  const ctx = new TlsContext({ role: 'server', cert: pki.serverCert, key: pki.serverKey, maxVersion: 'TLSv1.2' });
  const serverErrors: Error[] = [];
  const tcp = createServer((socket) => {
    const conn = TlsConnection.accept(ctx, socket);
    conn.on('error', (e) => serverErrors.push(e));
    conn.resume();
  });
  tcp.listen(0, '127.0.0.1');
  await once(tcp, 'listening');
  const { port } = tcp.address() as { port: number };
  const { connect } = await import('node:tls');
  const client = connect({ port, host: '127.0.0.1', ca: pki.ca, servername: 'localhost', maxVersion: 'TLSv1.2' });
  await once(client, 'secureConnect');
  client.resume(); // reads the engine's answer
  const outcome = await new Promise<Error | null>((resolve) => {
    client.once('error', resolve);
    const ok = client.renegotiate({ rejectUnauthorized: false }, (err) => resolve(err ?? null));
    if (!ok) resolve(new Error('renegotiate() refused locally'));
  });
  client.destroy();
  await promisify(tcp.close.bind(tcp))();
  ctx.close();
  expect(outcome?.message).toMatch(/no renegotiation/); // node:tls's own error (another realm than jest's Error)
  for (const e of serverErrors) expect(e).toBeInstanceOf(TlsSessionError);
});

test('writes and end() queued before a failed handshake get the handshake error; nothing hangs', async () => {
  // A client that cannot verify the server: the handshake fails.
  const serverCtx = new TlsContext({ role: 'server', cert: pki.serverCert, key: pki.serverKey });
  const clientCtx = new TlsContext({ role: 'client', ca: pki.clientCert }); // not the CA that issued the server's certificate
  const tcp = createServer((socket) => {
    const conn = TlsConnection.accept(serverCtx, socket);
    conn.on('error', () => {});
  });
  tcp.listen(0, '127.0.0.1');
  await once(tcp, 'listening');
  const { port } = tcp.address() as { port: number };
  const conn = TlsConnection.connect(clientCtx, netConnect(port, '127.0.0.1'), { servername: 'localhost' });
  const errors: Error[] = [];
  conn.on('error', (e) => errors.push(e));
  const first = writeAsync(conn, 'queued before the handshake\n');
  const second = writeAsync(conn, 'and another\n');
  const ended = new Promise<Error | null>((resolve) => conn.end(((err?: Error | null) => resolve(err ?? null)) as () => void));
  const outcomes = await Promise.race([
    Promise.all([first, second, ended]),
    new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 10_000)),
  ]);
  if (!conn.closed) await once(conn, 'close');
  await promisify(tcp.close.bind(tcp))();
  serverCtx.close();
  clientCtx.close();

  expect(outcomes).not.toBe('hung');
  const [w1, w2, end] = outcomes as [Error | null, Error | null, Error | null];
  expect(errors[0]).toBeInstanceOf(TlsProtocolError);
  expect(w1).toBeInstanceOf(TlsSessionError);
  expect(w2).toBeInstanceOf(TlsSessionError);
  expect(end).toBeInstanceOf(Error);
});
