/**
 * ClientSessionCache must never make a verifying client trust the wrong server (issue 20). A
 * resumed connection is not verified again: Node takes the verify result and the certificate
 * from the session and skips checkServerIdentity, so the session offered is the trust decision.
 * One block per defect, each against real servers: (1) records forged by a store writer,
 * (2) a default trust store that differs per process (child processes with and without
 * NODE_EXTRA_CA_CERTS), (3) pins, (4) options changed while the lookup awaits the store,
 * (5) connects that never end, (6) TLS 1.3 tickets of a socket destroyed at once.
 */
import { execFile, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import * as https from 'node:https';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { inspect } from 'node:util';
import { ClientSessionCache, MemoryStore, SqliteStore, type ClientSessionCacheOptions, type SessionStore } from '../../lib';
import { clientPeerOf } from '../../lib/persist/client/peer';
import { encodeClientRecord } from '../../lib/persist/records/client-session';
import { wrapPlain } from '../../lib/persist/records/envelope';
import { makePki, serverCertificateUntil, type Pki } from '../helpers/pki';
import { startNodeTlsServer, TLS_VARIANTS } from '../helpers/node-tls-server';
import { REGISTER_TS } from './helpers/readme-example';
import { close, fromNode, listen } from './helpers/tls-peers';

let pki: Pki;
let dir: string;
const stores: SessionStore[] = [];
const versions = ['TLSv1.2', 'TLSv1.3'] as const;

beforeAll(() => {
  pki = makePki();
  dir = mkdtempSync(join(tmpdir(), 'tls-session-client-security-'));
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

/** The cache's connect, then read to the end (TLS 1.3 tickets come after the handshake) and wait for the writes. */
async function visit(cache: ClientSessionCache, options: tls.ConnectionOptions): Promise<{ reused: boolean; authorized: boolean }> {
  const socket = await cache.connect(options);
  const result = { reused: socket.isSessionReused(), authorized: socket.authorized };
  socket.resume();
  await once(socket, 'close');
  await cache.flush();
  return result;
}

/** What a connect() came to: its error's code, or the socket's verdict (the socket is then destroyed). */
async function outcome(connecting: Promise<tls.TLSSocket>): Promise<{ error: string } | { reused: boolean; authorized: boolean }> {
  try {
    const socket = await connecting;
    const verdict = { reused: socket.isSessionReused(), authorized: socket.authorized };
    socket.destroy();
    return verdict;
  } catch (error) {
    return { error: String((error as { code?: unknown }).code) };
  }
}

/** A server that answers each connection and records the name each client asked for (SNI). */
async function namedServer(pkiOf: Pki, extra: tls.TlsOptions = {}): Promise<{ server: tls.Server; port: number; names: string[] }> {
  const names: string[] = [];
  const server = tls.createServer({ key: pkiOf.serverKey, cert: pkiOf.serverCert, ...extra }, (socket) => {
    names.push(String((socket as tls.TLSSocket & { servername?: string | false }).servername));
    socket.on('error', () => {});
    socket.end('hello\n');
  });
  return { server, port: await listen(server), names };
}

/** An HTTPS server answering 'ok'; `clientPorts`: the remote port of each new connection. */
async function httpsServer(): Promise<{ port: number; clientPorts: number[]; stop(): Promise<void> }> {
  const clientPorts: number[] = [];
  const server = https.createServer({ key: pki.serverKey, cert: pki.serverCert }, (_request, response) => response.end('ok'));
  server.on('secureConnection', (socket: tls.TLSSocket) => clientPorts.push(socket.remotePort!));
  const port = await listen(server as unknown as tls.Server);
  return {
    port,
    clientPorts,
    stop: async () => {
      server.closeAllConnections();
      await close(server as unknown as tls.Server);
    },
  };
}

/** A session a plain tls.connect receives (as DER), read to the end of the connection. */
async function sessionOf(options: tls.ConnectionOptions): Promise<Buffer> {
  const socket = tls.connect(options);
  const sessions: Buffer[] = [];
  socket.on('session', (session: Buffer) => sessions.push(session));
  socket.resume();
  await once(socket, 'close');
  expect(sessions.length).toBeGreaterThan(0);
  return fromNode(sessions[sessions.length - 1]!);
}

describe('defect 1: records are authenticated by default (a store writer cannot forge a session)', () => {
  test.each(['SqliteStore (a file)', 'MemoryStore'])(
    '%s without a secret: a forged record under the victim’s key is refused, so the forger’s server is verified and fails',
    async (kind) => {
      const evil = makePki(); // the forger's own CA and a certificate for localhost
      const forger = await namedServer(evil, { maxVersion: 'TLSv1.2' });
      try {
        const store = kind === 'MemoryStore' ? new MemoryStore() : sqlite('forged');
        const victim = new ClientSessionCache({ store });
        const options = { host: '127.0.0.1', port: forger.port, servername: 'localhost', ca: pki.ca };
        // A session is only data: the forger makes one with its own server (verified under its own
        // CA) and writes it under the victim's key, which the store shows to anyone who can list it.
        const der = await sessionOf({ ...options, ca: evil.ca, maxVersion: 'TLSv1.2' });
        const { digest } = clientPeerOf(options);
        const forged = wrapPlain(encodeClientRecord({ use: 'reusable', expiresAtMs: Date.now() + 3_600_000, peerDigest: digest, der }));
        await store.set(`client:${digest}:r`, forged, 3600);

        // Before: { reused: true, authorized: true }: talking to the forger, verified.
        expect(await outcome(victim.connect(options))).toEqual({ error: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
        expect(victim.stats()).toMatchObject({ offered: 0, rejected: 1 });
        await victim.close();

        // What the loudly named opt-out means: the same forged record makes the client trust the forger.
        await store.set(`client:${digest}:r`, forged, 3600);
        const careless = new ClientSessionCache({ store, unauthenticatedRecords: 'accept-forgeable' });
        expect(await visit(careless, options)).toEqual({ reused: true, authorized: true });
        await careless.close();
      } finally {
        await close(forger.server);
        rmSync(evil.dir, { recursive: true, force: true });
      }
    },
  );

  test('SqliteStore: the key lives in <file>.key, mode 600, shared by every cache of that file, never shown', async () => {
    const server = await startNodeTlsServer(pki, TLS_VARIANTS[0]!);
    try {
      const path = join(dir, 'keyed.db');
      const first = new ClientSessionCache({ store: sqlite('keyed') });
      const keyFile = `${path}.key`;
      expect((statSync(keyFile).mode & 0o777).toString(8)).toBe('600');
      const hex = readFileSync(keyFile, 'utf8').trim();
      expect(hex).toMatch(/^[0-9a-f]{64}$/);
      await visit(first, { host: '127.0.0.1', port: server.port, servername: 'localhost', ca: pki.ca });
      await first.close();
      const later = new ClientSessionCache({ store: sqlite('keyed') });
      expect(await visit(later, { host: '127.0.0.1', port: server.port, servername: 'localhost', ca: pki.ca })).toEqual({
        reused: true,
        authorized: true,
      });
      expect(readFileSync(keyFile, 'utf8').trim()).toBe(hex);
      for (const shown of [inspect(later, { showHidden: true, depth: 10 }), JSON.stringify(later), JSON.stringify(later.stats())]) {
        expect(shown).not.toContain(hex);
      }
      await later.close();
    } finally {
      await server.close();
    }
  });

  test('a key file others may read, or a symbolic link, is refused with a typed error', () => {
    const store = sqlite('loose');
    new ClientSessionCache({ store }); // creates the key file
    chmodSync(`${store.path}.key`, 0o644);
    expect(() => new ClientSessionCache({ store })).toThrow(
      expect.objectContaining({ code: 'ERR_TLS_SESSION_PERSIST_CONFIG', message: expect.stringMatching(/mode 644/) }),
    );
    const linked = sqlite('linked');
    writeFileSync(join(dir, 'elsewhere.key'), `${'ab'.repeat(32)}\n`, { mode: 0o600 });
    symlinkSync(join(dir, 'elsewhere.key'), `${linked.path}.key`);
    expect(() => new ClientSessionCache({ store: linked })).toThrow(
      expect.objectContaining({ code: 'ERR_TLS_SESSION_PERSIST_CONFIG', message: expect.stringMatching(/symbolic link/) }),
    );
  });

  test('another store (Redis, your own) without a secret is a typed error saying what to do; secret + opt-out too', () => {
    const memory = new MemoryStore();
    const custom: SessionStore = {
      get: (key) => memory.get(key),
      set: (key, value, ttl) => memory.set(key, value, ttl),
      delete: (key) => memory.delete(key),
      close: () => memory.close(),
    };
    expect(() => new ClientSessionCache({ store: custom })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringMatching(/options\.secret/) }),
    );
    expect(
      () => new ClientSessionCache({ store: custom, secret: Buffer.alloc(32, 1), unauthenticatedRecords: 'accept-forgeable' }),
    ).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    expect(() => new ClientSessionCache({ store: custom, unauthenticatedRecords: 'yes' } as unknown as ClientSessionCacheOptions)).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }),
    );
    expect(new ClientSessionCache({ store: custom, secret: Buffer.alloc(32, 1) })).toBeInstanceOf(ClientSessionCache);
  });
});

