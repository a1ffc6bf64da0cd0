/**
 * Sessions made by real peers, decoded by Session.fromDER, must report the same metadata as
 * `openssl sess_id -text` prints for the same bytes, and re-encode byte for byte.
 */
import { inspect } from 'node:util';
import { X509Certificate } from 'node:crypto';
import { Session } from '../lib';
import { makePki, type Pki } from './helpers/pki';
import { nodeClientSession, sClientSession, sessIdCert, sessIdText, startNodeServer, startSServer } from './helpers/peers';
import { sessionBinding } from '../lib/node-internals';

let pki: Pki;
beforeAll(() => {
  pki = makePki();
});

async function expectMatchesSessId(der: Buffer): Promise<Session> {
  const text = await sessIdText(der);
  const session = Session.fromDER(der);
  expect(session.protocol).toBe(text['Protocol']);
  expect(session.cipher).toBe(text['Cipher']);
  expect(session.id.toString('hex').toUpperCase()).toBe(text['Session-ID']);
  expect(session.idContext.toString('hex').toUpperCase()).toBe(text['Session-ID-ctx']);
  expect(session.startTime.getTime() / 1000).toBe(Number(text['Start Time']));
  expect(`${session.timeout} (sec)`).toBe(text['Timeout']);
  expect(session.expiresAt.getTime()).toBe(session.startTime.getTime() + session.timeout * 1000);
  expect(session.hasTicket ? 'yes' : 'no').toBe(text['has ticket']);
  if (text['TLS session ticket lifetime hint'] !== undefined) {
    expect(`${session.ticketLifetimeHint} (seconds)`).toBe(text['TLS session ticket lifetime hint']);
  } else {
    expect(session.ticketLifetimeHint).toBe(0);
  }
  if (session.protocol === 'TLSv1.3') expect(String(session.maxEarlyData)).toBe(text['Max Early Data']);
  const certPem = await sessIdCert(der);
  if (certPem === '') {
    expect(session.peerCertificate).toBeUndefined();
  } else {
    expect(session.peerCertificate).toBeInstanceOf(X509Certificate);
    expect(session.peerCertificate!.raw.equals(new X509Certificate(certPem).raw)).toBe(true);
  }
  expect(session.isResumable).toBe(true);
  expect(session.toDER().equals(der)).toBe(true);
  return session;
}

