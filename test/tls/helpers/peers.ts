/**
 * Peers and plumbing for the TLS engine tests: engine servers/clients over TCP, node:tls peers,
 * and the openssl CLI (s_server, s_client). Loopback only; every child process is reaped.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import * as tls from 'node:tls';
import { TlsConnection, TlsContext, type Session, type ConnectOptions } from '../../../lib';

import { freePort } from '../../helpers/free-port';

/** Resolves when `connection` has closed; rejects with its error, if any. */
export function closed(stream: NodeJS.EventEmitter & { closed?: boolean; errored?: Error | null }): Promise<void> {
  if (stream.closed) return stream.errored ? Promise.reject(stream.errored) : Promise.resolve();
  return new Promise((resolve, reject) => {
    let error: Error | undefined;
    stream.on('error', (e: Error) => {
      error ??= e;
    });
    stream.once('close', () => (error ? reject(error) : resolve()));
  });
}

/** Collects everything a readable yields until it ends. */
export async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks);
}

export interface EngineServer {
  port: number;
  /** Every accepted connection, in order. */
  connections: TlsConnection[];
  /** Errors of accepted connections. */
  errors: Error[];
  close(): Promise<void>;
}

/** A TCP server whose connections are engine TLS servers: each says `hello\n` and ends. */
export async function startEngineServer(ctx: TlsContext, greeting = 'hello\n'): Promise<EngineServer> {
  const connections: TlsConnection[] = [];
  const errors: Error[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    const conn = TlsConnection.accept(ctx, socket);
    connections.push(conn);
    conn.on('error', (e) => errors.push(e));
    conn.on('secure', () => {
      conn.end(greeting);
    });
    conn.resume();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as { port: number }).port,
    connections,
    errors,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface ClientRun {
  connection: TlsConnection;
  /** Sessions from the 'session' event (owned: the caller frees them). */
  sessions: Session[];
  received: Buffer;
  reused: boolean;
  protocol: string | null;
}

/** Connects an engine client, reads until the server ends, and collects its sessions. */
export async function runEngineClient(ctx: TlsContext, port: number, options: ConnectOptions = {}): Promise<ClientRun> {
  const socket = netConnect(port, '127.0.0.1');
  const connection = TlsConnection.connect(ctx, socket, { servername: 'localhost', ...options });
  const sessions: Session[] = [];
  connection.on('session', (s) => sessions.push(s));
  const done = closed(connection);
  const received = await readAll(connection);
  await done;
  return { connection, sessions, received, reused: connection.isSessionReused(), protocol: connection.getProtocol() };
}

export interface NodeClientOptions {
  ca: Buffer;
  version: tls.SecureVersion;
  /** A session to offer (what tls.connect takes). */
  session?: Buffer;
  /** With no 'session' event, take the SSL's session at the first data (a TLS 1.2 renewal raises no event). */
  sessionAtData?: boolean;
}

export interface NodeClientRun {
  reused: boolean;
  /** The last 'session' event's session (a Node server may send TLS 1.3 tickets after its data), if any. */
  session: Buffer | undefined;
  received: Buffer;
}

/** Connects a node:tls client (servername 'localhost') pinned to one version and reads until the server ends. */
export async function runNodeClient(port: number, options: NodeClientOptions): Promise<NodeClientRun> {
  const { ca, version, session, sessionAtData = false } = options;
  const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca, minVersion: version, maxVersion: version, session });
  let fromEvent: Buffer | undefined;
  let atData: Buffer | undefined;
  const chunks: Buffer[] = [];
  socket.on('session', (s: Buffer) => {
    fromEvent = s;
  });
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    if (sessionAtData) atData ??= socket.getSession();
  });
  await once(socket, 'secureConnect');
  const reused = socket.isSessionReused();
  if (!socket.destroyed) await once(socket, 'close');
  return { reused, session: fromEvent ?? atData, received: Buffer.concat(chunks) };
}

/** `openssl s_client` arguments for a verified connection to a loopback engine server that reads until the server ends, then `extra`. */
export function sClientArgs(port: number, caCertPath: string, ...extra: string[]): string[] {
  return ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', caCertPath, '-servername', 'localhost', '-ign_eof', ...extra];
}

/** Runs a child process to completion, collecting its output; never leaves it behind. */
export function run(command: string, args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    // A peer that never closes must not outlive the test (jest's timeout fails it first).
    const reaper = setTimeout(() => child.kill('SIGKILL'), 120_000);
    reaper.unref();
    child.on('exit', () => clearTimeout(reaper));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

export interface SServer {
  port: number;
  child: ChildProcess;
  output(): string;
  /** Resolves once `pattern` occurs `count` times in the output (s_server flushes at its own pace). */
  waitFor(pattern: RegExp, count: number): Promise<void>;
  stop(): Promise<void>;
}

/** `openssl s_server` on a free loopback port (retried on EADDRINUSE), ready once it printed ACCEPT. */
export async function startSServer(args: string[]): Promise<SServer> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    // stdbuf: s_server writes through stdio, which a pipe would block-buffer.
    const child = spawn('stdbuf', ['-oL', '-eL', 'openssl', 's_server', '-accept', `127.0.0.1:${port}`, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
    });
    child.stderr!.on('data', (d) => {
      out += d;
    });
    const ready = await new Promise<boolean>((resolve) => {
      const check = () => {
        if (out.includes('ACCEPT')) resolve(true);
      };
      child.stdout!.on('data', check);
      child.on('exit', () => resolve(false));
    });
    if (ready) {
      return {
        port,
        child,
        output: () => out,
        waitFor: (pattern, count) =>
          new Promise<void>((resolve, reject) => {
            const global = new RegExp(pattern.source, pattern.flags.includes('g') ? pattern.flags : `${pattern.flags}g`);
            const check = () => {
              if ((out.match(global)?.length ?? 0) >= count) {
                child.stdout!.off('data', check);
                resolve();
              }
            };
            child.stdout!.on('data', check);
            child.once('exit', () => reject(new Error(`s_server exited before printing ${pattern} ${count} time(s): ${out}`)));
            check();
          }),
        stop: async () => {
          if (child.exitCode === null && child.signalCode === null) {
            child.kill('SIGTERM');
            await once(child, 'exit');
          }
        },
      };
    }
    if (attempt >= 4 || !/in use|EADDRINUSE|bind/i.test(out)) throw new Error(`openssl s_server did not start: ${out}`);
  }
}

/** DER session bytes as the PEM `openssl s_client -sess_in` reads. */
export function sessionPem(der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN SSL SESSION PARAMETERS-----\n${b64}\n-----END SSL SESSION PARAMETERS-----\n`;
}

/** The DER inside a `-sess_out` PEM file. */
export function pemToDer(pem: string): Buffer {
  const body = pem.replace(/-----(BEGIN|END) SSL SESSION PARAMETERS-----/g, '').replace(/\s+/g, '');
  return Buffer.from(body, 'base64');
}
