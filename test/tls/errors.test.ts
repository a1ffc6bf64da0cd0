/**
 * Bad input and bad peers: typed errors carrying OpenSSL's reason, no secret in any message,
 * and nothing left behind (session ledger and live native TLS objects back to where they were).
 */
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect as netConnect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { TlsConfigError, TlsConnection, TlsContext, TlsDisconnectError, TlsProtocolError } from '../../lib';
import { makePki, type Pki } from '../helpers/pki';
import { duplexPair } from './helpers/duplex-pair';
import { expectNothingLeftAfterEach } from './helpers/nothing-left';

// At load: the test tables below use them.
const pki: Pki = makePki();
const PASSPHRASE = 'correct horse battery staple';
execFileSync('openssl', ['pkey', '-in', pki.serverKeyPath, '-aes256', '-passout', `pass:${PASSPHRASE}`, '-out', join(pki.dir, 'enc.key')]);
const encryptedKey: Buffer = readFileSync(join(pki.dir, 'enc.key'));

expectNothingLeftAfterEach();

function expectSecretFree(err: unknown): void {
  const text = `${String(err)} ${JSON.stringify(err)} ${(err as Error).stack ?? ''}`;
  expect(text).not.toContain(PASSPHRASE);
  expect(text).not.toContain('PRIVATE KEY');
}

describe('bad certificates, keys and options', () => {
  const server = (extra: object) => new TlsContext({ role: 'server', cert: pki.serverCert, key: pki.serverKey, ...extra });

  test.each([
    ['a certificate that is not PEM', { cert: Buffer.from('not a certificate') }, /no start line|PEM/i],
    ['a truncated certificate', { cert: pki.serverCert.subarray(0, 200) }, /PEM|bad|header|base64|too long|nested asn1/i],
    ['a key that is not PEM', { key: 'garbage' }, /unsupported|no start line|decoder|PEM/i],
    ['a key that does not match the certificate', { key: pki.clientKey }, /key values mismatch/i],
    ['a CA that is not PEM', { ca: 'nope', requestCert: true }, /no start line|PEM/i],
    ['an unknown cipher list', { ciphers: 'NO-SUCH-CIPHER' }, /no cipher match/i],
    ['an encrypted key without its passphrase', { key: encryptedKey }, /.+/],
    ['an encrypted key with a wrong passphrase', { key: encryptedKey, passphrase: 'wrong' }, /.+/],
  ])("%s: TlsConfigError with OpenSSL's reason", (_name, extra, reason) => {
    let error: unknown;
    try {
      server(extra).close();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TlsConfigError);
    expect(error).toMatchObject({ code: 'ERR_TLS_SESSION_CONFIG' });
    expect((error as TlsConfigError).opensslReason).toMatch(reason);
    expectSecretFree(error);
  });

  test('an encrypted key with the right passphrase loads', () => {
    const ctx = server({ key: encryptedKey, passphrase: PASSPHRASE });
    expect(ctx.closed).toBe(false);
    ctx.close();
  });

  test.each([
    ['role', { role: 'peer' }, 'ERR_INVALID_ARG_TYPE'],
    ['minVersion', { role: 'client', minVersion: 'TLSv9' }, 'ERR_OUT_OF_RANGE'],
    ['sessionCache.mode', { role: 'client', sessionCache: { mode: 'sometimes' } }, 'ERR_OUT_OF_RANGE'],
    ['sessionCache.size', { role: 'client', sessionCache: { size: -1 } }, 'ERR_OUT_OF_RANGE'],
    ['alpnProtocols', { role: 'client', alpnProtocols: 'h2' }, 'ERR_INVALID_ARG_TYPE'],
    ['a server without cert', { role: 'server' }, 'ERR_INVALID_ARG_TYPE'],
    ['tickets', { role: 'client', tickets: 'yes' }, 'ERR_INVALID_ARG_TYPE'],
  ])('invalid option %s: typed error %s', (_name, options, code) => {
    expect(() => new TlsContext(options as never)).toThrow(expect.objectContaining({ code }));
  });

  test('a client that verifies must be told what to verify', () => {
    const ctx = new TlsContext({ role: 'client', ca: pki.ca });
    const [a] = duplexPair();
    expect(() => TlsConnection.connect(ctx, a, {})).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    a.destroy();
    ctx.close();
  });

  test('misuse of a closed context or a freed session is a typed error, not a crash', () => {
    const ctx = new TlsContext({ role: 'client', ca: pki.ca });
    ctx.close();
    const [a] = duplexPair();
    expect(() => TlsConnection.connect(ctx, a, { servername: 'localhost' })).toThrow(
      expect.objectContaining({ code: 'ERR_TLS_SESSION_STATE' }),
    );
    expect(() => ctx.flushSessions()).toThrow(expect.objectContaining({ code: 'ERR_TLS_SESSION_STATE' }));
    a.destroy();
  });
});

