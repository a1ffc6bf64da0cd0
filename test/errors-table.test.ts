/**
 * Walks the error table (docs/ERRORS.md, linked from the README) and provokes every row through the public API:
 * each must raise an instance of the named class with the code the table promises. A row
 * without a provocation, or an exported error class missing from the table, fails the test.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import * as net from 'node:net';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import * as lib from '../lib';
import { attachSessionStore, MemoryStore, Session, TlsConnection, TlsContext, type SessionStore } from '../lib';
import { makePki, type Pki } from './helpers/pki';
import { duplexPair } from './tls/helpers/duplex-pair';
import { close, handshake, listen, tls12Server } from './persist/helpers/tls-peers';

let pki: Pki;
beforeAll(() => {
  pki = makePki();
});

function tableRows(): Array<{ name: string; code: string }> {
  const section = readFileSync(join(__dirname, '..', 'docs', 'ERRORS.md'), 'utf8');
  return [...section.matchAll(/^\| `(\w+)` \| `(\w+)` \|/gm)].map((m) => ({ name: m[1]!, code: m[2]! }));
}

/** Runs `fn` and returns what it threw (or the error it resolved/rejected with). */
async function caught(fn: () => unknown): Promise<unknown> {
  try {
    const value = await fn();
    return value instanceof Error ? value : new Error(`did not throw (returned ${String(value)})`);
  } catch (err) {
    return err;
  }
}

/** A store whose calls never settle, to run into attachSessionStore's budget. */
const stalledStore: SessionStore = {
  get: () => new Promise(() => {}),
  set: () => new Promise(() => {}),
  delete: async () => {},
  close: async () => {},
};

/** Resolves with the first error attachSessionStore reports while `act` runs against a TLS 1.2 server. */
async function reported(store: SessionStore, act: (port: number, store: SessionStore) => Promise<void>): Promise<unknown> {
  const server = tls12Server(pki);
  const errors: Error[] = [];
  const handle = attachSessionStore(server, { store, budgetMs: 20, onError: (e) => errors.push(e) });
  const port = await listen(server);
  try {
    await act(port, store);
    return errors[0] ?? new Error('nothing was reported');
  } finally {
    handle.detach();
    await close(server);
  }
}

