/** node:tls servers for the interop tests: one per protocol variant, resuming TLS 1.2 session IDs through a Map. */
import { constants } from 'node:crypto';
import { once } from 'node:events';
import * as tls from 'node:tls';
import type { Pki } from './pki';

export interface TlsVariant {
  name: string;
  version: 'TLSv1.2' | 'TLSv1.3';
  tickets: boolean;
}

/** The three ways a session resumes: TLS 1.2 session IDs, TLS 1.2 tickets, TLS 1.3 tickets. */
export const TLS_VARIANTS: TlsVariant[] = [
  { name: 'TLS 1.2 with session IDs', version: 'TLSv1.2', tickets: false },
  { name: 'TLS 1.2 with tickets', version: 'TLSv1.2', tickets: true },
  { name: 'TLS 1.3 with tickets', version: 'TLSv1.3', tickets: true },
];

export interface NodeTlsServer {
  port: number;
  /** The server side's session data from 'newSession' (plain DER), in order. */
  serverSessions: Buffer[];
  /** isSessionReused() of each connection, in order. */
  reused: boolean[];
  close(): Promise<void>;
}

/** A node:tls server answering `hello\n`, with a Map as its session cache (Node's own server has none). */
export async function startNodeTlsServer(pki: Pki, v: TlsVariant): Promise<NodeTlsServer> {
  const cache = new Map<string, Buffer>();
  const serverSessions: Buffer[] = [];
  const reused: boolean[] = [];
  const server = tls.createServer(
    {
      key: pki.serverKey,
      cert: pki.serverCert,
      minVersion: v.version,
      maxVersion: v.version,
      secureOptions: v.tickets ? 0 : constants.SSL_OP_NO_TICKET,
    },
    (socket) => {
      reused.push(socket.isSessionReused());
      socket.on('error', () => {});
      socket.end('hello\n');
    },
  );
  server.on('newSession', (id: Buffer, data: Buffer, done: () => void) => {
    serverSessions.push(data);
    cache.set(id.toString('hex'), data);
    done();
  });
  server.on('resumeSession', (id: Buffer, done: (e: Error | null, data: Buffer | null) => void) =>
    done(null, cache.get(id.toString('hex')) ?? null),
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as { port: number }).port,
    serverSessions,
    reused,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
