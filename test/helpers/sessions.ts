/** DER sessions made once per test file by real node:tls peers. */
import { makePki, type Pki } from './pki';
import { nodeClientSession, startNodeServer } from './peers';

export interface SampleSessions {
  pki: Pki;
  /** A ~160-byte TLS 1.2 server session (session ID, no ticket, no certificate). */
  server: Buffer;
  /** A TLS 1.2 client session carrying the server's certificate and a ticket. */
  clientWithCertificate: Buffer;
}

export async function makeSampleSessions(): Promise<SampleSessions> {
  const pki = makePki();
  const noTickets = await startNodeServer({ pki, maxVersion: 'TLSv1.2', tickets: false });
  const withTickets = await startNodeServer({ pki, maxVersion: 'TLSv1.2' });
  try {
    await nodeClientSession(noTickets.port, { pki, servername: 'localhost' });
    const client = await nodeClientSession(withTickets.port, { pki, servername: 'localhost' });
    return { pki, server: noTickets.newSessions[0]!, clientWithCertificate: client.der };
  } finally {
    await noTickets.close();
    await withTickets.close();
  }
}
