/**
 * One client process for client-cache-security.test.ts (defect 2): connects through
 * ClientSessionCache over a shared SQLite file WITHOUT `ca` (the process's default trust store,
 * which the test sets with NODE_EXTRA_CA_CERTS), reads to the end, waits for the cache's writes
 * and prints one JSON line: { authorized, reused } or { error: code }.
 * argv[2]: JSON { db, port, version }. Run with the fixtures' TypeScript hook (register-ts.js).
 */
import type * as tls from 'node:tls';
import { ClientSessionCache, SqliteStore } from '../../../lib';

async function main(): Promise<void> {
  const { db, port, version } = JSON.parse(process.argv[2]!) as { db: string; port: number; version: tls.SecureVersion };
  const store = new SqliteStore({ path: db });
  const cache = new ClientSessionCache({ store });
  let result: Record<string, unknown>;
  try {
    const socket = await cache.connect({ host: '127.0.0.1', port, servername: 'localhost', maxVersion: version });
    result = { authorized: socket.authorized, reused: socket.isSessionReused() };
    socket.resume();
    await new Promise((resolve) => socket.once('close', resolve));
  } catch (error) {
    result = { error: (error as { code?: string }).code ?? String(error) };
  }
  await cache.close();
  await store.close();
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

void main();
