/**
 * The engine against node:tls, both ways, for TLS 1.2 (session IDs, tickets) and TLS 1.3
 * (tickets): the first connection is full, the second resumes with a session that went
 * through toDER/fromDER in between, and both ends say so.
 */
import { ledger, Session, TlsContext } from '../../lib';
import { makePki, type Pki } from '../helpers/pki';
import { runEngineClient, runNodeClient, startEngineServer } from './helpers/peers';
import { startNodeTlsServer, TLS_VARIANTS } from '../helpers/node-tls-server';

let pki: Pki;
beforeAll(() => {
  pki = makePki();
});

describe.each(TLS_VARIANTS)('engine client ↔ node:tls server, $name', (v) => {
  test("the second connection resumes the first one's session (via DER)", async () => {
    const before = ledger();
    const server = await startNodeTlsServer(pki, v);
    const ctx = new TlsContext({ role: 'client', ca: pki.ca, minVersion: v.version, maxVersion: v.version, tickets: v.tickets });
    try {
      const first = await runEngineClient(ctx, server.port);
      expect(first.received.toString()).toBe('hello\n');
      expect(first.protocol).toBe(v.version);
      expect(first.reused).toBe(false);
      expect(first.sessions.length).toBeGreaterThan(0);
      const last = first.sessions[first.sessions.length - 1];
      expect(last.isResumable).toBe(true);
      expect(last.hasTicket).toBe(v.tickets);
      expect(last.protocol).toBe(v.version);
      const der = last.toDER();
      for (const s of first.sessions) s.free();

      using session = Session.fromDER(der);
      const second = await runEngineClient(ctx, server.port, { session });
      expect(second.received.toString()).toBe('hello\n');
      expect(second.reused).toBe(true);
      expect(server.reused).toEqual([false, true]);
      for (const s of second.sessions) s.free();
    } finally {
      ctx.close();
      await server.close();
    }
    const after = ledger();
    expect(after.live).toBe(before.live);
  });
});

describe.each(TLS_VARIANTS)('engine server ↔ node:tls client, $name', (v) => {
  test('the node:tls client resumes against the engine server (session via fromNodeSession/toDER/fromDER/toNodeSession)', async () => {
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
      const first = await runNodeClient(server.port, { ca: pki.ca, version: v.version });
      expect(first.received.toString()).toBe('hello\n');
      expect(first.reused).toBe(false);
      expect(first.session).toBeDefined();
      // The node:tls session (wrapped for its host on current Node), read and re-encoded as DER.
      const session = Session.fromNodeSession(first.session!);
      expect(session.protocol).toBe(v.version);
      expect(session.hasTicket).toBe(v.tickets);
      const der = session.toDER();
      session.free();

      // Back to what this Node's tls.connect({ session }) takes.
      using saved = Session.fromDER(der);
      const second = await runNodeClient(server.port, {
        ca: pki.ca,
        version: v.version,
        session: saved.toNodeSession({ servername: 'localhost' }),
      });
      expect(second.received.toString()).toBe('hello\n');
      expect(second.reused).toBe(true);
      expect(server.connections.map((c) => c.isSessionReused())).toEqual([false, true]);
      expect(server.errors).toEqual([]);
      expect(ctx.sessionCacheStats().hits).toBe(1);
    } finally {
      await server.close();
      ctx.close();
    }
    expect(ledger().live).toBe(before.live);
  });
});
