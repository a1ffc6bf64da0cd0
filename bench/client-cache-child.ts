/**
 * One fresh client process for bench/client-cache.ts: one handshake, measured from inside.
 * argv[2]: JSON { mode: 'plain' | 'cache', db?, port, ca (path), version }.
 * The TCP connection is made first and left out of the figures; measured from the call
 * (cache.connect, or tls.connect for 'plain') to 'secureConnect': wall time, this process's CPU
 * (user + system) and the bytes on the wire. Prints one JSON line.
 */
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { once } from 'node:events';
import { ClientSessionCache, SqliteStore } from '../lib';

interface ChildConfig {
  mode: 'plain' | 'cache';
  db?: string;
  port: number;
  ca: string;
  version: 'TLSv1.2' | 'TLSv1.3';
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2]!) as ChildConfig;
  const ca = readFileSync(config.ca);
  const store = config.mode === 'cache' ? new SqliteStore({ path: config.db! }) : undefined;
  const cache = store ? new ClientSessionCache({ store }) : undefined;
  // Warm what every process pays once whatever the handshake (the TLS module, a context's CA parse).
  tls.createSecureContext({ ca });
  const raw = net.connect(config.port, '127.0.0.1');
  await once(raw, 'connect');
  const options: tls.ConnectionOptions = {
    socket: raw,
    host: '127.0.0.1',
    port: config.port,
    servername: 'localhost',
    ca,
    minVersion: config.version,
    maxVersion: config.version,
  };
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const socket = cache
    ? await cache.connect(options)
    : await new Promise<tls.TLSSocket>((resolve, reject) => {
        const s = tls.connect(options, () => resolve(s));
        s.once('error', reject);
      });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const cpu = process.cpuUsage(cpu0);
  const bytes = { out: raw.bytesWritten, in: raw.bytesRead };
  const reused = socket.isSessionReused();
  socket.resume();
  // write, not end: a half-closed connection may be dropped by an HTTP server before it answers
  socket.write('GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
  await once(socket, 'close');
  await cache?.close();
  await store?.close();
  process.stdout.write(`${JSON.stringify({ ms, cpuUs: cpu.user + cpu.system, bytes, reused, stats: cache?.stats() })}\n`);
}

main().catch((error: Error) => {
  process.stderr.write(`${error.stack ?? error.message}\n`);
  process.exitCode = 1;
});
