/**
 * The store path alone, in one process: CPU per newSession, per resumeSession hit and per TLS 1.3
 * legacy-ID miss, through a bare Map and through attachSessionStore on each store. The listeners
 * are called directly with a real session (issued once by a real handshake), so nothing but the
 * path is measured: no OpenSSL handshake, no sockets, no scheduling by other processes beyond
 * what CPU time includes. Alternating rounds, medians. Sent to the parent as { type: 'path', rows }.
 */
import { constants, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { attachSessionStore, MemoryStore, RedisStore, SessionStore, SessionStoreHandle, SqliteStore } from '../../lib/persist';

export interface PathRow {
  variant: string;
  /** Median CPU µs per call over the rounds. */
  newSessionMicros: number;
  resumeHitMicros: number;
  legacyMissMicros: number;
}

interface Variant {
  name: string;
  store?: () => SessionStore;
  sealed?: boolean;
  lookup?: 'all' | 'issued';
}

type NewSessionListener = (id: Buffer, data: Buffer, done: () => void) => void;
type ResumeListener = (id: Buffer, done: (err: Error | null, data: Buffer | null) => void) => void;

const ROUNDS = 3;
const CALLS = Number(process.env.BENCH_PATH_CALLS ?? 4000);
const dir = mkdtempSync(join(tmpdir(), 'tls-session-path-'));
const secret = randomBytes(32);
const { keyFile, certFile, redisUrl } = JSON.parse(process.env.BENCH_PATH ?? '{}') as {
  keyFile: string;
  certFile: string;
  redisUrl?: string;
};
const pem = { key: readFileSync(keyFile), cert: readFileSync(certFile) };
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function handshake(port: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    let session: Buffer | undefined;
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ca: pem.cert,
      maxVersion: 'TLSv1.2',
      secureOptions: constants.SSL_OP_NO_TICKET,
    });
    socket.on('session', (s: Buffer) => (session = s));
    socket.on('data', () => undefined);
    socket.once('error', reject);
    socket.once('close', () => resolve(session));
  });
}

async function measure(calls: number, once: (i: number) => Promise<void> | void): Promise<number> {
  const before = process.cpuUsage();
  for (let i = 0; i < calls; i++) {
    await once(i);
    if (i % 8 === 7) await turn(); // let write-behind flush as it would between handshakes
  }
  await turn();
  await turn();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / calls;
}

async function runVariant(variant: Variant, index: number): Promise<{ newSession: number; hit: number; miss: number }> {
  const server = tls.createServer({ ...pem, maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET }, (s) => s.end());
  let handle: SessionStoreHandle | undefined;
  let store: SessionStore | undefined;
  if (variant.store) {
    store = variant.store();
    handle = attachSessionStore(server, {
      store,
      secret: variant.sealed ? secret : undefined,
      lookup: variant.lookup,
      scope: `path-${index}`,
    });
    await store.ready?.();
  } else {
    const sessions = new Map<string, Buffer>();
    server.on('newSession', (id: Buffer, data: Buffer, done: () => void) => {
      sessions.set(id.toString('hex'), data);
      done();
    });
    server.on('resumeSession', (id: Buffer, done: (err: Error | null, data: Buffer | null) => void) => {
      done(null, sessions.get(id.toString('hex')) ?? null);
    });
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  // One real handshake issues a real session (with this server's session ID context) and stores it.
  let issued: { id: Buffer; data: Buffer } | undefined;
  server.prependListener('newSession', (id: Buffer, data: Buffer) => (issued = { id, data }));
  await handshake((server.address() as { port: number }).port);
  while (handle && handle.stats().stored < 1) await turn();
  const onNew = server.listeners('newSession').find((l) => l.length === 3) as NewSessionListener;
  const onResume = server.listeners('resumeSession')[0] as ResumeListener;
  const { id, data } = issued!;
  const newIds = Array.from({ length: CALLS }, () => randomBytes(32));
  const missIds = Array.from({ length: CALLS }, () => randomBytes(32));
  const newSession = await measure(CALLS, (i) => onNew(newIds[i]!, Buffer.from(data), () => undefined));
  const lookup = (sessionId: Buffer): Promise<void> => new Promise((resolve) => onResume(sessionId, () => resolve()));
  const hit = await measure(CALLS, () => lookup(id));
  const miss = await measure(CALLS, (i) => lookup(missIds[i]!));
  handle?.detach();
  await store?.close();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return { newSession, hit, miss };
}

async function main(): Promise<void> {
  const variants: Variant[] = [
    { name: 'Map' },
    { name: 'memory', store: () => new MemoryStore({ maxEntries: 100_000 }) },
    { name: 'memory+seal', store: () => new MemoryStore({ maxEntries: 100_000 }), sealed: true },
    { name: 'sqlite', store: () => new SqliteStore({ path: join(dir, `${Math.random()}.db`) }) },
    { name: 'sqlite+seal', store: () => new SqliteStore({ path: join(dir, `${Math.random()}.db`) }), sealed: true },
  ];
  if (redisUrl) {
    variants.push(
      { name: 'redis+seal', store: () => new RedisStore({ url: redisUrl, keyPrefix: `path:${Math.random()}:` }), sealed: true },
      {
        name: 'redis+seal lookup=issued',
        store: () => new RedisStore({ url: redisUrl, keyPrefix: `path:${Math.random()}:` }),
        sealed: true,
        lookup: 'issued',
      },
    );
  }
  const samples = new Map<string, { newSession: number[]; hit: number[]; miss: number[] }>();
  for (const v of variants) samples.set(v.name, { newSession: [], hit: [], miss: [] });
  // Warm-up round (JIT), then alternating rounds.
  for (const [index, v] of variants.entries()) await runVariant(v, index);
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? variants : [...variants].reverse();
    for (const [index, v] of order.entries()) {
      const r = await runVariant(v, index);
      const s = samples.get(v.name)!;
      s.newSession.push(r.newSession);
      s.hit.push(r.hit);
      s.miss.push(r.miss);
    }
  }
  const median = (values: number[]): number => [...values].sort((a, b) => a - b)[values.length >> 1]!;
  const rows: PathRow[] = variants.map((v) => {
    const s = samples.get(v.name)!;
    return { variant: v.name, newSessionMicros: median(s.newSession), resumeHitMicros: median(s.hit), legacyMissMicros: median(s.miss) };
  });
  process.send?.({ type: 'path', rows });
}

main()
  .catch((error: Error) => process.send?.({ type: 'error', message: error.message }))
  .finally(() => {
    rmSync(dir, { recursive: true, force: true });
    process.disconnect?.();
  });
