/**
 * attachSessionStore relies on undocumented tls.Server internals (server._sharedCreds.context's
 * setSessionIdContext/getCertificate, server._contexts), TicketKeyRing on the context's ticket-key
 * callback (enableTicketKeyCallback/onticketkeycallback; without it: setTicketKeys and a warning,
 * tested in ticket-key-ring.test.ts). They exist on the Node running this file
 * (CI: 20, 22, 24, 26); a Node without them must fail at attach with a typed error naming the
 * Node version and what is missing — never silently at handshake time. Simulated here by
 * shadowing the internals on one server's own objects (the shared prototypes stay untouched).
 */
import * as tls from 'node:tls';
import { attachSessionStore, MemoryStore, NodeInternalsError, TicketKeyRing } from '../../lib';
import { makePki, type Pki } from '../helpers/pki';
import { close, handshake, listen, tls12Server } from './helpers/tls-peers';

let pki: Pki;
beforeAll(() => {
  pki = makePki();
});

interface Internals {
  _sharedCreds?: { context?: Record<string, unknown> };
  _contexts?: Array<[RegExp, Record<string, unknown>]>;
}
const internals = (server: tls.Server) => server as unknown as Internals;

function attachError(server: tls.Server, options: { scope?: string } = {}): NodeInternalsError {
  let error: unknown;
  try {
    attachSessionStore(server, { store: new MemoryStore(), ...options });
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(NodeInternalsError);
  const typed = error as NodeInternalsError;
  expect(typed.code).toBe('ERR_TLS_SESSION_NODE_INTERNALS');
  expect(typed.nodeVersion).toBe(process.version);
  expect(typed.message).toContain(`Node ${process.version}`);
  // Nothing was attached.
  expect(server.listenerCount('newSession')).toBe(0);
  expect(server.listenerCount('resumeSession')).toBe(0);
  return typed;
}

test(`the internals are there on ${process.version}, and a session stored through them resumes`, async () => {
  const server = tls12Server(pki);
  server.addContext('sni.test', { key: pki.serverKey, cert: pki.serverCert });
  const context = internals(server)._sharedCreds?.context;
  expect(typeof context?.setSessionIdContext).toBe('function');
  expect(typeof context?.getCertificate).toBe('function');
  expect(Array.isArray(internals(server)._contexts)).toBe(true);
  const handle = attachSessionStore(server, { store: new MemoryStore() });
  const port = await listen(server);
  try {
    const first = await handshake(pki, port);
    expect((await handshake(pki, port, first.session)).reused).toBe(true);
  } finally {
    handle.detach();
    await close(server);
  }
});

test("a missing setSessionIdContext on the server's native context: NodeInternalsError at attach, naming it", () => {
  const server = tls12Server(pki);
  Object.defineProperty(internals(server)._sharedCreds!.context!, 'setSessionIdContext', { value: undefined, configurable: true });
  const error = attachError(server);
  expect(error.missing).toEqual(['server._sharedCreds.context.setSessionIdContext()']);
  expect(error.message).toContain('server._sharedCreds.context.setSessionIdContext()');
});

test('missing _sharedCreds, or _contexts: named; getCertificate is needed only when the scope is derived', () => {
  const noCreds = tls12Server(pki);
  internals(noCreds)._sharedCreds = undefined;
  expect(attachError(noCreds).missing).toEqual(['server._sharedCreds']);

  const noContexts = tls12Server(pki);
  delete internals(noContexts)._contexts;
  expect(attachError(noContexts, { scope: 'fleet' }).missing).toEqual(['server._contexts (the SNI context list)']);

  const noCertificate = tls12Server(pki);
  Object.defineProperty(internals(noCertificate)._sharedCreds!.context!, 'getCertificate', { value: undefined, configurable: true });
  expect(attachError(noCertificate).missing).toEqual(['server._sharedCreds.context.getCertificate()']);
  const handle = attachSessionStore(noCertificate, { store: new MemoryStore(), scope: 'fleet' });
  handle.detach();
});

test('an SNI context without setSessionIdContext is named by its pattern', () => {
  const server = tls12Server(pki);
  server.addContext('sni.test', { key: pki.serverKey, cert: pki.serverCert });
  const [pattern, context] = internals(server)._contexts![0]!;
  Object.defineProperty(context, 'setSessionIdContext', { value: undefined, configurable: true });
  const error = attachError(server, { scope: 'fleet' });
  expect(error.missing).toEqual([`server._contexts entry ${pattern.source}: setSessionIdContext()`]);
});

test(`the ticket-key callback is there on ${process.version}: TicketKeyRing seals and opens tickets through it`, async () => {
  const server = tls12Server(pki, { secureOptions: 0 }); // TLS 1.2 tickets on
  server.addContext('sni.test', { key: pki.serverKey, cert: pki.serverCert });
  expect(typeof internals(server)._sharedCreds?.context?.enableTicketKeyCallback).toBe('function');
  expect(typeof internals(server)._contexts![0]![1].enableTicketKeyCallback).toBe('function');
  const ring = new TicketKeyRing({ store: new MemoryStore() });
  await ring.attach(server);
  const port = await listen(server);
  try {
    expect(typeof internals(server)._sharedCreds?.context?.onticketkeycallback).toBe('function');
    const first = await handshake(pki, port);
    expect((await handshake(pki, port, first.session)).reused).toBe(true);
    const { mode, tickets } = ring.stats(server);
    expect(mode).toBe('callback');
    expect(tickets.issued).toBeGreaterThanOrEqual(1);
    expect(tickets.renewed.current).toBe(1); // opened, and renewed (renewTickets 'always', the default)
  } finally {
    ring.close();
    await close(server);
  }
});
