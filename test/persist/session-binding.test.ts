/**
 * attachSessionStore follows how the running Node binds server sessions (node-internals.ts,
 * sessionBinding): on 22.23.5+/24.22.3+ a session carries SHA-256(context ‖ 0 ‖ SNI name) and
 * resumes only under that name; on 20.x/26.12.1 it carries the context's value. Before this
 * file's fixes every record was refused and deleted on 22.23.5 and 24.22.3 ("another session
 * ID context"), and a record written by a member on another Node release was deleted too.
 */
import { randomBytes } from 'node:crypto';
import * as tls from 'node:tls';
import { attachSessionStore, MemoryStore, Sealer } from '../../lib/persist';
import { boundSessionIdContext, sessionBinding, type SessionBinding } from '../../lib/node-internals';
import { readSessionHeader } from '../../lib/session-header';
import { makePki, type Pki } from '../helpers/pki';
import { RecordingStore } from './helpers/recording-store';
import { close, handshake, listen, tls12Server } from './helpers/tls-peers';

let pki: Pki;
let binding: SessionBinding;
const secret = randomBytes(32);
beforeAll(async () => {
  pki = makePki();
  binding = (await sessionBinding()).binding;
});

/** Accepts any certificate name: these servers answer several SNI names with one test certificate. */
const anyName = { checkServerIdentity: () => undefined };

/** A server that resumes from `store`, with two SNI contexts; the sessions it wrote (DER), in order. */
function sniServer(store: MemoryStore, options: { secret?: Buffer } = {}) {
  const server = tls12Server(pki);
  server.addContext('a.example', { key: pki.serverKey, cert: pki.serverCert });
  server.addContext('b.example', { key: pki.serverKey, cert: pki.serverCert });
  const issued: Buffer[] = [];
  server.prependListener('newSession', (_id: Buffer, der: Buffer) => issued.push(der));
  const handle = attachSessionStore(server, { store, ...options });
  return { server, handle, issued };
}

const variants: Array<[string, { secret?: Buffer }]> = [
  ['sealed', { secret }],
  ['not sealed', {}],
];

test.each(variants)(
  `TLS 1.2 session IDs resume through the store on ${process.version} (%s); another SNI name resumes it only where Node does not bind by name`,
  async (_name, options) => {
    const store = new MemoryStore();
    const { server, handle, issued } = sniServer(store, options);
    const port = await listen(server);
    try {
      const first = await handshake(pki, port, undefined, { servername: 'a.example', ...anyName });
      expect(first.reused).toBe(false);
      // What Node wrote is what the probe said it would.
      const header = readSessionHeader(issued[0]!)!;
      const context = Buffer.from(handle.sessionIdContext, 'latin1');
      expect(header.sessionIdContext).toEqual(boundSessionIdContext(binding, context, header.hostname));
      if (binding === 'sni-sha256') expect(header.hostname?.toString()).toBe('a.example');

      const again = await handshake(pki, port, first.session, { servername: 'a.example', ...anyName });
      expect(again.reused).toBe(true);
      // Another name of the same server: Node's binding decides. 'sni-sha256' binds the session
      // to a.example (OpenSSL compares the hashed context), 'context' does not bind (Node's own
      // behaviour on those releases, with or without a store; README "Node versions").
      const otherName = await handshake(pki, port, first.session, { servername: 'b.example', ...anyName });
      expect(otherName.reused).toBe(binding === 'context');
      expect(handle.stats()).toMatchObject({ rejected: 0, incompatible: 0, errors: 0 });
    } finally {
      handle.detach();
      await close(server);
    }
  },
);

test.each(variants)(
  'a record written under the other binding (another Node release) gets a full handshake, is counted and kept (%s)',
  async (_name, options) => {
    const store = new RecordingStore();
    const errors: Error[] = [];
    const server = tls12Server(pki);
    const handle = attachSessionStore(server, { store, ...options, onError: (e) => errors.push(e) });
    const port = await listen(server);
    try {
      const first = await handshake(pki, port, undefined, { servername: 'a.example', ...anyName });
      const [key] = store.keys;
      const record = (await store.get(key!))!;
      // The same session as the other kind of Node would have written it: only the context differs.
      const sealer = options.secret ? new Sealer(options.secret, 'session-record') : undefined;
      const payload = sealer ? sealer.open(key!, record) : record.subarray(4);
      const header = readSessionHeader(payload.subarray(3 + payload.readUInt16BE(1)))!;
      const other: SessionBinding = binding === 'context' ? 'sni-sha256' : 'context';
      const context = Buffer.from(handle.sessionIdContext, 'latin1');
      const theirs = boundSessionIdContext(other, context, header.hostname ?? Buffer.from('a.example'));
      expect(theirs.length).toBe(header.sessionIdContext.length); // 32 bytes either way: patched in place
      const patched = Buffer.from(payload);
      const at = payload.indexOf(header.sessionIdContext);
      theirs.copy(patched, at);
      const foreign = sealer ? sealer.seal(key!, patched) : Buffer.concat([record.subarray(0, 4), patched]);
      await store.set(key!, foreign, 300);

      expect((await handshake(pki, port, first.session, { servername: 'a.example', ...anyName })).reused).toBe(false);
      // Before: rejected 1, reported, deleted (a rolling upgrade destroyed the other members' records).
      expect(handle.stats()).toMatchObject({ incompatible: 1, rejected: 0, hits: 0 });
      expect(errors).toEqual([]);
      expect(await store.get(key!)).toEqual(foreign);
    } finally {
      handle.detach();
      await close(server);
    }
  },
);

test('a client that sends no SNI resumes too (Node hashes the empty name where it binds by name)', async () => {
  const store = new MemoryStore();
  const server = tls12Server(pki);
  const handle = attachSessionStore(server, { store, secret });
  const port = await listen(server);
  try {
    // No SNI at all (an IP address as host and no servername): Node hashes the empty name.
    const noSni: tls.ConnectionOptions = { host: '127.0.0.1', servername: undefined, ...anyName };
    const first = await handshake(pki, port, undefined, noSni);
    expect((await handshake(pki, port, first.session, noSni)).reused).toBe(true);
    expect(handle.stats()).toMatchObject({ hits: 1, rejected: 0, incompatible: 0 });
  } finally {
    handle.detach();
    await close(server);
  }
});