const provoke: Record<string, () => Promise<unknown>> = {
  TypeError: () => caught(() => Session.fromDER('x' as unknown as Buffer)),
  RangeError: () => caught(() => Session.fromDER(Buffer.from([0x30]), { maxBytes: 0 })),
  'TypeError ERR_INVALID_ARG_VALUE': () =>
    caught(() => attachSessionStore(tls12Server(pki), { store: new MemoryStore(), lookup: 'some' as never })),
  SessionDecodeError: () => caught(() => Session.fromDER(Buffer.from([1, 2, 3]))),
  SessionFreedError: () =>
    caught(async () => {
      const { session: der } = await handshake(pki, await listenOnce());
      const session = Session.fromDER(der!);
      session.free();
      return session.toDER();
    }),
  SessionViewExpiredError: () =>
    caught(async () => {
      const { session: der } = await handshake(pki, await listenOnce());
      using session = Session.fromDER(der!);
      let view: lib.SessionView | undefined;
      session.lend((v) => {
        view = v;
      });
      return view!.id;
    }),
  OpenSSLLoadError: async () => {
    // In a child process: the library is loaded once per process, at require.
    const script = `require(${JSON.stringify(join(__dirname, 'persist', 'fixtures', 'register-ts.js'))});
      try { require(${JSON.stringify(join(__dirname, '..', 'lib', 'index.ts'))}); } catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code })); }`;
    const run = spawnSync(process.execPath, ['-e', script], {
      encoding: 'utf8',
      env: { ...process.env, TLS_SESSION_LIBSSL: '/nonexistent/libssl.so.3' },
    });
    return JSON.parse(run.stdout) as { name: string; code: string }; // checked by name: another process
  },
  MetricsPeerMissingError: async () => {
    // In a child process whose module resolution cannot find prom-client (an application without it).
    const script = `const Module = require('node:module');
      const resolve = Module._resolveFilename;
      Module._resolveFilename = function (request, ...rest) {
        if (request === 'prom-client') throw Object.assign(new Error("Cannot find module 'prom-client'"), { code: 'MODULE_NOT_FOUND' });
        return resolve.call(this, request, ...rest);
      };
      require(${JSON.stringify(join(__dirname, 'persist', 'fixtures', 'register-ts.js'))});
      try { require(${JSON.stringify(join(__dirname, '..', 'lib', 'index.ts'))}).collectPrometheusMetrics(); }
      catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code })); }`;
    const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    return JSON.parse(run.stdout) as { name: string; code: string }; // checked by name: another process
  },
  TlsConfigError: () => caught(() => new TlsContext({ role: 'server', cert: 'not a certificate', key: 'not a key' })),
  TlsProtocolError: async () => {
    const serverCtx = new TlsContext({ role: 'server', cert: pki.serverCert, key: pki.serverKey });
    const clientCtx = new TlsContext({ role: 'client', ca: pki.clientCert }); // not the issuer of the server's certificate
    const [a, b] = duplexPair();
    TlsConnection.accept(serverCtx, b).on('error', () => {});
    const client = TlsConnection.connect(clientCtx, a, { servername: 'localhost' });
    const [error] = await once(client, 'error');
    serverCtx.close();
    clientCtx.close();
    return error;
  },
  TlsDisconnectError: async () => {
    const ctx = new TlsContext({ role: 'client', ca: pki.ca });
    const silent = new Duplex({
      read() {},
      write(_c, _e, cb) {
        cb();
      },
    });
    const client = TlsConnection.connect(ctx, silent, { servername: 'localhost' });
    setImmediate(() => silent.push(null)); // the transport ends before any answer
    const [error] = await once(client, 'error');
    ctx.close();
    return error;
  },
  TlsStateError: () =>
    caught(() => {
      const ctx = new TlsContext({ role: 'client', ca: pki.ca });
      ctx.close();
      ctx.flushSessions();
    }),
  PersistConfigError: () => caught(() => new lib.SqliteStore({ path: join(pki.dir, 'no-such-directory', 'sessions.db') })),
  StoreClosedError: () =>
    caught(async () => {
      const store = new MemoryStore();
      await store.close();
      return store.get('key');
    }),
  StoreTimeoutError: () =>
    reported(stalledStore, async (port) => {
      await handshake(pki, port);
    }),
  SessionHostError: () =>
    caught(async () => {
      // Node's client envelope (22.23+/24.17+/26.3.1+) for a.example, bound again for b.example: refused on every line.
      const { session: der } = await handshake(pki, await listenOnce());
      const host = Buffer.from('a.example');
      const envelope = Buffer.concat([Buffer.from('\0nodejs:tls:session:1\0', 'latin1'), Buffer.from([0, host.length]), host, der!]);
      using session = Session.fromNodeSession(envelope);
      return session.toNodeSession({ servername: 'b.example' });
    }),
  ClientConnectTimeoutError: () =>
    caught(async () => {
      // A server that accepts TCP and never answers the ClientHello.
      const silent = net.createServer(() => undefined);
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      const cache = new lib.ClientSessionCache({ store: new MemoryStore() });
      try {
        return await cache.connect({ host: '127.0.0.1', port: (silent.address() as net.AddressInfo).port, timeout: 200 });
      } finally {
        await cache.close();
        silent.close();
      }
    }),
  NodeInternalsError: () =>
    caught(() => {
      // A Node whose tls.Server had no SNI context list (simulated on one server).
      const server = tls12Server(pki);
      delete (server as unknown as { _contexts?: unknown })._contexts;
      return attachSessionStore(server, { store: new MemoryStore(), scope: 'fleet' });
    }),
  RecordRejectedError: () => {
    const records = new Map<string, Buffer>();
    const store: SessionStore = {
      get: async (key) => records.get(key),
      set: async (key, value) => {
        records.set(key, value);
      },
      delete: async (key) => {
        records.delete(key);
      },
      close: async () => {},
    };
    return reported(store, async (port) => {
      const first = await handshake(pki, port);
      for (const key of records.keys()) records.set(key, Buffer.from('not a session record'));
      await handshake(pki, port, first.session);
    });
  },
};

let plainServer: ReturnType<typeof tls12Server> | undefined;
async function listenOnce(): Promise<number> {
  plainServer ??= tls12Server(pki);
  return plainServer.listening ? (plainServer.address() as { port: number }).port : listen(plainServer);
}
afterAll(async () => {
  if (plainServer) await close(plainServer);
});

const rows = tableRows();

test('docs/ERRORS.md lists every exported error class a caller can meet, and nothing unknown', () => {
  expect(rows.length).toBeGreaterThanOrEqual(14);
  const exported = Object.entries(lib)
    .filter(([, value]) => typeof value === 'function' && value.prototype instanceof lib.TlsSessionError)
    .map(([name]) => name);
  // Base classes, and details that reach callers only as the cause of a RecordRejectedError.
  const notRows = ['OpenSSLError', 'StoreError', 'RecordFormatError', 'UnsealError', 'ScopeError'];
  const listed = rows.map((r) => r.name);
  expect(exported.filter((name) => !listed.includes(name) && !notRows.includes(name))).toEqual([]);
  for (const { name, code } of rows) expect(provoke[`${name} ${code}`] ?? provoke[name]).toBeDefined();
});

test.each(rows.map((r) => [r.name, r.code] as const))('%s (%s) is raised as docs/ERRORS.md says', async (name, code) => {
  const error = await (provoke[`${name} ${code}`] ?? provoke[name])!();
  const expectedClass =
    name === 'TypeError' ? TypeError : name === 'RangeError' ? RangeError : (lib as unknown as Record<string, Function>)[name]!;
  if (error instanceof Error) expect(error).toBeInstanceOf(expectedClass);
  else expect((error as { name?: string }).name).toBe(name);
  expect((error as { code?: string }).code).toBe(code);
});
