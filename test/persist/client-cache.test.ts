/**
 * ClientSessionCache in one process, against real servers: node:tls (TLS 1.2 IDs, 1.2 tickets,
 * 1.3 tickets) and the engine (stateful TLS 1.3 tickets, which OpenSSL accepts once each). A new
 * cache over the same SQLite file stands in for a new process here; test/persist/client-cache
 * .slow.test.ts runs real separate processes. (An unhandled rejection fails the test file: Jest
 * sees to that.)
 */
import { spawn } from 'node:child_process';
import { constants, randomBytes, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import * as https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { ClientSessionCache, MemoryStore, SqliteStore, type SessionStore } from '../../lib';
import { makePki, serverCertificateUntil, type Pki } from '../helpers/pki';
import { startNodeTlsServer, TLS_VARIANTS } from '../helpers/node-tls-server';
import { offeredTickets, startTracingSServer } from './helpers/psk-trace';
import { close, listen } from './helpers/tls-peers';
import { manualClock } from './helpers/clock';

let pki: Pki;
/** The same CA, a server certificate that also names a.example and b.example. */
let named: Pki;
let dir: string;
const stores: SessionStore[] = [];

beforeAll(() => {
  pki = makePki();
  const { cert, key } = serverCertificateUntil(pki, new Date(Date.now() + 86_400_000), ['localhost', 'a.example', 'b.example']);
  named = { ...pki, serverCert: cert, serverKey: key };
  dir = mkdtempSync(join(tmpdir(), 'tls-session-client-cache-'));
});
afterEach(async () => {
  for (const store of stores.splice(0)) await store.close();
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(pki.dir, { recursive: true, force: true });
});

function sqlite(name: string): SqliteStore {
  const store = new SqliteStore({ path: join(dir, `${name}.db`) });
  stores.push(store);
  return store;
}

/** Connects through the cache, reads to the end (TLS 1.3 tickets come after the handshake), waits for the writes. */
async function visit(cache: ClientSessionCache, options: tls.ConnectionOptions): Promise<{ reused: boolean; protocol: string | null }> {
  const socket = await cache.connect({ host: '127.0.0.1', servername: 'localhost', ca: pki.ca, ...options });
  const reused = socket.isSessionReused();
  const protocol = socket.getProtocol();
  socket.resume();
  await once(socket, 'close');
  await cache.flush();
  return { reused, protocol };
}

describe.each(TLS_VARIANTS)('node:tls server, $name', (v) => {
  test('a new cache over the same SQLite file resumes; both ends agree', async () => {
    const server = await startNodeTlsServer(pki, v);
    try {
      const first = new ClientSessionCache({ store: sqlite(`variant-${v.name}`) });
      expect(await visit(first, { port: server.port })).toEqual({ reused: false, protocol: v.version });
      await first.close();
      expect(first.stats()).toMatchObject({ lookups: 1, offered: 0, misses: 1 });
      expect(first.stats().stored).toBeGreaterThan(0);

      const later = new ClientSessionCache({ store: sqlite(`variant-${v.name}`) });
      expect(await visit(later, { port: server.port })).toEqual({ reused: true, protocol: v.version });
      expect(later.stats()).toMatchObject({ lookups: 1, offered: 1, resumed: 1, notResumed: 0, rejected: 0, errors: 0 });
      expect(server.reused).toEqual([false, true]);
      await later.close();
    } finally {
      await server.close();
    }
  });
});

test('a TLS 1.2 session (it arrives before secureConnect) is written after connect() resolves, off the handshake path', async () => {
  const server = await startNodeTlsServer(pki, TLS_VARIANTS[0]!);
  try {
    const store = new MemoryStore();
    let writes = 0;
    const counting: SessionStore = {
      ...store,
      get: (k) => store.get(k),
      take: (k) => store.take(k),
      delete: (k) => store.delete(k),
      close: () => store.close(),
      set: (k, v, t) => (writes++, store.set(k, v, t)),
    };
    const cache = new ClientSessionCache({ store: counting, secret: randomBytes(32) });
    const socket = await cache.connect({
      host: '127.0.0.1',
      port: server.port,
      servername: 'localhost',
      ca: pki.ca,
      maxVersion: 'TLSv1.2',
    });
    const writesAtConnect = writes;
    socket.resume();
    await once(socket, 'close');
    await cache.close();
    expect({ writesAtConnect, writes }).toEqual({ writesAtConnect: 0, writes: 1 });
  } finally {
    await server.close();
  }
});

describe('TLS 1.3 tickets are single-use', () => {
  test('concurrent connections take distinct tickets: openssl s_server -trace sees each offered once', async () => {
    const server = await startTracingSServer(pki);
    try {
      const cache = new ClientSessionCache({ store: new MemoryStore(), poolSize: 4 });
      const get = async (): Promise<{ reused: boolean; page: string }> => {
        const socket = await cache.connect({ host: '127.0.0.1', port: server.port, servername: 'localhost', ca: pki.ca });
        const reused = socket.isSessionReused();
        let page = '';
        socket.on('data', (chunk: Buffer) => (page += chunk.toString()));
        socket.write('GET / HTTP/1.0\r\n\r\n');
        await once(socket, 'close');
        return { reused, page };
      };
      // Two full handshakes at once (both look up before either has a ticket); s_server sends two
      // tickets after each, so the pool holds 4.
      await Promise.all([get(), get()]);
      await cache.flush();
      expect(cache.stats()).toMatchObject({ offered: 0, stored: 4 });
      const wave = await Promise.all([get(), get(), get(), get()]);
      // Each resumed, and says so on the server's own page.
      expect(wave.map(({ reused, page }) => [reused, /^Reused, TLSv1\.3/m.test(page)])).toEqual(Array(4).fill([true, true]));
      // s_server traced each ClientHello before it served the page; the pipe may lag a little.
      await server.waitFor(/extension_type=psk\(41\), length=([3-9]|\d\d+)/, 4);
      const offered = offeredTickets(server.output());
      expect(offered).toHaveLength(4);
      expect(new Set(offered).size).toBe(4);
      await cache.close();
    } finally {
      await server.stop();
    }
  });

  test('a taken ticket is gone from the store: with one ticket pooled, only one of two connections is offered it', async () => {
    const store = new MemoryStore();
    const server = await startNodeTlsServer(pki, TLS_VARIANTS[2]!);
    try {
      const cache = new ClientSessionCache({ store, poolSize: 1 });
      await visit(cache, { port: server.port }); // two tickets arrive; the pool keeps one
      const offeredBefore = cache.stats().offered;
      const sockets = await Promise.all(
        [1, 2].map(() => cache.connect({ host: '127.0.0.1', port: server.port, servername: 'localhost', ca: pki.ca })),
      );
      expect(cache.stats().offered - offeredBefore).toBe(1);
      expect(sockets.map((socket) => socket.isSessionReused()).sort()).toEqual([false, true]);
      for (const socket of sockets) socket.destroy();
      await cache.close();
    } finally {
      await server.close();
    }
  });
});

describe('never offered to the wrong peer', () => {
  // Two node:tls servers sharing ticket keys and certificate: a session wrongly offered to the
  // other one WOULD resume, so "not resumed" below proves the cache kept it back.
  let servers: tls.Server[];
  let ports: number[];
  beforeAll(async () => {
    const ticketKeys = randomBytes(48);
    servers = [0, 1].map(() =>
      tls.createServer(
        {
          key: named.serverKey,
          cert: named.serverCert,
          ticketKeys,
          ca: pki.ca,
          requestCert: true,
          rejectUnauthorized: false,
          ALPNProtocols: ['h2', 'http/1.1'],
        },
        (socket) => socket.end('hello\n'),
      ),
    );
    ports = await Promise.all(servers.map((server) => listen(server)));
  });
  afterAll(async () => {
    for (const server of servers) await close(server);
  });

  const base = (): tls.ConnectionOptions => ({ host: '127.0.0.1', port: ports[0], servername: 'localhost', ca: pki.ca });
  const otherCa = (): Buffer => {
    const extra = makePki();
    rmSync(extra.dir, { recursive: true, force: true });
    return extra.ca;
  };
  type Version = 'TLSv1.2' | 'TLSv1.3';
  const variants: Array<[string, (version: Version) => tls.ConnectionOptions]> = [
    ['host', () => ({ host: 'localhost' })],
    ['port', () => ({ port: ports[1] })],
    ['servername', () => ({ servername: 'a.example' })],
    ['ALPN list', () => ({ ALPNProtocols: ['h2'] })],
    ['minVersion', (version) => ({ minVersion: version === 'TLSv1.2' ? 'TLSv1.1' : 'TLSv1.3' })],
    ['maxVersion', (version) => ({ maxVersion: version === 'TLSv1.2' ? 'TLSv1.3' : 'TLSv1.2' })],
    ['CA set', () => ({ ca: [pki.ca, otherCa()] })],
    ['client certificate', () => ({ cert: pki.clientCert, key: pki.clientKey })],
    ['rejectUnauthorized', () => ({ rejectUnauthorized: false })],
  ];

  test.each(variants)('another %s: not offered (and the original peer still resumes)', async (_name, change) => {
    for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
      const cache = new ClientSessionCache({ store: new MemoryStore() });
      const original = { ...base(), maxVersion: version };
      await visit(cache, original);
      const other = await visit(cache, { ...original, ...change(version) });
      expect({ version, other: other.reused, offered: cache.stats().offered }).toEqual({ version, other: false, offered: 0 });
      // The other connection stored its own session under its own key; the original still finds its own.
      expect({ version, again: (await visit(cache, original)).reused }).toEqual({ version, again: true });
      await cache.close();
    }
  });

  test('a session cached for a.example is not offered for b.example (same server, same CA)', async () => {
    const cache = new ClientSessionCache({ store: new MemoryStore() });
    await visit(cache, { ...base(), servername: 'a.example' });
    expect((await visit(cache, { ...base(), servername: 'b.example' })).reused).toBe(false);
    expect((await visit(cache, { ...base(), servername: 'a.example' })).reused).toBe(true);
    expect(cache.stats()).toMatchObject({ offered: 1, resumed: 1 });
    await cache.close();
  });

  test('a connection with its own secureContext bypasses the cache (its CA cannot be read)', async () => {
    const cache = new ClientSessionCache({ store: new MemoryStore() });
    const secureContext = tls.createSecureContext({ ca: pki.ca });
    await visit(cache, { ...base(), secureContext });
    await visit(cache, { ...base(), secureContext });
    expect(cache.stats()).toMatchObject({ bypassed: 2, lookups: 0, stored: 0 });
    await cache.close();
  });
});

