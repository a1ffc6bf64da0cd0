/**
 * ClientSessionCache across real processes: separate short-lived client processes
 * (fixtures/client-cache-client.js, on the compiled library) share one SQLite file. The first
 * does a full handshake, the next resumes — TLS 1.2 and 1.3, through cache.connect and through
 * the https.Agent — against a node:tls (https) server, `openssl s_server -www` and an engine
 * server; each server's own account agrees. TLS 1.3 tickets are single-use across processes:
 * concurrent processes offer distinct tickets, as `openssl s_server -trace` shows (the
 * pre_shared_key identities of their ClientHellos).
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import * as https from 'node:https';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as tls from 'node:tls';
import { ClientSessionCache, SqliteStore, TlsConnection, TlsContext } from '../../lib';
import { makePki, type Pki } from '../helpers/pki';
import { startSServer, type SServer } from '../tls/helpers/peers';
import { offeredTickets, startTracingSServer } from './helpers/psk-trace';
import { close, listen } from './helpers/tls-peers';

const CLIENT = join(__dirname, 'fixtures', 'client-cache-client.js');
const HTTP_OK = 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n';

let pki: Pki;
let dir: string;
beforeAll(() => {
  pki = makePki();
  dir = mkdtempSync(join(tmpdir(), 'tls-session-client-processes-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(pki.dir, { recursive: true, force: true });
});

interface ClientResult {
  reused: boolean;
  protocol: string;
  body: string;
  stats: { offered: number; resumed: number; stored: number; rejected: number; errors: number };
}

/** One client process, start to exit. */
function runClient(config: Record<string, unknown>): Promise<ClientResult> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [CLIENT, JSON.stringify({ ca: pki.caCertPath, ...config })],
      { timeout: 60_000 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`client process failed: ${error.message}\n${stderr}`));
        else resolve(JSON.parse(stdout) as ClientResult);
      },
    );
  });
}

interface HttpServer {
  port: number;
  /** The server's own account: was each connection resumed? (s_server writes it into the page it served) */
  reused(pages: string[]): boolean[];
  stop(): Promise<void>;
}

async function nodeServer(): Promise<HttpServer> {
  const reused: boolean[] = [];
  const server = https.createServer({ key: pki.serverKey, cert: pki.serverCert }, (_request, response) => response.end('ok\n'));
  server.on('secureConnection', (socket: tls.TLSSocket) => reused.push(socket.isSessionReused()));
  const port = await listen(server as unknown as tls.Server);
  return {
    port,
    reused: () => reused,
    stop: async () => {
      server.closeAllConnections();
      await close(server as unknown as tls.Server);
    },
  };
}

async function sServer(version: string): Promise<HttpServer> {
  const flag = version === 'TLSv1.3' ? '-tls1_3' : '-tls1_2';
  const server: SServer = await startSServer(['-cert', pki.serverCertPath, '-key', pki.serverKeyPath, '-www', flag]);
  return {
    port: server.port,
    // s_server -www serves a status page saying "New, TLSv1.x, Cipher is …" or "Reused, …".
    reused: (pages) => pages.map((page) => /^Reused, TLSv1\.\d/m.test(page)),
    stop: () => server.stop(),
  };
}

/** An engine server answering one HTTP request per connection; `onSecure` sees each handshake. */
async function engineServer(ctx: TlsContext, onSecure: (connection: TlsConnection) => void = () => {}): Promise<HttpServer> {
  const reused: boolean[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    const connection = TlsConnection.accept(ctx, socket);
    connection.on('error', () => {});
    connection.on('secure', () => {
      reused.push(connection.isSessionReused());
      onSecure(connection);
    });
    let request = '';
    connection.on('data', (chunk: Buffer) => {
      request += chunk.toString('latin1');
      if (request.includes('\r\n\r\n')) connection.end(HTTP_OK);
    });
  });
  const port = await listen(server as unknown as tls.Server);
  return {
    port,
    reused: () => reused,
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await close(server as unknown as tls.Server);
    },
  };
}

const versions = ['TLSv1.2', 'TLSv1.3'] as const;
const modes = ['connect', 'agent'] as const;
const servers: Array<[string, (version: string) => Promise<{ server: HttpServer; ctx?: TlsContext }>]> = [
  ['node:tls (https.Server)', async () => ({ server: await nodeServer() })],
  ['openssl s_server -www', async (version) => ({ server: await sServer(version) })],
  [
    'engine server',
    async () => {
      const ctx = new TlsContext({ role: 'server', cert: pki.serverCert, key: pki.serverKey });
      return { server: await engineServer(ctx), ctx };
    },
  ],
];

describe.each(servers)('%s', (_name, start) => {
  test.each(versions.flatMap((version) => modes.map((mode) => [version, mode] as const)))(
    '%s through %s: a second process resumes the first one’s session; the server agrees',
    async (version, mode) => {
      const { server, ctx } = await start(version);
      const db = join(dir, `${_name.replace(/\W+/g, '-')}-${version}-${mode}.db`);
      try {
        const config = { db, port: server.port, mode, minVersion: version, maxVersion: version };
        const first = await runClient(config);
        expect({ reused: first.reused, protocol: first.protocol }).toEqual({ reused: false, protocol: version });
        expect(first.stats.stored).toBeGreaterThan(0);
        const second = await runClient(config);
        expect({ reused: second.reused, protocol: second.protocol }).toEqual({ reused: true, protocol: version });
        expect(second.stats).toMatchObject({ offered: 1, resumed: 1, rejected: 0, errors: 0 });
        expect(server.reused([first.body, second.body])).toEqual([false, true]);
      } finally {
        await server.stop();
        ctx?.close();
      }
    },
  );
});

test('TLS 1.3 tickets are single-use across processes: concurrent processes offer distinct tickets (openssl s_server -trace)', async () => {
  const server = await startTracingSServer(pki);
  try {
    const config = { db: join(dir, 'single-use.db'), port: server.port, mode: 'connect', poolSize: 4 };
    // Fill the pool from this process: two full handshakes at once (both look up before either
    // has a ticket); s_server sends two tickets after each, so the pool holds 4.
    const store = new SqliteStore({ path: config.db });
    const filler = new ClientSessionCache({ store, poolSize: 4 });
    await Promise.all(
      [1, 2].map(async () => {
        const socket = await filler.connect({ host: '127.0.0.1', port: server.port, servername: 'localhost', ca: pki.ca });
        socket.resume();
        socket.write('GET / HTTP/1.0\r\n\r\n');
        await once(socket, 'close');
      }),
    );
    await filler.close();
    await store.close();
    expect(filler.stats()).toMatchObject({ offered: 0, stored: 4 });

    const wave = await Promise.all([1, 2, 3, 4, 5].map(() => runClient(config)));
    const offeredByClients = wave.reduce((sum, r) => sum + r.stats.offered, 0);
    // At least the 4 pooled tickets went out (a fifth process may find one that a resumed process
    // stored meanwhile), each resumed, and s_server saw every offered ticket once.
    expect(offeredByClients).toBeGreaterThanOrEqual(4);
    expect(wave.filter((r) => r.reused)).toHaveLength(offeredByClients);
    await server.waitFor(/extension_type=psk\(41\), length=([3-9]|\d\d+)/, offeredByClients);
    const offered = offeredTickets(server.output());
    expect(offered).toHaveLength(offeredByClients);
    expect(new Set(offered).size).toBe(offeredByClients);
  } finally {
    await server.stop();
  }
});
