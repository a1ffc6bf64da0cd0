/**
 * A command-line client that keeps its TLS sessions between runs (ClientSessionCache over SQLite):
 *
 *   node dist/examples/client-cache.js https://localhost:8443/ --ca ca.crt
 *
 * The first run does a full handshake; a second run, a new process, resumes. Sessions live in
 * --store FILE (default $XDG_CACHE_HOME/tls-session/client-sessions.db, else ~/.cache/…), keyed by
 * the server and this client's TLS settings; TLS 1.3 tickets are used once each.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import * as https from 'node:https';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { ClientSessionCache, SqliteStore } from '../lib';

const USAGE = 'usage: client-cache URL [--ca FILE] [--store FILE]';

function defaultStorePath(): string {
  const cacheHome = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(cacheHome, 'tls-session', 'client-sessions.db');
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { ca: { type: 'string' }, store: { type: 'string' } },
  });
  const url = positionals.length === 1 ? new URL(positionals[0]!) : undefined;
  if (!url || url.protocol !== 'https:') throw new Error(USAGE);
  const storePath = values.store ?? defaultStorePath();
  mkdirSync(dirname(storePath), { recursive: true, mode: 0o700 });

  const store = new SqliteStore({ path: storePath });
  const cache = new ClientSessionCache({ store });
  const agent = cache.createHttpsAgent({ ca: values.ca ? readFileSync(values.ca) : undefined });
  try {
    const { status, protocol, reused } = await new Promise<{ status: number; protocol: string; reused: boolean }>((resolve, reject) => {
      https
        .get(url, { agent }, (response) => {
          const socket = response.socket as import('node:tls').TLSSocket;
          response.resume();
          response.on('end', () =>
            resolve({ status: response.statusCode ?? 0, protocol: socket.getProtocol() ?? '?', reused: socket.isSessionReused() }),
          );
        })
        .on('error', reject);
    });
    console.log(`GET ${url.href} → ${status}, ${protocol}, ${reused ? 'resumed' : 'full handshake'}`);
  } finally {
    agent.destroy();
    await cache.close(); // waits until the sessions this run received are stored
    await store.close();
  }
}

main().catch((error: Error & { code?: string }) => {
  console.error(`client-cache: ${error.code ? `${error.code} ` : ''}${error.message}`);
  process.exitCode = 1;
});