describe('records that must not be offered', () => {
  let server: Awaited<ReturnType<typeof startNodeTlsServer>>;
  beforeAll(async () => {
    server = await startNodeTlsServer(named, TLS_VARIANTS[0]!); // TLS 1.2 session IDs: one reusable key per peer
  });
  afterAll(async () => {
    await server.close();
  });

  /** A Map-backed store that keeps what it is given and ignores TTLs, so the cache's own checks are what refuse. */
  function keepingStore(): SessionStore & { data: Map<string, Buffer> } {
    const data = new Map<string, Buffer>();
    return {
      data,
      get: async (key) => data.get(key),
      set: async (key, value) => {
        data.set(key, Buffer.from(value));
      },
      delete: async (key) => {
        data.delete(key);
      },
      take: async (key) => {
        const value = data.get(key);
        data.delete(key);
        return value;
      },
      close: async () => {},
    };
  }

  const options = (): tls.ConnectionOptions => ({ port: server.port });

  test.each([
    ['random bytes', (_value: Buffer) => randomBytes(80)],
    ['a truncated record', (value: Buffer) => value.subarray(0, 30)],
    [
      'a damaged session inside an intact record',
      (value: Buffer) => Buffer.concat([value.subarray(0, value.length - 40), randomBytes(40)]),
    ],
  ])('%s is rejected, dropped, and the connection does a full handshake', async (_name, damage) => {
    const store = keepingStore();
    // Unsealed records: what the decoder alone must refuse (sealed ones also fail authentication).
    const cache = new ClientSessionCache({ store, unauthenticatedRecords: 'accept-forgeable' });
    await visit(cache, options());
    const [key, value] = [...store.data.entries()][0]!;
    store.data.set(key, damage(value));
    expect((await visit(cache, options())).reused).toBe(false);
    expect(cache.stats()).toMatchObject({ rejected: 1, offered: 0 });
    await cache.close();
  });

  test("a record moved to another peer's key is rejected (foreign scope), sealed or not", async () => {
    for (const secret of [undefined, randomBytes(32)]) {
      const store = keepingStore();
      const cache = new ClientSessionCache({ store, ...(secret ? { secret } : { unauthenticatedRecords: 'accept-forgeable' as const }) });
      await visit(cache, { ...options(), servername: 'a.example' });
      await visit(cache, { ...options(), servername: 'b.example' });
      const [[keyA, valueA], [keyB]] = [...store.data.entries()];
      store.data.set(keyB!, valueA!);
      expect((await visit(cache, { ...options(), servername: 'b.example' })).reused).toBe(false);
      expect(cache.stats().rejected).toBe(1);
      expect(store.data.get(keyA!)).toBeDefined();
      await cache.close();
    }
  });

  test('a sealed record that was tampered with is rejected; one sealed with an unknown secret too', async () => {
    const store = keepingStore();
    const secret = randomBytes(32);
    const cache = new ClientSessionCache({ store, secret });
    await visit(cache, options());
    const [key, value] = [...store.data.entries()][0]!;
    const flipped = Buffer.from(value);
    flipped[flipped.length - 60]! ^= 1;
    store.data.set(key, flipped);
    expect((await visit(cache, options())).reused).toBe(false);
    expect(cache.stats().rejected).toBe(1);
    // The record the full handshake just stored, read by a cache with another secret.
    const stranger = new ClientSessionCache({ store, secret: randomBytes(32) });
    expect((await visit(stranger, options())).reused).toBe(false);
    expect(stranger.stats()).toMatchObject({ rejected: 1, offered: 0 });
    // Unsealed reader of a sealed record: refused as well.
    await visit(cache, options());
    const plain = new ClientSessionCache({ store, unauthenticatedRecords: 'accept-forgeable' });
    expect((await visit(plain, options())).reused).toBe(false);
    expect(plain.stats().rejected).toBe(1);
    for (const c of [cache, stranger, plain]) await c.close();
  });

  test('a record past maxAgeSeconds is dropped as expired, even from a store that keeps it', async () => {
    const store = keepingStore();
    const clock = manualClock();
    const cache = new ClientSessionCache({ store, secret: randomBytes(32), maxAgeSeconds: 1, now: clock.now });
    await visit(cache, options());
    expect(cache.stats().stored).toBe(1);
    clock.advance(1100);
    expect((await visit(cache, options())).reused).toBe(false);
    expect(cache.stats()).toMatchObject({ expired: 1, offered: 0 });
    await cache.close();
  });

  test("a session is kept no longer than the server certificate's notAfter, whatever the server allows", async () => {
    const ttls: number[] = [];
    const store = keepingStore();
    const recording: SessionStore = {
      ...store,
      set: async (key, value, ttlSeconds) => (ttls.push(ttlSeconds), store.set(key, value, ttlSeconds)),
    };
    // Sessions would live two hours (Node's client keeps them 7200 s); the certificate expires in 20 minutes.
    const shortLived = serverCertificateUntil(pki, new Date(Date.now() + 20 * 60_000));
    const generous = tls.createServer({ ...shortLived, sessionTimeout: 6 * 86_400 }, (socket) => socket.end('hello\n'));
    const port = await listen(generous);
    try {
      const cache = new ClientSessionCache({ store: recording, secret: randomBytes(32), maxAgeSeconds: 7 * 86_400 });
      for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) await visit(cache, { port, maxVersion });
      const notAfter = new X509Certificate(shortLived.cert).validTo;
      const certificateLeftSeconds = (Date.parse(notAfter) - Date.now()) / 1000;
      expect(ttls.length).toBeGreaterThanOrEqual(2);
      for (const ttl of ttls) {
        expect(ttl).toBeLessThanOrEqual(Math.ceil(certificateLeftSeconds));
        expect(ttl).toBeGreaterThan(certificateLeftSeconds - 120);
      }
      await cache.close();
    } finally {
      await close(generous);
    }
  });

  test('a TLS 1.2 session the server no longer resumes is offered once, then replaced', async () => {
    const serverCache = new Map<string, Buffer>();
    const forgetful = tls.createServer(
      { key: pki.serverKey, cert: pki.serverCert, maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET },
      (socket) => socket.end('hello\n'),
    );
    forgetful.on('newSession', (id: Buffer, data: Buffer, done: () => void) => {
      serverCache.set(id.toString('hex'), data);
      done();
    });
    forgetful.on('resumeSession', (id: Buffer, done: (e: null, data: Buffer | null) => void) =>
      done(null, serverCache.get(id.toString('hex')) ?? null),
    );
    const port = await listen(forgetful);
    try {
      const store = keepingStore();
      const cache = new ClientSessionCache({ store, secret: randomBytes(32) });
      await visit(cache, { port });
      serverCache.clear();
      expect((await visit(cache, { port })).reused).toBe(false);
      expect(cache.stats()).toMatchObject({ offered: 1, notResumed: 1 });
      expect((await visit(cache, { port })).reused).toBe(true);
      expect(cache.stats()).toMatchObject({ offered: 2, resumed: 1 });
      await cache.close();
    } finally {
      await close(forgetful);
    }
  });
});

