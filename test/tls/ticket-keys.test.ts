/**
 * Session-ticket key rotation with overlap on the engine's server context
 * (TlsContext#setTicketKeys, binding/tls_context.cc OnTicketKey), TLS 1.2 and TLS 1.3, with real
 * peers: engine clients and servers over TCP, node:tls clients and a node:tls server sharing the
 * keys, and `openssl s_client -sess_out/-sess_in`. A ticket carries its key's 16-byte name in
 * clear at its start, so a client session's DER says which key sealed it.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { inspect } from 'node:util';
import { Session, TlsConnection, TlsContext, TlsStateError, type TicketKeyStats } from '../../lib';
import { boundSessionIdContext, sessionBinding } from '../../lib/node-internals';
import { makePki, type Pki } from '../helpers/pki';
import { expectNothingLeftAfterEach } from './helpers/nothing-left';
import { closed, run, runNodeClient, sClientArgs, startEngineServer, type EngineServer } from './helpers/peers';

jest.setTimeout(60_000);

let pki: Pki;
let dir: string;
beforeAll(() => {
  pki = makePki();
  dir = mkdtempSync(join(tmpdir(), 'tls-session-ticket-keys-'));
});

// Server-side connections finish closing a little after the client saw its 'close'.
expectNothingLeftAfterEach({ settleMs: 1000 });

interface Version {
  name: string;
  version: 'TLSv1.2' | 'TLSv1.3';
  flag: string;
}
const VERSIONS: Version[] = [
  { name: 'TLS 1.2', version: 'TLSv1.2', flag: '-tls1_2' },
  { name: 'TLS 1.3', version: 'TLSv1.3', flag: '-tls1_3' },
];

/** 48 random bytes in Node's setTicketKeys layout: name, HMAC secret, AES key. */
function newKey(): Buffer {
  return randomBytes(48);
}

/** Which of `keys` sealed the ticket inside a session's DER (its name opens the ticket), if any. */
function sealedWith(der: Buffer, keys: Record<string, Buffer>): string | undefined {
  const found = Object.entries(keys).filter(([, key]) => der.includes(key.subarray(0, 16)));
  expect(found.length).toBeLessThanOrEqual(1);
  return found[0]?.[0];
}

function serverContext(v: Version, sessionIdContext?: string | Buffer): TlsContext {
  return new TlsContext({
    role: 'server',
    cert: pki.serverCert,
    key: pki.serverKey,
    minVersion: v.version,
    maxVersion: v.version,
    sessionIdContext,
  });
}

function clientContext(v: Version): TlsContext {
  return new TlsContext({ role: 'client', ca: pki.ca, minVersion: v.version, maxVersion: v.version });
}

interface Visit {
  /** The client resumed (isSessionReused). */
  reused: boolean;
  /** The server connection resumed too. */
  serverReused: boolean;
  /** The client's session once application data arrived (all tickets came before it): DER. */
  der: Buffer;
  /** New tickets the client received on this connection. */
  tickets: number;
}

/**
 * One engine-client connection to an engine server (which says hello and ends), offering the
 * session `offered` (DER) if given.
 */
async function visit(clientCtx: TlsContext, server: EngineServer, offered?: Buffer): Promise<Visit> {
  using session = offered ? Session.fromDER(offered) : undefined;
  const conn = TlsConnection.connect(clientCtx, netConnect(server.port, '127.0.0.1'), { servername: 'localhost', session });
  let sessionEvents = 0;
  let der: Buffer | undefined;
  conn.on('session', (s: Session) => {
    sessionEvents++;
    s.free();
  });
  conn.on('data', () => {
    if (der) return;
    // TLS 1.2 renews inside the abbreviated handshake, without a 'session' event: the SSL's
    // current session (SSL_get1_session) is the one with the newest ticket, in both versions.
    const current = conn.getSession();
    der = current?.toDER();
    current?.free();
  });
  await closed(conn);
  expect(server.errors).toEqual([]);
  expect(der).toBeDefined();
  const tickets = conn.getProtocol() === 'TLSv1.3' ? sessionEvents : offered !== undefined && der!.equals(offered) ? 0 : 1;
  return {
    reused: conn.isSessionReused(),
    serverReused: server.connections[server.connections.length - 1].isSessionReused(),
    der: der!,
    tickets,
  };
}

const ZERO_STATS: TicketKeyStats = { keys: 0, issued: 0, decrypted: 0, renewed: 0, rejected: 0, failed: 0 };

