/** Fills a session store the way a server does: real TLS 1.2 handshakes through attachSessionStore, plus a TicketKeyRing. */
import { attachSessionStore, TicketKeyRing, type SessionStore } from '../../lib/persist';
import type { Pki } from '../helpers/pki';
import { close, handshake, listen, tls12Server } from '../persist/helpers/tls-peers';

/**
 * `handshakes` full handshakes against a TLS 1.2 server (session IDs, so every session goes to the
 * store), sealed with `secret`; the ring stores the current epoch's ticket key, and the next one's
 * too in the second half of an epoch (so 1 or 2 ticket keys).
 */
export async function fillStoreByHandshakes(
  store: SessionStore,
  pki: Pki,
  { secret, scope, handshakes = 3, budgetMs }: { secret: Buffer; scope?: string; handshakes?: number; budgetMs?: number },
): Promise<void> {
  const server = tls12Server(pki);
  attachSessionStore(server, { store, secret, scope, budgetMs });
  const ring = new TicketKeyRing({ store, secret });
  await ring.attach(server);
  const port = await listen(server);
  try {
    for (let i = 0; i < handshakes; i++) await handshake(pki, port);
  } finally {
    ring.close();
    await close(server);
  }
}