/** An HTTPS server answering 'ok' that records, per new connection, whether it resumed; stop() also ends keep-alive sockets. */
async function startHttpsServer(): Promise<{ port: number; handshakes: boolean[]; stop(): Promise<void> }> {
  const handshakes: boolean[] = [];
  const server = https.createServer({ key: pki.serverKey, cert: pki.serverCert }, (_request, response) => response.end('ok'));
  server.on('secureConnection', (socket: tls.TLSSocket) => handshakes.push(socket.isSessionReused()));
  const port = await listen(server as unknown as tls.Server);
  return {
    port,
    handshakes,
    stop: async () => {
      server.closeAllConnections();
      await close(server as unknown as tls.Server);
    },
  };
}

describe('through an https.Agent', () => {
  test('requests from a new agent (and a new cache over the same file) resume; keep-alive still reuses the socket', async () => {
    const { port, handshakes, stop } = await startHttpsServer();
    const get = (agent: https.Agent): Promise<string> =>
      new Promise((resolve, reject) => {
        https
          .get({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.ca, agent }, (response) => {
            let body = '';
            response.on('data', (chunk: Buffer) => (body += chunk.toString()));
            response.on('end', () => resolve(body));
          })
          .on('error', reject);
      });
    try {
      for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
        handshakes.length = 0;
        const file = `agent-${maxVersion}`;
        const first = new ClientSessionCache({ store: sqlite(file) });
        const agent1 = first.createHttpsAgent({ keepAlive: true, maxVersion });
        expect(await get(agent1)).toBe('ok');
        expect(await get(agent1)).toBe('ok'); // keep-alive: same socket, no second handshake
        agent1.destroy();
        await first.close();
        const later = new ClientSessionCache({ store: sqlite(file) });
        const agent2 = later.createHttpsAgent({ maxVersion });
        expect(await get(agent2)).toBe('ok');
        agent2.destroy();
        await later.close();
        expect({ maxVersion, handshakes }).toEqual({ maxVersion, handshakes: [false, true] });
        expect(later.stats()).toMatchObject({ offered: 1, resumed: 1 });
      }
    } finally {
      await stop();
    }
  });
});

