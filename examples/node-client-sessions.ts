/**
 * A node:tls client keeps its TLS session across processes, on any supported Node line:
 * 'session' event → Session.fromNodeSession → toDER (store it anywhere) → later, maybe in
 * another process: Session.fromDER → toNodeSession({ servername }) → tls.connect({ session }).
 *
 *   node dist/examples/node-client-sessions.js      (after npm install, which compiles dist/)
 *
 * On Node 22.23+/24.17+/26.3.1+ the client hands out its sessions in Node's host-binding envelope
 * and resumes only sessions bound to the connection's servername; on Node 20 both are plain DER.
 * The library hides the difference and keeps the binding: a session is never offered to a host
 * it was not authenticated for, unless you say so (rebindToServername).
 */
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { nodeSessionFormat, Session, SessionHostError } from '../lib';
import { devCertificate } from './dev-cert';

/** Connects, reads until the server closes (TLS 1.3 tickets come after the handshake), returns the last session Node handed out. */
async function visit(port: number, ca: Buffer, session?: Buffer): Promise<{ reused: boolean; nodeSession: Buffer | undefined }> {
  const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca, session });
  let nodeSession: Buffer | undefined;
  socket.on('session', (s: Buffer) => {
    nodeSession = s;
  });
  socket.resume();
  await once(socket, 'secureConnect');
  const reused = socket.isSessionReused();
  await once(socket, 'close');
  return { reused, nodeSession };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tls-session-client-'));
  const { key, cert } = devCertificate(join(dir, 'cert'));
  const server = tls.createServer({ key, cert }, (socket) => socket.end('hello\n'));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  try {
    const { format, decidedBy } = nodeSessionFormat();
    console.log(
      `Node ${process.version}: client sessions are ${format === 'wrapped' ? "wrapped in Node's host envelope" : 'plain DER'} (${decidedBy})`,
    );

    // First visit: a full handshake. Keep the session as DER.
    const first = await visit(port, cert);
    if (first.nodeSession === undefined) throw new Error('the server sent no session');
    const file = join(dir, 'session.der');
    {
      using session = Session.fromNodeSession(first.nodeSession);
      console.log(
        `first visit: resumed ${first.reused}; ${session.protocol}, authenticated for ${session.authenticatedHost ?? '(not recorded by this Node)'}`,
      );
      writeFileSync(file, session.toDER(), { mode: 0o600 }); // DER holds no host: keep the servername with it
    }

    // Later, maybe in another process: back to what this Node's tls.connect resumes.
    using saved = Session.fromDER(readFileSync(file));
    const second = await visit(port, cert, saved.toNodeSession({ servername: 'localhost' }));
    console.log(`second visit: resumed ${second.reused}`);

    // The host binding holds: this session is not offered to another host unless you mean it.
    using again = Session.fromNodeSession(first.nodeSession);
    try {
      again.toNodeSession({ servername: 'other.example' });
      console.log('other.example: bound (this Node records no host, and nothing else was asked)');
    } catch (error) {
      if (!(error instanceof SessionHostError)) throw error;
      console.log(`other.example: refused (${error.code})`);
    }
    if (!second.reused) process.exitCode = 1;
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: Error & { code?: string }) => {
  console.error(`node-client-sessions failed: ${error.code ?? ''} ${error.message}`);
  process.exitCode = 1;
});