describe.each(VERSIONS)('$name', (v) => {
  let server: EngineServer | undefined;
  const contexts: TlsContext[] = [];
  const context = <T extends TlsContext>(ctx: T): T => {
    contexts.push(ctx);
    return ctx;
  };
  afterEach(async () => {
    await server?.close();
    server = undefined;
    for (const ctx of contexts.splice(0)) ctx.close();
  });

  test('a ticket sealed under [A] resumes under [B, A], comes back renewed under B, and that one resumes under [B] alone', async () => {
    const [A, B] = [newKey(), newKey()];
    const ctx = context(serverContext(v));
    const client = context(clientContext(v));
    server = await startEngineServer(ctx);
    ctx.setTicketKeys([A]);

    const first = await visit(client, server);
    expect(first.reused).toBe(false);
    expect(sealedWith(first.der, { A, B })).toBe('A');

    ctx.setTicketKeys([B, A]);
    const second = await visit(client, server, first.der);
    expect([second.reused, second.serverReused]).toEqual([true, true]);
    // Renewed: the client now holds a ticket under the current key.
    expect(second.tickets).toBeGreaterThan(0);
    expect(sealedWith(second.der, { A, B })).toBe('B');

    ctx.setTicketKeys([B]);
    const third = await visit(client, server, second.der);
    expect([third.reused, third.serverReused]).toEqual([true, true]);
    // Opened with the current key: nothing to renew.
    expect(third.tickets).toBe(0);
    expect(ctx.ticketKeyStats()).toMatchObject({ renewed: 1, decrypted: 1, rejected: 0, failed: 0 });
  });

  test('after rotating to [C, B] (A dropped), the A ticket gets a full handshake and a new ticket under C', async () => {
    const [A, B, C] = [newKey(), newKey(), newKey()];
    const ctx = context(serverContext(v));
    const client = context(clientContext(v));
    server = await startEngineServer(ctx);
    ctx.setTicketKeys([A]);
    const first = await visit(client, server);
    expect(sealedWith(first.der, { A, B, C })).toBe('A');

    ctx.setTicketKeys([B, A]);
    ctx.setTicketKeys([C, B]);
    const second = await visit(client, server, first.der);
    expect([second.reused, second.serverReused]).toEqual([false, false]);
    expect(second.tickets).toBeGreaterThan(0);
    expect(sealedWith(second.der, { A, B, C })).toBe('C');
    expect(ctx.ticketKeyStats()).toMatchObject({ keys: 2, rejected: 1, decrypted: 0, renewed: 0, failed: 0 });

    // And the new ticket resumes.
    const third = await visit(client, server, second.der);
    expect([third.reused, third.serverReused]).toEqual([true, true]);
  });

  test("two members with the same keys resume each other's tickets, also while a rotation rolls out", async () => {
    const [A, B] = [newKey(), newKey()];
    const one = context(serverContext(v));
    const two = context(serverContext(v));
    const client = context(clientContext(v));
    const servers = [await startEngineServer(one), await startEngineServer(two)];
    try {
      one.setTicketKeys([A]);
      two.setTicketKeys([A]);
      const fromOne = await visit(client, servers[0]);
      const fromTwo = await visit(client, servers[1]);
      expect([sealedWith(fromOne.der, { A, B }), sealedWith(fromTwo.der, { A, B })]).toEqual(['A', 'A']);
      const onTwo = await visit(client, servers[1], fromOne.der);
      const onOne = await visit(client, servers[0], fromTwo.der);
      expect([onTwo.reused, onTwo.serverReused, onOne.reused, onOne.serverReused]).toEqual([true, true, true, true]);

      // A rollout: member two already seals with B; member one got B ahead of time, to open
      // with only. Tickets cross both ways.
      two.setTicketKeys([B, A]);
      one.setTicketKeys([A, B]);
      const newer = await visit(client, servers[1]);
      expect(sealedWith(newer.der, { A, B })).toBe('B');
      const newerOnOne = await visit(client, servers[0], newer.der);
      expect([newerOnOne.reused, newerOnOne.serverReused]).toEqual([true, true]);
      const olderOnTwo = await visit(client, servers[1], fromOne.der);
      expect([olderOnTwo.reused, olderOnTwo.serverReused]).toEqual([true, true]);
      expect(sealedWith(olderOnTwo.der, { A, B })).toBe('B');
    } finally {
      for (const s of servers) await s.close();
    }
  });

  test('a node:tls client resumes across a rotation, and not once its key is dropped', async () => {
    const [A, B, C] = [newKey(), newKey(), newKey()];
    const ctx = context(serverContext(v));
    server = await startEngineServer(ctx);
    ctx.setTicketKeys([A]);
    const first = await nodeClient(server.port, v);
    expect(first.reused).toBe(false);

    ctx.setTicketKeys([B, A]);
    const second = await nodeClient(server.port, v, first.session);
    expect([second.reused, server.connections[1].isSessionReused()]).toEqual([true, true]);

    ctx.setTicketKeys([C, B]);
    const third = await nodeClient(server.port, v, first.session);
    expect([third.reused, server.connections[2].isSessionReused()]).toEqual([false, false]);
    // The renewed session of the second connection was sealed under B: still open.
    const fourth = await nodeClient(server.port, v, second.session);
    expect([fourth.reused, server.connections[3].isSessionReused()]).toEqual([true, true]);
    expect(server.errors).toEqual([]);
  });

  test('openssl s_client -sess_out/-sess_in: its session resumes after a rotation, and not once its key is dropped', async () => {
    const [A, B, C] = [newKey(), newKey(), newKey()];
    const ctx = context(serverContext(v));
    server = await startEngineServer(ctx);
    const base = sClientArgs(server.port, pki.caCertPath, v.flag);
    const file = join(dir, `${v.version}-A.pem`);
    ctx.setTicketKeys([A]);
    const first = await run('openssl', [...base, '-sess_out', file]);
    expect(first.stdout).toMatch(/^New, /m);

    ctx.setTicketKeys([B, A]);
    const second = await run('openssl', [...base, '-sess_in', file]);
    expect(second.stdout).toContain('hello');
    expect(second.stdout).toMatch(/^Reused, /m);

    ctx.setTicketKeys([C, B]);
    const third = await run('openssl', [...base, '-sess_in', file]);
    expect(third.stdout).toContain('hello');
    expect(third.stdout).toMatch(/^New, /m);
    expect(server.connections.map((c) => c.isSessionReused())).toEqual([false, true, false]);
    expect(ctx.ticketKeyStats()).toMatchObject({ renewed: 1, rejected: 1, failed: 0 });
    expect(server.errors).toEqual([]);
  });

  test("a node:tls server and the engine share keys in Node's layout: tickets cross both ways", async () => {
    const [A, B] = [newKey(), newKey()];
    // Tickets carry the session ID context: the members of a fleet name the same one.
    const nodeServer = tls.createServer(
      { key: pki.serverKey, cert: pki.serverCert, minVersion: v.version, maxVersion: v.version, ticketKeys: A, sessionIdContext: 'fleet' },
      (socket) => {
        socket.on('error', () => {});
        socket.end('hello\n');
      },
    );
    nodeServer.listen(0, '127.0.0.1');
    await once(nodeServer, 'listening');
    const nodePort = (nodeServer.address() as { port: number }).port;
    // On Node releases that bind sessions to the SNI name (node-internals.ts), the context inside
    // Node's tickets is SHA-256('fleet' ‖ 0 ‖ 'localhost'): the engine names that one, as a fleet
    // member must for OpenSSL to resume Node's tickets (and Node the engine's).
    const { binding } = await sessionBinding();
    const ctx = context(serverContext(v, boundSessionIdContext(binding, Buffer.from('fleet'), Buffer.from('localhost'))));
    server = await startEngineServer(ctx);
    try {
      // Node seals under A; the engine (already on [B, A]) opens it and renews it under B.
      ctx.setTicketKeys([B, A]);
      const fromNode = await nodeClient(nodePort, v);
      expect(fromNode.reused).toBe(false);
      const onEngine = await nodeClient(server.port, v, fromNode.session);
      expect([onEngine.reused, server.connections[0].isSessionReused()]).toEqual([true, true]);
      expect(ctx.ticketKeyStats()).toMatchObject({ renewed: 1, rejected: 0 });

      // The engine seals under A; Node (one key, A) opens it.
      ctx.setTicketKeys([A]);
      const fromEngine = await nodeClient(server.port, v);
      expect(fromEngine.reused).toBe(false);
      const onNode = await nodeClient(nodePort, v, fromEngine.session);
      expect(onNode.reused).toBe(true);
    } finally {
      await new Promise<void>((resolve) => nodeServer.close(() => resolve()));
    }
  });

  test('the counters match what the clients saw, across rotations', async () => {
    const [A, B, C] = [newKey(), newKey(), newKey()];
    const ctx = context(serverContext(v));
    const client = context(clientContext(v));
    server = await startEngineServer(ctx);
    expect(ctx.ticketKeyStats()).toEqual(ZERO_STATS);
    const visits: Visit[] = [];
    const go = async (offered?: Buffer) => {
      const result = await visit(client, server!, offered);
      visits.push(result);
      return result;
    };

    ctx.setTicketKeys([A]);
    const a1 = await go(); // full: sealed under A
    const a2 = await go(); // full: sealed under A
    await go(a1.der); // decrypted with the current key
    ctx.setTicketKeys([B, A]);
    await go(a1.der); // renewed
    await go(a2.der); // renewed
    const b1 = await go(); // full: sealed under B
    await go(b1.der); // decrypted with the current key
    // A refused list changes nothing.
    expect(() => ctx.setTicketKeys([C, Buffer.alloc(47)])).toThrow(RangeError);
    ctx.setTicketKeys([C, B]);
    await go(a1.der); // rejected: full handshake, new tickets
    await go(b1.der); // renewed

    expect(visits.map((x) => x.reused)).toEqual([false, false, true, true, true, false, true, false, true]);
    expect(visits.map((x) => x.serverReused)).toEqual(visits.map((x) => x.reused));
    const stats = ctx.ticketKeyStats();
    expect(stats).toEqual({
      keys: 2,
      issued: visits.reduce((sum, x) => sum + x.tickets, 0),
      decrypted: 2,
      renewed: 3,
      rejected: 1,
      failed: 0,
    });
    // OpenSSL's own count of resumptions agrees.
    expect(ctx.sessionCacheStats().hits).toBe(stats.decrypted + stats.renewed);
  });

  test("without setTicketKeys, tickets work as before (OpenSSL's own keys) and the counters stay at zero", async () => {
    const ctx = context(serverContext(v));
    const client = context(clientContext(v));
    server = await startEngineServer(ctx);
    const first = await visit(client, server);
    const second = await visit(client, server, first.der);
    expect([first.reused, second.reused, second.serverReused]).toEqual([false, true, true]);
    expect(ctx.ticketKeyStats()).toEqual(ZERO_STATS);
    // And another context (its own internal keys) cannot open them.
    const other = context(serverContext(v));
    const otherServer = await startEngineServer(other);
    try {
      const elsewhere = await visit(client, otherServer, first.der);
      expect(elsewhere.reused).toBe(false);
    } finally {
      await otherServer.close();
    }
  });
});