describe('bad options are typed errors', () => {
  test.each([
    [{}, 'ERR_INVALID_ARG_TYPE', /options\.store/],
    [{ store: new MemoryStore(), budgetMs: 0 }, 'ERR_OUT_OF_RANGE', /options\.budgetMs/],
    [{ store: new MemoryStore(), poolSize: 1.5 }, 'ERR_OUT_OF_RANGE', /options\.poolSize/],
    [{ store: new MemoryStore(), maxAgeSeconds: 8 * 86_400 }, 'ERR_OUT_OF_RANGE', /options\.maxAgeSeconds/],
    [{ store: new MemoryStore(), secret: Buffer.alloc(5) }, 'ERR_OUT_OF_RANGE', /exactly 32/],
    [{ store: new MemoryStore(), onError: 'log' }, 'ERR_INVALID_ARG_TYPE', /options\.onError/],
    [{ store: new MemoryStore(), now: Date.now() }, 'ERR_INVALID_ARG_TYPE', /options\.now/],
  ])('%p → %s', (options, code, message) => {
    expect(() => new ClientSessionCache(options as never)).toThrow(
      expect.objectContaining({ code, message: expect.stringMatching(message) }),
    );
  });

  test('connect after close() rejects with ERR_TLS_SESSION_STORE_CLOSED; connect(null) with ERR_INVALID_ARG_TYPE', async () => {
    const cache = new ClientSessionCache({ store: new MemoryStore() });
    await expect(cache.connect(null as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await cache.close();
    await expect(cache.connect({ port: 1 })).rejects.toMatchObject({ code: 'ERR_TLS_SESSION_STORE_CLOSED' });
  });

  test('a connection error rejects connect() with that error, and nothing is stored', async () => {
    const server = tls.createServer({ key: pki.serverKey, cert: pki.serverCert }, (socket) => socket.end());
    const port = await listen(server);
    try {
      const cache = new ClientSessionCache({ store: new MemoryStore() });
      // No CA: the server's certificate does not verify.
      await expect(cache.connect({ host: '127.0.0.1', port, servername: 'localhost' })).rejects.toMatchObject({
        code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      });
      await cache.flush();
      expect(cache.stats().stored).toBe(0);
      await cache.close();
    } finally {
      await close(server);
    }
  });
});

describe('through undici (fetch with a dispatcher)', () => {
  test('a new undici Agent with a new cache over the same file resumes; Node’s global fetch takes the dispatcher too', async () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const undici = require('undici') as typeof import('undici');
    const { port, handshakes, stop } = await startHttpsServer();
    const url = `https://localhost:${port}/`;
    try {
      for (const [name, fetchWith] of [
        ['undici.fetch', (dispatcher: import('undici').Dispatcher) => undici.fetch(url, { dispatcher })],
        ['global fetch', (dispatcher: import('undici').Dispatcher) => fetch(url, { dispatcher } as unknown as RequestInit)],
      ] as const) {
        handshakes.length = 0;
        const bodies: string[] = [];
        for (let run = 0; run < 2; run++) {
          const cache = new ClientSessionCache({ store: sqlite(`undici-${name}`) });
          const dispatcher = new undici.Agent({ connect: cache.createConnector({ ca: pki.ca }) });
          const response = await fetchWith(dispatcher);
          bodies.push(await response.text());
          await dispatcher.close();
          await cache.close();
        }
        expect({ name, bodies, handshakes }).toEqual({ name, bodies: ['ok', 'ok'], handshakes: [false, true] });
      }
    } finally {
      await stop();
    }
  });

  test('a connection error reaches fetch as its cause', async () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const undici = require('undici') as typeof import('undici');
    const { port, stop } = await startHttpsServer();
    try {
      const cache = new ClientSessionCache({ store: new MemoryStore() });
      const dispatcher = new undici.Agent({ connect: cache.createConnector() }); // no CA: does not verify
      await expect(undici.fetch(`https://localhost:${port}/`, { dispatcher })).rejects.toMatchObject({
        cause: expect.objectContaining({ code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }),
      });
      await dispatcher.close();
      await cache.close();
    } finally {
      await stop();
    }
  });
});