/** Resolves with the error the connection was destroyed with. */
function failure(conn: TlsConnection): Promise<Error> {
  return new Promise((resolve, reject) => {
    conn.on('error', resolve);
    conn.on('close', () => setImmediate(() => reject(new Error('closed without an error'))));
  });
}

describe('bad peers', () => {
  test('a client that sends garbage: the engine server fails with TlsProtocolError', async () => {
    const ctx = new TlsContext({ role: 'server', cert: pki.serverCert, key: pki.serverKey });
    const [peer, mine] = duplexPair();
    const conn = TlsConnection.accept(ctx, mine);
    peer.resume();
    peer.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
    const error = await failure(conn);
    expect(error).toBeInstanceOf(TlsProtocolError);
    expect(error).toMatchObject({ code: 'ERR_TLS_SESSION_PROTOCOL' });
    expect((error as TlsProtocolError).opensslReason).toMatch(/http request|wrong version number|record/i);
    // (OpenSSL answers an HTTP request with no alert, just the failure.)
    ctx.close();
  });

  test('a server that answers with garbage: the engine client fails with TlsProtocolError', async () => {
    const ctx = new TlsContext({ role: 'client', ca: pki.ca });
    const [peer, mine] = duplexPair();
    peer.once('data', () => peer.write(Buffer.alloc(64, 0x42)));
    const conn = TlsConnection.connect(ctx, mine, { servername: 'localhost' });
    const error = await failure(conn);
    expect(error).toBeInstanceOf(TlsProtocolError);
    expect((error as TlsProtocolError).opensslReason).toBeTruthy();
    ctx.close();
  });

  test('garbage after the handshake fails the established connection', async () => {
    const serverCtx = new TlsContext({ role: 'server', cert: pki.serverCert, key: pki.serverKey });
    const clientCtx = new TlsContext({ role: 'client', ca: pki.ca });
    // A transport that can be hijacked: forward until told to corrupt.
    const [a, b] = duplexPair();
    const server = TlsConnection.accept(serverCtx, b);
    const client = TlsConnection.connect(clientCtx, a, { servername: 'localhost' });
    server.on('error', () => {});
    await Promise.all([once(client, 'secureConnect'), once(server, 'secure')]);
    const failed = failure(client);
    b.write(Buffer.from([0x17, 0x03, 0x03, 0x00, 0x20, ...Buffer.alloc(32, 0x99)])); // a record that does not decrypt
    const error = await failed;
    expect(error).toBeInstanceOf(TlsProtocolError);
    expect((error as TlsProtocolError).opensslReason).toMatch(/decrypt|bad record mac|mac/i);
    if (!server.closed) server.destroy();
    serverCtx.close();
    clientCtx.close();
  });

  test('a server certificate from an unknown CA: TlsProtocolError with the verify error', async () => {
    const serverCtx = new TlsContext({ role: 'server', cert: pki.serverCert, key: pki.serverKey });
    const other = makePki();
    const clientCtx = new TlsContext({ role: 'client', ca: other.ca });
    const [a, b] = duplexPair();
    const server = TlsConnection.accept(serverCtx, b);
    server.on('error', () => {});
    const client = TlsConnection.connect(clientCtx, a, { servername: 'localhost' });
    const error = await failure(client);
    expect(error).toBeInstanceOf(TlsProtocolError);
    expect((error as TlsProtocolError).verifyError).toMatch(/unable to get local issuer certificate/);
    if (!server.closed) await once(server, 'close');
    serverCtx.close();
    clientCtx.close();
  });

  test('a certificate for another host: TlsProtocolError (hostname mismatch)', async () => {
    const serverCtx = new TlsContext({ role: 'server', cert: pki.serverCert, key: pki.serverKey });
    const clientCtx = new TlsContext({ role: 'client', ca: pki.ca });
    const [a, b] = duplexPair();
    const server = TlsConnection.accept(serverCtx, b);
    server.on('error', () => {});
    const client = TlsConnection.connect(clientCtx, a, { servername: 'example.org' });
    const error = await failure(client);
    expect((error as TlsProtocolError).verifyError).toMatch(/hostname mismatch/);
    if (!server.closed) await once(server, 'close');
    serverCtx.close();
    clientCtx.close();
  });

  test('a TCP server that hangs up mid-handshake: TlsDisconnectError (ECONNRESET)', async () => {
    const sockets: Socket[] = [];
    const tcp = createServer((s) => {
      sockets.push(s);
      s.once('data', () => s.end()); // read the ClientHello, answer with a FIN
    });
    tcp.listen(0, '127.0.0.1');
    await once(tcp, 'listening');
    const ctx = new TlsContext({ role: 'client', ca: pki.ca });
    const socket = netConnect((tcp.address() as { port: number }).port, '127.0.0.1');
    const conn = TlsConnection.connect(ctx, socket, { servername: 'localhost' });
    const error = await failure(conn);
    expect(error).toBeInstanceOf(TlsDisconnectError);
    expect(error).toMatchObject({ code: 'ECONNRESET' });
    await new Promise<void>((r) => tcp.close(() => r()));
    ctx.close();
  });

  test('a client that disconnects after half a ClientHello: the engine server reports ECONNRESET', async () => {
    const ctx = new TlsContext({ role: 'server', cert: pki.serverCert, key: pki.serverKey });
    // A real ClientHello from an engine client, cut in half.
    const clientCtx = new TlsContext({ role: 'client', rejectUnauthorized: false });
    const capture = new Duplex({
      read() {},
      write(chunk, _e, cb) {
        hello.push(chunk);
        cb();
      },
    });
    const hello: Buffer[] = [];
    const probe = TlsConnection.connect(clientCtx, capture, {});
    probe.on('error', () => {});
    while (hello.length === 0) await new Promise((r) => setImmediate(r));
    probe.destroy();
    const bytes = Buffer.concat(hello);
    const [peer, mine] = duplexPair();
    const conn = TlsConnection.accept(ctx, mine);
    peer.end(bytes.subarray(0, bytes.length >> 1));
    const error = await failure(conn);
    expect(error).toBeInstanceOf(TlsDisconnectError);
    ctx.close();
    clientCtx.close();
  });

  test("a transport error mid-handshake is the connection's error", async () => {
    const ctx = new TlsContext({ role: 'client', ca: pki.ca });
    const [peer, mine] = duplexPair();
    const conn = TlsConnection.connect(ctx, mine, { servername: 'localhost' });
    peer.once('data', () => mine.destroy(Object.assign(new Error('boom'), { code: 'EPIPE' })));
    const error = await failure(conn);
    expect(error).toMatchObject({ code: 'EPIPE' });
    ctx.close();
  });
});