/** A node:tls client; whether it resumed, and its newest session, which every connection here must have. */
async function nodeClient(port: number, v: Version, session?: Buffer): Promise<{ reused: boolean; session: Buffer }> {
  const client = await runNodeClient(port, { ca: pki.ca, version: v.version, session, sessionAtData: true });
  expect(client.session).toBeDefined();
  return { reused: client.reused, session: client.session! };
}

/** Two keys whose names are the same, secrets different. */
function sameName(): Buffer[] {
  const k = newKey();
  return [k, Buffer.concat([k.subarray(0, 16), randomBytes(32)])];
}

describe('setTicketKeys: bad input and wrong states', () => {
  const contexts: TlsContext[] = [];
  afterEach(() => {
    for (const ctx of contexts.splice(0)) ctx.close();
  });
  const server = (options: { tickets?: boolean } = {}) => {
    const ctx = new TlsContext({ role: 'server', cert: pki.serverCert, key: pki.serverKey, ...options });
    contexts.push(ctx);
    return ctx;
  };

  test.each([
    ['not an array', 'ERR_INVALID_ARG_TYPE', Buffer.alloc(48), TypeError],
    ['undefined', 'ERR_INVALID_ARG_TYPE', undefined, TypeError],
    ['an empty array', 'ERR_OUT_OF_RANGE', [], RangeError],
    ['65 keys', 'ERR_OUT_OF_RANGE', Array.from({ length: 65 }, () => newKey()), RangeError],
    ['a string key', 'ERR_INVALID_ARG_TYPE', ['x'.repeat(48)], TypeError],
    ['a null key', 'ERR_INVALID_ARG_TYPE', [newKey(), null], TypeError],
    ['a 47-byte key', 'ERR_OUT_OF_RANGE', [Buffer.alloc(47)], RangeError],
    ['a 49-byte key', 'ERR_OUT_OF_RANGE', [newKey(), Buffer.alloc(49)], RangeError],
    ['a 32-byte key (a 256-bit secret, not the 48-byte layout)', 'ERR_OUT_OF_RANGE', [Buffer.alloc(32)], RangeError],
    ['two keys with one name', 'ERR_OUT_OF_RANGE', sameName(), RangeError],
  ] as const)('%s → %s', (_name, code, keys, cls) => {
    const ctx = server();
    ctx.setTicketKeys([newKey()]);
    const before = ctx.ticketKeyStats();
    let caught: unknown;
    try {
      ctx.setTicketKeys(keys as never);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(cls);
    expect(caught).toMatchObject({ code });
    // Nothing changed.
    expect(ctx.ticketKeyStats()).toEqual(before);
  });

  test('the largest list (64 keys) is taken, and 64 keys are reported', () => {
    const ctx = server();
    ctx.setTicketKeys(Array.from({ length: 64 }, () => newKey()));
    expect(ctx.ticketKeyStats().keys).toBe(64);
    // Uint8Array views into a larger buffer are keys too.
    const backing = randomBytes(100);
    ctx.setTicketKeys([new Uint8Array(backing.buffer, backing.byteOffset + 3, 48)]);
    expect(ctx.ticketKeyStats().keys).toBe(1);
  });

  test('a client context, a context without tickets, a closed context → TlsStateError', () => {
    const client = new TlsContext({ role: 'client', ca: pki.ca });
    contexts.push(client);
    expect(() => client.setTicketKeys([newKey()])).toThrow(TlsStateError);
    expect(() => client.setTicketKeys([newKey()])).toThrow(/server contexts/);
    expect(() => server({ tickets: false }).setTicketKeys([newKey()])).toThrow(/tickets: true/);
    const closedCtx = server();
    closedCtx.close();
    for (const call of [() => closedCtx.setTicketKeys([newKey()]), () => closedCtx.ticketKeyStats()]) {
      expect(call).toThrow(TlsStateError);
      expect(call).toThrow(expect.objectContaining({ code: 'ERR_TLS_SESSION_STATE' }));
    }
  });

  test('the binding re-checks what reaches it directly: typed errors, never a crash', () => {
    const native = server().nativeContext();
    for (const bad of [undefined, 'x', {}, [], [1], [Buffer.alloc(47)], [newKey(), new Uint16Array(24)]]) {
      expect(() => native.setTicketKeys(bad as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    }
    const k = newKey();
    expect(() => native.setTicketKeys([k, Buffer.from(k)])).toThrow(/same name/);
    expect(native.ticketKeyStats().keys).toBe(0);
  });

  test('the keys are never readable back: not in inspect, JSON, stats or error messages', () => {
    const ctx = server();
    const keys = [newKey(), newKey(), newKey()];
    ctx.setTicketKeys(keys);
    const errors: unknown[] = [];
    for (const bad of [[keys[0].subarray(0, 47)], [keys[0], keys[0]], [keys[1], Buffer.concat([keys[1], Buffer.alloc(1)])], keys[2]]) {
      try {
        ctx.setTicketKeys(bad as never);
      } catch (err) {
        errors.push(err);
      }
    }
    try {
      ctx.nativeContext().setTicketKeys([keys[0], keys[0]]);
    } catch (err) {
      errors.push(err);
    }
    expect(errors).toHaveLength(5);
    const text = [
      inspect(ctx, { showHidden: true, depth: Infinity, getters: true }),
      JSON.stringify(ctx),
      JSON.stringify(ctx.ticketKeyStats()),
      inspect(ctx.ticketKeyStats(), { showHidden: true }),
      ...errors.map((e) => `${String(e)} ${JSON.stringify(e)} ${inspect(e, { showHidden: true })}`),
    ].join('\n');
    for (const key of keys) {
      for (const part of [key, key.subarray(0, 16), key.subarray(16, 32), key.subarray(32, 48)]) {
        for (const encoding of ['hex', 'base64', 'base64url', 'latin1'] as const) {
          expect(text).not.toContain(part.toString(encoding));
        }
        // util.inspect's byte listing of a Buffer: `<Buffer 0a 1b ...>`.
        expect(text).not.toContain([...part.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' '));
      }
    }
    expect(Object.keys(ctx.ticketKeyStats()).sort()).toEqual(['decrypted', 'failed', 'issued', 'keys', 'rejected', 'renewed']);
  });
});
