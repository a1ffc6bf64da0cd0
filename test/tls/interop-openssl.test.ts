/**
 * The engine against the openssl CLI: engine client ↔ `openssl s_server`, and engine server ↔
 * `openssl s_client -sess_out/-sess_in`, for TLS 1.2 (session IDs, tickets) and TLS 1.3
 * (tickets). Sessions cross process boundaries as PEM files of the DER encoding.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ledger, Session, TlsContext } from '../../lib';
import { makePki, type Pki } from '../helpers/pki';
import { pemToDer, run, runEngineClient, sClientArgs, sessionPem, startEngineServer, startSServer, type SServer } from './helpers/peers';

let pki: Pki;
let dir: string;
beforeAll(() => {
  pki = makePki();
  dir = mkdtempSync(join(tmpdir(), 'tls-session-openssl-'));
});

interface Variant {
  name: string;
  version: 'TLSv1.2' | 'TLSv1.3';
  flag: string;
  tickets: boolean;
}
const variants: Variant[] = [
  { name: 'TLS 1.2 with session IDs', version: 'TLSv1.2', flag: '-tls1_2', tickets: false },
  { name: 'TLS 1.2 with tickets', version: 'TLSv1.2', flag: '-tls1_2', tickets: true },
  { name: 'TLS 1.3 with tickets', version: 'TLSv1.3', flag: '-tls1_3', tickets: true },
];

describe.each(variants)('engine client ↔ openssl s_server, $name', (v) => {
  let server: SServer | undefined;
  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  test('the second connection resumes (session through toDER/fromDER)', async () => {
    const before = ledger();
    server = await startSServer(['-cert', pki.serverCertPath, '-key', pki.serverKeyPath, v.flag, ...(v.tickets ? [] : ['-no_ticket'])]);
    const ctx = new TlsContext({ role: 'client', ca: pki.ca, minVersion: v.version, maxVersion: v.version, tickets: v.tickets });
    try {
      const first = await connectAndQuit(ctx, server.port);
      expect(first.reused).toBe(false);
      expect(first.sessions.length).toBeGreaterThan(0);
      const last = first.sessions[first.sessions.length - 1];
      expect(last.hasTicket).toBe(v.tickets);
      const der = last.toDER();
      for (const s of first.sessions) s.free();

      using session = Session.fromDER(der);
      const second = await connectAndQuit(ctx, server.port, session);
      expect(second.reused).toBe(true);
      for (const s of second.sessions) s.free();
      // s_server's own account of the two connections.
      await server.waitFor(/^DONE$/m, 2);
      expect(server.output().match(/Reused session-id/g)?.length ?? 0).toBe(1);
    } finally {
      ctx.close();
    }
    expect(ledger().live).toBe(before.live);
  });
});

/** Handshakes with s_server (echo mode, which keeps accepting), then closes with close_notify. */
async function connectAndQuit(ctx: TlsContext, port: number, session?: Session) {
  const { connect } = await import('node:net');
  const { TlsConnection } = await import('../../lib');
  const socket = connect(port, '127.0.0.1');
  const conn = TlsConnection.connect(ctx, socket, { servername: 'localhost', session });
  const sessions: Session[] = [];
  conn.on('session', (s) => sessions.push(s));
  conn.on('error', () => {});
  conn.resume();
  await new Promise<void>((resolve) => conn.once('secureConnect', () => resolve()));
  // TLS 1.3 tickets arrive after the handshake: wait for one before quitting.
  if (sessions.length === 0 && conn.getProtocol() === 'TLSv1.3') {
    await new Promise<void>((resolve) => conn.once('session', () => resolve()));
  }
  const reused = conn.isSessionReused();
  conn.end();
  await new Promise<void>((resolve) => conn.once('close', () => resolve()));
  return { reused, sessions };
}

describe.each(variants)('engine server ↔ openssl s_client -sess_out/-sess_in, $name', (v) => {
  test('s_client resumes with its own session file, and with one the engine re-encoded', async () => {
    const before = ledger();
    const ctx = new TlsContext({
      role: 'server',
      cert: pki.serverCert,
      key: pki.serverKey,
      minVersion: v.version,
      maxVersion: v.version,
      tickets: v.tickets,
    });
    const server = await startEngineServer(ctx);
    try {
      const sessOut = join(dir, `${v.flag}-${v.tickets}-out.pem`);
      const base = sClientArgs(server.port, pki.caCertPath, v.flag);
      const first = await run('openssl', [...base, '-sess_out', sessOut]);
      expect(first.stdout).toContain('hello');
      expect(first.stdout).toMatch(/^New, /m);

      // The session written by the s_client process, decoded here, re-encoded, and read back
      // by a second s_client process.
      const session = Session.fromDER(pemToDer(readFileSync(sessOut, 'utf8')));
      expect(session.protocol).toBe(v.version);
      const sessIn = join(dir, `${v.flag}-${v.tickets}-in.pem`);
      writeFileSync(sessIn, sessionPem(session.toDER()));
      session.free();

      const second = await run('openssl', [...base, '-sess_in', sessIn]);
      expect(second.stdout).toContain('hello');
      expect(second.stdout).toMatch(/^Reused, /m);
      expect(server.connections.map((c) => c.isSessionReused())).toEqual([false, true]);
      expect(server.errors).toEqual([]);
    } finally {
      await server.close();
      ctx.close();
    }
    expect(ledger().live).toBe(before.live);
  });
});

test('an engine client session resumes in a separate openssl s_client process against an engine server', async () => {
  const ctx = new TlsContext({ role: 'server', cert: pki.serverCert, key: pki.serverKey, maxVersion: 'TLSv1.3' });
  const clientCtx = new TlsContext({ role: 'client', ca: pki.ca });
  const server = await startEngineServer(ctx);
  try {
    const first = await runEngineClient(clientCtx, server.port);
    expect(first.sessions.length).toBeGreaterThan(0);
    const file = join(dir, 'engine-client.pem');
    writeFileSync(file, sessionPem(first.sessions[first.sessions.length - 1].toDER()));
    for (const s of first.sessions) s.free();
    const other = await run('openssl', sClientArgs(server.port, pki.caCertPath, '-sess_in', file));
    expect(other.stdout).toMatch(/^Reused, TLSv1\.3/m);
    expect(server.connections.map((c) => c.isSessionReused())).toEqual([false, true]);
  } finally {
    await server.close();
    ctx.close();
    clientCtx.close();
  }
});