describe('metadata equals openssl sess_id -text', () => {
  test('TLS 1.2 session-ID sessions from node:tls, both ends, with SNI', async () => {
    const server = await startNodeServer({ pki, maxVersion: 'TLSv1.2', tickets: false });
    try {
      const client = await nodeClientSession(server.port, { pki, servername: 'localhost' });
      expect(server.newSessions).toHaveLength(1);
      const serverSession = await expectMatchesSessId(server.newSessions[0]!);
      const clientSession = await expectMatchesSessId(client.der);
      expect(serverSession.id.length).toBe(32);
      expect(clientSession.id.equals(serverSession.id)).toBe(true);
      // Node's server answers SNI with NOACK unless an SNICallback picks a context, so OpenSSL records no
      // hostname; the releases that bind sessions to the SNI name (node-internals.ts) record it themselves.
      const { binding } = await sessionBinding();
      expect(serverSession.hostname).toBe(binding === 'sni-sha256' ? 'localhost' : undefined);
      expect(serverSession.hasTicket).toBe(false);
      expect(clientSession.peerCertificate!.subject).toBe('CN=localhost'); // the server's certificate
      expect(serverSession.peerCertificate).toBeUndefined(); // no client certificate asked for
      serverSession.free();
      clientSession.free();
    } finally {
      await server.close();
    }
  });

  test('TLS 1.2 server session carrying the client certificate', async () => {
    const server = await startNodeServer({ pki, maxVersion: 'TLSv1.2', tickets: false, requestCert: true });
    try {
      await sClientSession(server.port, { pki, tls: '1.2', cert: true, servername: 'localhost' });
      expect(server.newSessions).toHaveLength(1);
      const session = await expectMatchesSessId(server.newSessions[0]!);
      expect(session.peerCertificate!.subject).toBe('CN=tls-session test client');
      expect(session.peerCertificate!.raw.equals(new X509Certificate(pki.clientCert).raw)).toBe(true);
      session.free();
    } finally {
      await server.close();
    }
  });

  test('TLS 1.3 ticket session from node:tls client with ALPN', async () => {
    const server = await startNodeServer({ pki, alpnProtocols: ['h2', 'http/1.1'] });
    try {
      const { der } = await nodeClientSession(server.port, { pki, servername: 'localhost', alpnProtocols: ['http/1.1'] });
      const session = await expectMatchesSessId(der);
      expect(session.protocol).toBe('TLSv1.3');
      expect(session.hasTicket).toBe(true);
      expect(session.alpnProtocol).toBe('http/1.1');
      session.free();
    } finally {
      await server.close();
    }
  });

  test.each(['1.2', '1.3'] as const)(
    'TLS %s sessions from openssl s_client against openssl s_server that acknowledges SNI',
    async (version) => {
      const server = await startSServer(pki, ['-servername', 'foo.test', '-cert2', pki.serverCertPath, '-key2', pki.serverKeyPath]);
      try {
        const { der } = await sClientSession(server.port, { pki, tls: version, servername: 'foo.test' });
        const session = await expectMatchesSessId(der);
        expect(session.protocol).toBe(`TLSv${version}`);
        expect(session.hostname).toBe('foo.test'); // s_server acknowledged SNI, so the client kept it
        expect(session.hasTicket).toBe(true);
        session.free();
      } finally {
        await server.stop();
      }
    },
  );

  test.each(['1.2', '1.3'] as const)('TLS %s session with ALPN and a client certificate, s_client against s_server', async (version) => {
    const server = await startSServer(pki, ['-alpn', 'h2,http/1.1', '-verify', '1', '-CAfile', pki.caCertPath]);
    try {
      const { der } = await sClientSession(server.port, { pki, tls: version, alpn: 'h2', cert: true });
      const session = await expectMatchesSessId(der);
      expect(session.protocol).toBe(`TLSv${version}`);
      expect(session.alpnProtocol).toBe('h2');
      expect(session.hostname).toBeUndefined(); // -noservername: no SNI sent
      expect(session.peerCertificate!.subject).toBe('CN=localhost');
      session.free();
    } finally {
      await server.stop();
    }
  });
});

describe('serialisation', () => {
  test('toDER round-trips byte for byte, through clones too', async () => {
    const server = await startNodeServer({ pki, maxVersion: 'TLSv1.2', tickets: false });
    try {
      const { der } = await nodeClientSession(server.port, { pki, servername: 'localhost' });
      using session = Session.fromDER(der);
      using clone = session.clone();
      expect(session.toDER().equals(der)).toBe(true);
      expect(clone.toDER().equals(der)).toBe(true);
      using again = Session.fromDER(clone.toDER());
      expect(again.toDER().equals(der)).toBe(true);
    } finally {
      await server.close();
    }
  });

  test('JSON and inspect show metadata but never key material', async () => {
    const server = await startNodeServer({ pki, maxVersion: 'TLSv1.2', tickets: false });
    try {
      const { der } = await nodeClientSession(server.port, { pki, servername: 'localhost' });
      const text = await sessIdText(der);
      const masterKey = text['Master-Key']!;
      expect(masterKey).toMatch(/^[0-9A-F]{96}$/);
      const session = Session.fromDER(der);
      const json = JSON.stringify(session);
      const shown = inspect(session, { depth: 5 });
      for (const out of [json, shown]) {
        expect(out).toContain(session.id.toString('hex'));
        expect(out.toUpperCase()).not.toContain(masterKey);
        expect(out).not.toContain(der.toString('hex').slice(0, 64));
        expect(out).not.toContain(der.toString('base64').slice(0, 40));
      }
      expect(JSON.parse(json)).toMatchObject({ protocol: 'TLSv1.2', isResumable: true });
      session.free();
      expect(JSON.stringify(session)).toBe('{"freed":true}');
      expect(inspect(session)).toContain('<freed>');
    } finally {
      await server.close();
    }
  });
});
