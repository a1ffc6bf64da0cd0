/** Real TLS peers on 127.0.0.1 for the persistence tests. */
import { constants } from 'node:crypto';
import * as tls from 'node:tls';
import { Session } from '../../../lib';
import type { Pki } from '../../helpers/pki';

export interface HandshakeResult {
  reused: boolean;
  protocol: string | null;
  /**
   * The last session the client received, as DER (undefined if the server sent none): what Node
   * handed out, read with Session.fromNodeSession and re-encoded with toDER, so it is the same
   * kind of bytes on every Node line (Node 22.23+/24.17+/26.3.1+ wrap client sessions).
   */
  session: Buffer | undefined;
  /** What the server sent (UTF-8). */
  data: string;
}

/** A TLS 1.2 server that resumes only by session ID (tickets off), so the store path is used. */
export function tls12Server(pki: Pki, extra: tls.TlsOptions = {}): tls.Server {
  return tls.createServer(
    {
      key: pki.serverKey,
      cert: pki.serverCert,
      maxVersion: 'TLSv1.2',
      secureOptions: constants.SSL_OP_NO_TICKET,
      ...extra,
    },
    (socket) => socket.end('hello'),
  );
}

/** A default (TLS 1.3, tickets) server that answers each connection with a few bytes. */
export function tls13Server(pki: Pki, extra: tls.TlsOptions = {}): tls.Server {
  return tls.createServer({ key: pki.serverKey, cert: pki.serverCert, ...extra }, (socket) => socket.end('hello'));
}

export function listen(server: tls.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

export function close(server: tls.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** What a DER session becomes for this Node's tls.connect, bound to `servername` (see Session#toNodeSession). */
export function forNode(der: Buffer, servername: string): Buffer {
  using session = Session.fromDER(der);
  return session.toNodeSession({ servername });
}

/** Node's client session (either form) as DER. */
export function fromNode(nodeSession: Buffer): Buffer {
  using session = Session.fromNodeSession(nodeSession);
  return session.toDER();
}

/**
 * One full client connection: handshake, write `request` if given (an HTTP server answers and
 * closes on `Connection: close`), read until the server closes, report reuse. `session` is DER
 * (as HandshakeResult.session is); it is handed to Node with toNodeSession for the connection's
 * servername ('localhost' unless `extra` says otherwise).
 */
export function handshake(
  pki: Pki,
  port: number,
  session?: Buffer,
  extra: tls.ConnectionOptions = {},
  request?: string,
): Promise<HandshakeResult> {
  // Node's identity for the session: servername, else host (no SNI for an IP address), else 'localhost'.
  const servername = 'servername' in extra && !extra.servername ? (extra.host ?? '127.0.0.1') : (extra.servername ?? 'localhost');
  const offered = session && forNode(session, servername);
  return new Promise((resolve, reject) => {
    let received: Buffer | undefined;
    let reused = false;
    let protocol: string | null = null;
    let data = '';
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.ca, ...extra, session: offered });
    socket.once('secureConnect', () => {
      reused = socket.isSessionReused();
      protocol = socket.getProtocol();
      if (request !== undefined) socket.write(request);
    });
    socket.on('session', (s: Buffer) => {
      received = s;
    });
    socket.setEncoding('utf8').on('data', (chunk: string) => {
      data += chunk;
    });
    socket.once('error', reject);
    socket.once('close', () => {
      try {
        resolve({ reused, protocol, session: received && fromNode(received), data });
      } catch (error) {
        reject(error);
      }
    });
  });
}

/** An HTTP/1.1 request after which the server answers and closes (for handshake() against https servers). */
export const HTTP_GET_CLOSE = 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n';