describe('defect 2: without `ca`, the key holds this process’s default trust store', () => {
  const CHILD = join(__dirname, 'helpers', 'client-trust-child.ts');

  /** One client process connecting without `ca`; `extraCa`: its NODE_EXTRA_CA_CERTS (none if undefined). */
  function child(config: { db: string; port: number; version: string }, extraCa: string | undefined): Promise<Record<string, unknown>> {
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.NODE_EXTRA_CA_CERTS;
    if (extraCa !== undefined) env.NODE_EXTRA_CA_CERTS = extraCa;
    return new Promise((resolve, reject) => {
      execFile(process.execPath, ['-r', REGISTER_TS, CHILD, JSON.stringify(config)], { env, timeout: 60_000 }, (error, stdout, stderr) => {
        if (error) reject(new Error(`${error.message}\n${stderr}`));
        else resolve(JSON.parse(stdout) as Record<string, unknown>);
      });
    });
  }

  test.each(versions)(
    '%s: a process that trusts an extra CA stores a session; a process that does not trust it is not offered it',
    async (version) => {
      const server = await startNodeTlsServer(
        pki,
        TLS_VARIANTS.find((v) => v.version === version && v.tickets)!,
      );
      try {
        const config = { db: join(dir, `trust-${version}.db`), port: server.port, version };
        expect(await child(config, pki.caCertPath)).toMatchObject({ authorized: true, reused: false });
        // Before: resumed, authorized === true, although this process does not trust the server's CA.
        expect(await child(config, undefined)).toMatchObject({ error: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
        // The same trust in a new process still resumes.
        expect(await child(config, pki.caCertPath)).toMatchObject({ authorized: true, reused: true });
      } finally {
        await server.close();
      }
    },
    60_000,
  );

  const setDefault = (tls as unknown as { setDefaultCACertificates?: (certs: string[]) => void }).setDefaultCACertificates;
  const getCAs = (tls as unknown as { getCACertificates?: (type: string) => string[] }).getCACertificates;
  (setDefault ? test : test.skip)('tls.setDefaultCACertificates() in this process changes the key (Node 22.19+/24.5+)', async () => {
    const server = await startNodeTlsServer(pki, TLS_VARIANTS[0]!);
    const before = [...getCAs!('default')];
    try {
      const cache = new ClientSessionCache({ store: new MemoryStore() });
      const options = { host: '127.0.0.1', port: server.port, servername: 'localhost' };
      setDefault!([...before, pki.ca.toString()]);
      expect(await visit(cache, options)).toEqual({ reused: false, authorized: true });
      setDefault!(before);
      await expect(cache.connect(options)).rejects.toMatchObject({ code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
      setDefault!([...before, pki.ca.toString()]);
      expect(await visit(cache, options)).toEqual({ reused: true, authorized: true });
      await cache.close();
    } finally {
      setDefault!(before);
      await server.close();
    }
  });
});

describe('defect 3: checkServerIdentity applies to resumed connections', () => {
  /** A pin factory: each call makes a new closure with the same source text. */
  const pinTo =
    (fingerprint256: string) =>
    (host: string, cert: tls.PeerCertificate): Error | undefined => {
      const error = tls.checkServerIdentity(host, cert);
      if (error) return error;
      if (cert.fingerprint256 !== fingerprint256)
        return Object.assign(new Error('certificate is not the pinned one'), { code: 'PIN_MISMATCH' });
      return undefined;
    };

  test.each(versions)('%s: a connection pinned to another certificate is not offered the session of the right pin', async (version) => {
    const server = await startNodeTlsServer(
      pki,
      TLS_VARIANTS.find((v) => v.version === version && v.tickets)!,
    );
    try {
      const right = new X509Certificate(pki.serverCert).fingerprint256;
      const cache = new ClientSessionCache({ store: new MemoryStore(), onError: () => {} });
      const options = { host: '127.0.0.1', port: server.port, servername: 'localhost', ca: pki.ca };
      expect(await visit(cache, { ...options, checkServerIdentity: pinTo(right) })).toEqual({ reused: false, authorized: true });
      // Before: resumed and connected, the wrong pin never consulted.
      expect(await outcome(cache.connect({ ...options, checkServerIdentity: pinTo('00:11:22') }))).toEqual({ error: 'PIN_MISMATCH' });
      expect(cache.stats().rejected).toBeGreaterThanOrEqual(1);
      // A new closure with the right pin (a new process would make one too) still resumes.
      expect(await visit(cache, { ...options, checkServerIdentity: pinTo(right) })).toEqual({ reused: true, authorized: true });
      await cache.close();
    } finally {
      await server.close();
    }
  });

  test("without a custom check, Node's host check is run on the stored certificate too", async () => {
    const onlyA = serverCertificateUntil(pki, new Date(Date.now() + 86_400_000), ['a.example']);
    const server = await namedServer({ ...pki, serverCert: onlyA.cert, serverKey: onlyA.key }, { maxVersion: 'TLSv1.2' });
    try {
      // Unauthenticated records, so that the test can move one: a record claiming c.example's key.
      const store = new MemoryStore();
      const cache = new ClientSessionCache({ store, unauthenticatedRecords: 'accept-forgeable' });
      const base = { host: '127.0.0.1', port: server.port, ca: pki.ca };
      const der = await sessionOf({ ...base, servername: 'a.example' });
      const { digest } = clientPeerOf({ ...base, servername: 'c.example' });
      await store.set(
        `client:${digest}:r`,
        wrapPlain(encodeClientRecord({ use: 'reusable', expiresAtMs: Date.now() + 3_600_000, peerDigest: digest, der })),
        3600,
      );
      expect(await outcome(cache.connect({ ...base, servername: 'c.example' }))).toEqual({ error: 'ERR_TLS_CERT_ALTNAME_INVALID' });
      expect(cache.stats()).toMatchObject({ offered: 0, rejected: 1 });
      await cache.close();
    } finally {
      await close(server.server);
    }
  });
});

describe('defect 4: options are read once, at the call', () => {
  test('an options object changed while the lookup awaits the store: the connection goes where it was asked to', async () => {
    const named = serverCertificateUntil(pki, new Date(Date.now() + 86_400_000), ['a.example', 'b.example']);
    const namedPki = { ...pki, serverCert: named.cert, serverKey: named.key };
    const [a, b] = [await namedServer(namedPki, { maxVersion: 'TLSv1.2' }), await namedServer(namedPki, { maxVersion: 'TLSv1.2' })];
    try {
      const cache = new ClientSessionCache({ store: new MemoryStore() });
      const base: tls.ConnectionOptions = { host: '127.0.0.1', port: a.port, servername: 'a.example', ca: pki.ca };
      await visit(cache, base);
      const pending = cache.connect(base);
      base.port = b.port; // reused for the next target before the first has connected
      base.servername = 'b.example';
      const socket = await pending;
      const reused = socket.isSessionReused();
      socket.resume();
      await once(socket, 'close');
      // Before: the second connection went to b (with a.example's session, which Node 20 resumed unchecked).
      expect({ a: a.names.length, b: b.names.length, reused }).toEqual({ a: 2, b: 0, reused: true });
      await cache.close();
    } finally {
      await close(a.server);
      await close(b.server);
    }
  });

  test('createConnector copies its tlsOptions, as undici’s connector does: changing them later changes nothing', async () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const undici = require('undici') as typeof import('undici');
    const server = await httpsServer();
    const other = makePki();
    try {
      const cache = new ClientSessionCache({ store: new MemoryStore() });
      const tlsOptions: tls.ConnectionOptions = { ca: pki.ca };
      const dispatcher = new undici.Agent({ connect: cache.createConnector(tlsOptions) });
      tlsOptions.ca = other.ca;
      const response = await undici.fetch(`https://localhost:${server.port}/`, { dispatcher });
      expect(await response.text()).toBe('ok');
      await dispatcher.close();
      await cache.close();
    } finally {
      await server.stop();
      rmSync(other.dir, { recursive: true, force: true });
    }
  });
});

describe('defect 5: connects end', () => {
  /** Accepts TCP and says nothing; `closed()` resolves when the client side has gone away. */
  async function silentServer(): Promise<{ port: number; accepted: Promise<net.Socket>; stop(): Promise<void> }> {
    const sockets = new Set<net.Socket>();
    let onAccept: (socket: net.Socket) => void = () => {};
    const accepted = new Promise<net.Socket>((resolve) => (onAccept = resolve));
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.resume(); // read what the client sends, so that its going away ends this side too
      onAccept(socket);
    });
    const port = await listen(server as unknown as tls.Server);
    return {
      port,
      accepted,
      stop: async () => {
        for (const socket of sockets) socket.destroy();
        await close(server as unknown as tls.Server);
      },
    };
  }

  test('connect({ timeout }) against a server that never answers rejects, and the socket is destroyed', async () => {
    const silent = await silentServer();
    try {
      const cache = new ClientSessionCache({ store: new MemoryStore() });
      const result = cache.connect({ host: '127.0.0.1', port: silent.port, servername: 'localhost', ca: pki.ca, timeout: 200 });
      const serverSide = await silent.accepted;
      await expect(result).rejects.toMatchObject({ code: 'ERR_TLS_SESSION_CONNECT_TIMEOUT', timeoutMs: 200 });
      await once(serverSide, 'close'); // the client's socket was destroyed: the server sees it go
      await cache.close();
    } finally {
      await silent.stop();
    }
  }, 10_000);

  test('connect({ signal }) aborted during the handshake rejects with an AbortError, and the socket is destroyed', async () => {
    const silent = await silentServer();
    try {
      const cache = new ClientSessionCache({ store: new MemoryStore() });
      const controller = new AbortController();
      const result = cache.connect({
        host: '127.0.0.1',
        port: silent.port,
        servername: 'localhost',
        ca: pki.ca,
        signal: controller.signal,
      } as tls.ConnectionOptions);
      const serverSide = await silent.accepted;
      controller.abort();
      await expect(result).rejects.toMatchObject({ name: 'AbortError' });
      await once(serverSide, 'close');
      await cache.close();
    } finally {
      await silent.stop();
    }
  }, 10_000);

  test('undici through createConnector: its connect timeout applies (fetch fails instead of hanging)', async () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const undici = require('undici') as typeof import('undici');
    const silent = await silentServer();
    try {
      const cache = new ClientSessionCache({ store: new MemoryStore() });
      const dispatcher = new undici.Agent({ connect: cache.createConnector({ ca: pki.ca, timeout: 300 } as tls.ConnectionOptions) });
      await expect(undici.fetch(`https://localhost:${silent.port}/`, { dispatcher })).rejects.toMatchObject({
        cause: expect.objectContaining({ code: 'ERR_TLS_SESSION_CONNECT_TIMEOUT' }),
      });
      await dispatcher.close();
      await cache.close();
    } finally {
      await silent.stop();
    }
  }, 10_000);

  test('undici through createConnector: TCP keep-alive is on, as with undici’s own connector (ss shows the timer)', async () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const undici = require('undici') as typeof import('undici');
    const server = await httpsServer();
    try {
      const cache = new ClientSessionCache({ store: new MemoryStore() });
      const dispatcher = new undici.Agent({ connect: cache.createConnector({ ca: pki.ca }) });
      const url = `https://localhost:${server.port}/`;
      expect(await (await undici.fetch(url, { dispatcher })).text()).toBe('ok');
      // The connection stays in undici's pool (HTTP keep-alive); the kernel shows its TCP keep-alive timer.
      expect(server.clientPorts).toHaveLength(1);
      const ss = spawnSync('ss', ['-tnoH', 'state', 'established', `( sport = :${server.clientPorts[0]} )`], { encoding: 'utf8' });
      expect(ss.stdout).toMatch(/timer:\(keepalive,/);
      await dispatcher.close();
      await cache.close();
    } finally {
      await server.stop();
    }
  });
});

describe('defect 6: TLS 1.3 tickets are stored though the caller destroys the socket at once', () => {
  test('connect, destroy, close (the README’s snippet): the next cache over the file resumes', async () => {
    const server = await startNodeTlsServer(pki, TLS_VARIANTS[2]!);
    try {
      const options = { host: '127.0.0.1', port: server.port, servername: 'localhost', ca: pki.ca };
      const first = new ClientSessionCache({ store: sqlite('destroyed-at-once') });
      const socket = await first.connect(options);
      socket.destroy();
      expect(socket.destroyed).toBe(true);
      await first.close();
      expect(first.stats().stored).toBeGreaterThan(0);
      const later = new ClientSessionCache({ store: sqlite('destroyed-at-once') });
      const again = await later.connect(options);
      expect({ protocol: again.getProtocol(), reused: again.isSessionReused() }).toEqual({ protocol: 'TLSv1.3', reused: true });
      again.destroy();
      await later.close();
      expect(server.reused).toEqual([false, true]);
    } finally {
      await server.close();
    }
  });
});
