/**
 * Own TLS on the system OpenSSL: an engine server and an engine client on loopback, a session
 * saved as DER after the first connection and resumed by the second.
 *
 *   npm run build:ts && node dist/examples/system-tls.js
 *
 * The certificate is a throwaway one (examples/dev-cert.ts, in a temporary directory), for this demo only.
 */
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openssl, Session, TlsConnection, TlsContext } from '../lib';
import { devCertificate } from './dev-cert';

/** One client connection: returns the last session it received (owned) and whether it resumed. */
async function fetchGreeting(
  client: TlsContext,
  port: number,
  session?: Session,
): Promise<{ text: string; reused: boolean; session: Session | null }> {
  const conn = TlsConnection.connect(client, connect(port, '127.0.0.1'), { servername: 'localhost', session });
  let latest: Session | null = null;
  conn.on('session', (s) => {
    latest?.free(); // TLS 1.3 may send several tickets: keep the newest
    latest = s;
  });
  const chunks: Buffer[] = [];
  for await (const chunk of conn) chunks.push(chunk as Buffer);
  return { text: Buffer.concat(chunks).toString(), reused: conn.isSessionReused(), session: latest };
}

async function main(): Promise<void> {
  const { cert, key } = devCertificate(mkdtempSync(join(tmpdir(), 'system-tls-')));
  const serverContext = new TlsContext({ role: 'server', cert, key, minVersion: 'TLSv1.2' });
  const clientContext = new TlsContext({ role: 'client', ca: cert, minVersion: 'TLSv1.2' });

  const server = createServer((socket) => {
    const conn = TlsConnection.accept(serverContext, socket);
    conn.on('error', (err) => console.error('server connection:', err.message));
    conn.on('secure', () => conn.end(`hello over ${conn.getProtocol()} from ${openssl.version}\n`));
    conn.resume();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };

  const first = await fetchGreeting(clientContext, port);
  console.log(first.text.trim(), '| resumed:', first.reused);
  if (first.session === null) throw new Error('no session received');
  const saved = first.session.toDER(); // what you would put in a file or a cache
  first.session.free();

  using session = Session.fromDER(saved);
  const second = await fetchGreeting(clientContext, port, session);
  console.log(second.text.trim(), '| resumed:', second.reused);
  second.session?.free();

  server.close();
  serverContext.close();
  clientContext.close();
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