describe('a stalled store costs at most the budget', () => {
  test('SQLite locked by another process: the connection goes ahead with a full handshake after ~budgetMs', async () => {
    const server = await startNodeTlsServer(pki, TLS_VARIANTS[2]!);
    const path = join(dir, 'stalled.db');
    const store = new SqliteStore({ path, busyTimeoutMs: 100 });
    stores.push(store);
    const cache = new ClientSessionCache({ store, budgetMs: 50 });
    await visit(cache, { port: server.port });
    // Another process holds the write lock: taking a ticket (a DELETE) waits busyTimeoutMs, then gives up.
    const holder = spawn('sqlite3', ['-bail', path], { stdio: ['pipe', 'pipe', 'pipe'] });
    let holderOutput = '';
    holder.stdout!.on('data', (chunk: Buffer) => (holderOutput += chunk.toString()));
    holder.stderr!.on('data', (chunk: Buffer) => (holderOutput += chunk.toString()));
    holder.stdin!.write(".timeout 5000\nBEGIN EXCLUSIVE;\nINSERT INTO tls_sessions VALUES ('held', x'00', 1);\nSELECT 'locked';\n");
    while (!holderOutput.includes('\n') && holder.exitCode === null) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(holderOutput).toBe('locked\n');
    try {
      const result = await visit(cache, { port: server.port });
      expect(result.reused).toBe(false);
      const { latencyMs, misses, offered } = cache.stats();
      expect({ misses, offered }).toEqual({ misses: 2, offered: 0 });
      expect(store.stats().busyMisses).toBeGreaterThan(0);
      // One locked call waits busyTimeoutMs (100 ms, synchronously: no timer can cut it short);
      // then the lookup is past its 50 ms budget and stops, instead of waiting on each of the
      // pool's 4 slots (400 ms). A bound with room for a loaded machine, far below that.
      expect(latencyMs.lookup.max).toBeLessThan(300);
    } finally {
      holder.stdin!.end();
      if (holder.exitCode === null) await once(holder, 'exit');
      await server.close();
    }
  });
});
