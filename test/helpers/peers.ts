/**
 * Real TLS peers that produce sessions for the tests: node:tls servers and clients, and the
 * openssl CLI (s_server, s_client -sess_out, sess_id). Loopback only; every process is reaped.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync } from 'node:fs';
import { freePort } from './free-port';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { constants as cryptoConstants } from 'node:crypto';
import { promisify } from 'node:util';
import { Session } from '../../lib';
import type { Pki } from './pki';

const execFileP = promisify(execFile);

export interface NodeServerOptions {
  pki: Pki;
  maxVersion?: tls.SecureVersion;
  /** Ticket-less TLS 1.2 makes Node emit newSession (session-ID sessions). */
  tickets?: boolean;
  requestCert?: boolean;
  alpnProtocols?: string[];
}

export interface NodeServer {
  port: number;
  /** DER of every session the server reported through 'newSession'. */
  newSessions: Buffer[];
  close(): Promise<void>;
}

/** A node:tls server that greets every client (so TLS 1.3 clients receive their tickets) and closes. */
export async function startNodeServer(opts: NodeServerOptions): Promise<NodeServer> {
  const newSessions: Buffer[] = [];
  const server = tls.createServer(
    {
      key: opts.pki.serverKey,
      cert: opts.pki.serverCert,
      ca: opts.pki.ca,
      maxVersion: opts.maxVersion,
      requestCert: opts.requestCert ?? false,
      rejectUnauthorized: false,
      ALPNProtocols: opts.alpnProtocols,
      secureOptions: opts.tickets === false ? cryptoConstants.SSL_OP_NO_TICKET : 0,
    },
    (socket) => {
      socket.on('error', () => {});
      socket.end('hello\n');
      setTimeout(() => socket.destroy(), 2000).unref(); // a peer that ignores close_notify
    },
  );
  server.on('newSession', (_id: Buffer, data: Buffer, done: () => void) => {
    newSessions.push(Buffer.from(data));
    done();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as { port: number }).port,
    newSessions,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

export interface NodeClientOptions {
  servername?: string;
  alpnProtocols?: string[];
  pki: Pki;
  /** A session to offer, as DER: it goes to Node through Session#toNodeSession. */
  session?: Buffer;
  cert?: boolean;
}

/**
 * Connects with node:tls and resolves with the client session and whether it resumed. Sessions
 * cross Node's client API the documented way on every Node line: what Node hands out goes
 * through Session.fromNodeSession (plain DER on Node 20, Node's host envelope on 22.23+/24.17+/
 * 26.3.1+), and `der` is its toDER(); `opts.session` (DER) goes in through toNodeSession.
 */
export async function nodeClientSession(
  port: number,
  opts: NodeClientOptions,
): Promise<{ der: Buffer; reused: boolean; authenticatedHost: string | undefined }> {
  // Node's identity for the connection: servername, else host.
  const identity = opts.servername ?? '127.0.0.1';
  let offered: Buffer | undefined;
  if (opts.session) {
    using session = Session.fromDER(opts.session);
    offered = session.toNodeSession({ servername: identity });
  }
  const socket = tls.connect({
    host: '127.0.0.1',
    port,
    servername: opts.servername,
    ca: opts.pki.ca,
    ALPNProtocols: opts.alpnProtocols,
    session: offered,
    rejectUnauthorized: false,
    cert: opts.cert ? opts.pki.clientCert : undefined,
    key: opts.cert ? opts.pki.clientKey : undefined,
  });
  let received: Buffer | undefined;
  socket.on('session', (s: Buffer) => {
    received = s;
  });
  socket.resume();
  await once(socket, 'secureConnect');
  const reused = socket.isSessionReused();
  await once(socket, 'close');
  if (received === undefined) throw new Error('the node:tls client received no session');
  using session = Session.fromNodeSession(received);
  return { der: session.toDER(), reused, authenticatedHost: session.authenticatedHost };
}

export interface SClientOptions {
  tls: '1.2' | '1.3';
  servername?: string;
  alpn?: string;
  pki: Pki;
  cert?: boolean;
  sessIn?: Buffer;
}

/** Runs `openssl s_client -sess_out` (optionally -sess_in) and returns the session as DER plus s_client's output. */
export async function sClientSession(port: number, opts: SClientOptions): Promise<{ der: Buffer; output: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'tls-session-sclient-'));
  const sessOut = join(dir, 'session.pem');
  const args = [
    's_client',
    '-connect',
    `127.0.0.1:${port}`,
    `-tls${opts.tls.replace('.', '_')}`,
    '-sess_out',
    sessOut,
    '-ign_eof',
    '-CAfile',
    opts.pki.caCertPath,
  ];
  if (opts.servername) args.push('-servername', opts.servername);
  else args.push('-noservername');
  if (opts.alpn) args.push('-alpn', opts.alpn);
  if (opts.cert) args.push('-cert', opts.pki.clientCertPath, '-key', opts.pki.clientKeyPath);
  if (opts.sessIn) {
    const sessIn = join(dir, 'in.pem');
    await writeDerAsPem(opts.sessIn, sessIn);
    args.push('-sess_in', sessIn);
  }
  const child = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stdin.end('GET / HTTP/1.0\r\n\r\n'); // s_server -www answers this and closes
  // s_client writes -sess_out as soon as it has the session; a peer that never closes must not hang the test.
  const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  const [code] = (await once(child, 'exit')) as [number];
  clearTimeout(killer);
  // The exit code is not the verdict: s_client exits 1 when the server closes first. The session file is.
  if (!existsSync(sessOut)) throw new Error(`openssl s_client (exit ${code}) saved no session:\n${output}`);
  const { stdout } = await execFileP('openssl', ['sess_id', '-in', sessOut, '-outform', 'DER'], { encoding: 'buffer' });
  return { der: stdout as unknown as Buffer, output };
}

