/**
 * JavaScript run by OpenSSL from inside a native call (a 'removeSession' listener) sees the same
 * "inside OpenSSL" state as native code, whatever started that call. Regression: destroy(err)
 * freed the SSL (which runs remove_cb) outside the JavaScript re-entrancy counter, so a write()
 * to a healthy, unrelated connection from that listener destroyed it with
 * ERR_TLS_SESSION_PROTOCOL, and flushSessions() threw OpenSSLError instead of TlsStateError.
 */
import { once } from 'node:events';
import { ledger, TlsContext, TlsStateError } from '../../lib';
import { makePki, type Pki } from '../helpers/pki';
import { establish } from './helpers/established';

let pki: Pki;
beforeAll(() => {
  pki = makePki();
});

function contexts(): [TlsContext, TlsContext] {
  // TLS 1.2 session IDs: the server's cache holds sessions, and freeing an SSL without
  // close_notify removes its session from the cache (remove_cb).
  return [
    new TlsContext({ role: 'server', cert: pki.serverCert, key: pki.serverKey, maxVersion: 'TLSv1.2', tickets: false }),
    new TlsContext({ role: 'client', ca: pki.ca, maxVersion: 'TLSv1.2', tickets: false }),
  ];
}

test('a removeSession listener run by destroy(err) can write to another connection; flushSessions() there is a TlsStateError', async () => {
  const before = ledger();
  const [serverCtx, clientCtx] = contexts();
  const healthy = await establish(serverCtx, clientCtx);
  const doomed = await establish(serverCtx, clientCtx);
  const writeResults: Array<Error | null | undefined> = [];
  let flushError: unknown;
  let removals = 0;
  serverCtx.on('removeSession', () => {
    removals++;
    healthy.server.write('written from remove_cb\n', (err) => writeResults.push(err));
    try {
      serverCtx.flushSessions();
    } catch (err) {
      flushError = err;
    }
  });
  const received = new Promise<string>((resolve) => healthy.client.once('data', (d: Buffer) => resolve(d.toString())));
  const doomedClosed = once(doomed.server, 'close');
  doomed.server.removeAllListeners('error'); // establish()'s listener rethrows: this error is on purpose
  doomed.server.on('error', () => {});
  doomed.server.destroy(new Error('application gave up on this connection'));
  await doomedClosed;

  expect(removals).toBe(1);
  expect(flushError).toBeInstanceOf(TlsStateError);
  expect((flushError as TlsStateError).code).toBe('ERR_TLS_SESSION_STATE');
  expect(await received).toBe('written from remove_cb\n');
  expect(writeResults).toHaveLength(1);
  expect(writeResults[0] ?? null).toBeNull(); // the write succeeded
  expect(healthy.server.destroyed).toBe(false);
  expect(healthy.client.destroyed).toBe(false);

  for (const e of [healthy, doomed]) {
    e.serverSession.free();
    e.clientSession.free();
    e.client.destroy();
    e.server.destroy();
  }
  await Promise.all([healthy.client, healthy.server, doomed.client].map((c) => (c.closed ? undefined : once(c, 'close'))));
  serverCtx.close();
  clientCtx.close();
  expect(ledger().live).toBe(before.live);
});
