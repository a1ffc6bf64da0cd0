/** Two engine connections over an in-memory pair, handshake done, with the sessions they made. */
import { once } from 'node:events';
import { Session, TlsConnection, type TlsContext } from '../../../lib';
import { duplexPair } from './duplex-pair';

export interface Established {
  client: TlsConnection;
  server: TlsConnection;
  /** Owned by the test: from the server context's 'newSession' (undefined when it made none). */
  serverSession: Session;
  /** Owned by the test: from the client connection's 'session' (undefined when it made none). */
  clientSession: Session;
}

/** Connects `clientCtx` to `serverCtx` (servername 'localhost'), offering `session` if given. */
export async function establish(serverCtx: TlsContext, clientCtx: TlsContext, session?: Session): Promise<Established> {
  const [a, b] = duplexPair();
  let serverSession: Session | undefined;
  const onNew = (s: Session) => {
    serverSession = s;
  };
  serverCtx.once('newSession', onNew);
  const server = TlsConnection.accept(serverCtx, b);
  const client = TlsConnection.connect(clientCtx, a, { servername: 'localhost', session });
  let clientSession: Session | undefined;
  client.once('session', (s) => {
    clientSession = s;
  });
  for (const c of [client, server])
    c.on('error', (e) => {
      throw e;
    });
  await Promise.all([once(client, 'secureConnect'), once(server, 'secure')]);
  serverCtx.off('newSession', onNew);
  if (!session) {
    expect(serverSession).toBeInstanceOf(Session);
    expect(clientSession).toBeInstanceOf(Session);
  }
  return { client, server, serverSession: serverSession!, clientSession: clientSession! };
}

/** destroy() and wait for 'close'. */
export async function destroyConnection(c: TlsConnection): Promise<void> {
  if (c.closed) return; // the peer's end may have closed it already
  const closed = once(c, 'close');
  c.destroy();
  await closed;
}