async function writeDerAsPem(der: Buffer, path: string): Promise<void> {
  const child = spawn('openssl', ['sess_id', '-inform', 'DER', '-outform', 'PEM', '-out', path], { stdio: ['pipe', 'ignore', 'pipe'] });
  child.stdin.end(der);
  const [code] = (await once(child, 'exit')) as [number];
  if (code !== 0) throw new Error('openssl sess_id could not convert the session to PEM');
}

/** `openssl s_server` on a free loopback port, greeting each client, until stop(). */
export async function startSServer(pki: Pki, extra: string[] = []): Promise<{ port: number; stop(): Promise<void> }> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const child: ChildProcess = spawn(
      'openssl',
      ['s_server', '-accept', `127.0.0.1:${port}`, '-cert', pki.serverCertPath, '-key', pki.serverKeyPath, '-www', ...extra],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let log = '';
    const ready = new Promise<boolean>((resolve) => {
      child.stdout!.on('data', (d: Buffer) => {
        log += d.toString();
        if (log.includes('ACCEPT')) resolve(true);
      });
      child.stderr!.on('data', (d: Buffer) => {
        log += d.toString();
      });
      child.on('exit', () => resolve(false));
    });
    if (await ready) {
      return {
        port,
        stop: async () => {
          if (child.exitCode === null) {
            child.kill('SIGKILL');
            await once(child, 'exit');
          }
        },
      };
    }
    if (attempt >= 3) throw new Error(`openssl s_server did not start:\n${log}`);
  }
}

/** The fields `openssl sess_id -inform DER -text -noout` prints for `der`. */
export async function sessIdText(der: Buffer): Promise<Record<string, string>> {
  const child = spawn('openssl', ['sess_id', '-inform', 'DER', '-text', '-noout'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stdin.end(der);
  const [code] = (await once(child, 'exit')) as [number];
  if (code !== 0) throw new Error('openssl sess_id failed');
  const fields: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const m = /^\s{4}([A-Za-z][A-Za-z -]*?)\s*:\s?(.*)$/.exec(line);
    if (m) fields[m[1]!] = m[2]!.trim();
  }
  fields['has ticket'] = /TLS session ticket:\n\s+0000/.test(out) ? 'yes' : 'no';
  return fields;
}

/** The peer certificate `openssl sess_id -cert` writes, as PEM ('' when there is none). */
export async function sessIdCert(der: Buffer): Promise<string> {
  const child = spawn('openssl', ['sess_id', '-inform', 'DER', '-cert', '-outform', 'PEM'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stdin.end(der);
  await once(child, 'exit');
  const m = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(out);
  return m ? m[0] : '';
}
