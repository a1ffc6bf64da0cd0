/**
 * The handshake path of attachSessionStore, made cheap (issue 14), on real TLS servers and
 * clients: the newSession callback does not wait for the store write (a resumption racing the
 * write misses), TLS 1.3 sessions and sealed records are not decoded by tls-session (the ledger
 * counts every SSL_SESSION reference it takes), lookup 'issued' keeps TLS 1.3's random legacy
 * IDs away from the store, SQLite runs without fsync, the sealer's IVs stay unique past its pool,
 * and the DER header reader agrees with OpenSSL's decoding.
 */
import { constants, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { ledger, Session } from '../../lib';
import { attachSessionStore, MemoryStore, Sealer, SqliteStore } from '../../lib/persist';
import { readSessionHeader } from '../../lib/session-header';
import { makePki, Pki } from '../helpers/pki';
import { close, listen, tls12Server, tls13Server } from './helpers/tls-peers';
import { RecordingStore } from './helpers/recording-store';

let pki: Pki;
const secret = randomBytes(32);

beforeAll(() => {
  pki = makePki();
});

/** A MemoryStore whose writes wait until release() and that counts calls. */
class GatedStore extends MemoryStore {
  sets = 0;
  gets = 0;
  #open!: () => void;
  readonly #gate = new Promise<void>((resolve) => (this.#open = resolve));
  release(): void {
    this.#open();
  }
  override async set(key: string, value: Buffer, ttlSeconds: number): Promise<void> {
    this.sets += 1;
    await this.#gate;
    await super.set(key, value, ttlSeconds);
  }
  override async get(key: string): Promise<Buffer | undefined> {
    this.gets += 1;
    return super.get(key);
  }
}

/** A MemoryStore that counts lookups. */
class CountingStore extends MemoryStore {
  gets = 0;
  override async get(key: string): Promise<Buffer | undefined> {
    this.gets += 1;
    return super.get(key);
  }
}

interface RawResult {
  reused: boolean;
  protocol: string | null;
  /** Node's own client session (not converted: converting would take SSL_SESSION references here). */
  session: Buffer | undefined;
}

/** A client connection read until the server closes; `session` is Node's client session as Node gave it. */
function connect(port: number, options: tls.ConnectionOptions = {}): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    let session: Buffer | undefined;
    let reused = false;
    let protocol: string | null = null;
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.ca, ...options });
    socket.once('secureConnect', () => {
      reused = socket.isSessionReused();
      protocol = socket.getProtocol();
    });
    socket.on('session', (s: Buffer) => (session = s));
    socket.on('data', () => undefined);
    socket.once('error', reject);
    socket.once('close', () => resolve({ reused, protocol, session }));
  });
}

const tls12Client = { maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET } as const;

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}

test('write-behind: the handshake completes while the store write is still pending; a resumption racing it misses, a later one resumes', async () => {
  const store = new GatedStore();
  const server = tls12Server(pki);
  // A budget far longer than the test: before write-behind, Node's Finished waited for the write.
  const handle = attachSessionStore(server, { store, secret, budgetMs: 600_000 });
  const port = await listen(server);
  try {
    const first = await connect(port, tls12Client);
    expect(first.reused).toBe(false);
    expect(first.session).toBeDefined();
    await until(() => store.sets === 1);
    expect(handle.stats().stored).toBe(0); // still pending

    const racing = await connect(port, { ...tls12Client, session: first.session });
    expect(racing.reused).toBe(false);
    expect(handle.stats().misses).toBe(1);

    store.release();
    await until(() => handle.stats().stored >= 1);
    const later = await connect(port, { ...tls12Client, session: first.session });
    expect(later.reused).toBe(true);
    expect(handle.stats().hits).toBe(1);
  } finally {
    store.release();
    handle.detach();
    await close(server);
  }
});

test('TLS 1.3 sessions are skipped without being decoded (no SSL_SESSION reference taken)', async () => {
  const store = new MemoryStore();
  const server = tls13Server(pki);
  const handle = attachSessionStore(server, { store, secret });
  const port = await listen(server);
  try {
    await connect(port); // warm-up: loads whatever is loaded lazily
    const before = ledger().acquired;
    const result = await connect(port);
    expect(result.protocol).toBe('TLSv1.3');
    expect(ledger().acquired).toBe(before);
    expect(handle.stats().skippedTls13).toBeGreaterThanOrEqual(2);
    expect(handle.stats().stored).toBe(0);
  } finally {
    handle.detach();
    await close(server);
  }
});

test('a sealed record is resumed without tls-session decoding it (Node decodes it once)', async () => {
  const store = new MemoryStore();
  const server = tls12Server(pki);
  const handle = attachSessionStore(server, { store, secret });
  const port = await listen(server);
  try {
    const first = await connect(port, tls12Client);
    await until(() => handle.stats().stored === 1);
    const before = ledger().acquired;
    const second = await connect(port, { ...tls12Client, session: first.session });
    expect(second.reused).toBe(true);
    expect(handle.stats().hits).toBe(1);
    expect(ledger().acquired).toBe(before);
  } finally {
    handle.detach();
    await close(server);
  }
});

test('a record fetched byte for byte as this server accepted it before is not opened again; a changed one is, and is refused', async () => {
  const store = new RecordingStore();
  const server = tls12Server(pki);
  const handle = attachSessionStore(server, { store, secret });
  const uncached = tls12Server(pki);
  const uncachedHandle = attachSessionStore(uncached, { store, secret, recordCacheSize: 0 });
  const [port, uncachedPort] = [await listen(server), await listen(uncached)];
  try {
    const first = await connect(port, tls12Client);
    await until(() => handle.stats().stored === 1);
    expect((await connect(port, { ...tls12Client, session: first.session })).reused).toBe(true);
    expect(handle.stats()).toMatchObject({ hits: 1, recordCacheHits: 0 }); // opened and checked once
    expect((await connect(port, { ...tls12Client, session: first.session })).reused).toBe(true);
    expect(handle.stats()).toMatchObject({ hits: 2, recordCacheHits: 1 });
    // Another server without the cache opens the same record.
    expect((await connect(uncachedPort, { ...tls12Client, session: first.session })).reused).toBe(true);
    expect(uncachedHandle.stats()).toMatchObject({ hits: 1, recordCacheHits: 0 });
    // Tampered in the store: the bytes differ from what this server knows, so the full path refuses it.
    const key = store.keys[0]!;
    const record = Buffer.from((await store.get(key))!);
    record[record.length - 20] ^= 0x01;
    await store.set(key, record, 300);
    expect((await connect(port, { ...tls12Client, session: first.session })).reused).toBe(false);
    expect(handle.stats()).toMatchObject({ hits: 2, recordCacheHits: 1, rejected: 1 });
  } finally {
    handle.detach();
    uncachedHandle.detach();
    await close(server);
    await close(uncached);
  }
});

test("lookup 'issued': a TLS 1.3 handshake's legacy ID never reaches the store; this server's TLS 1.2 sessions still resume", async () => {
  const store = new CountingStore();
  const server = tls13Server(pki);
  const handle = attachSessionStore(server, { store, secret, lookup: 'issued' });
  const port = await listen(server);
  try {
    const modern = await connect(port);
    expect(modern.protocol).toBe('TLSv1.3');
    expect(store.gets).toBe(0);
    expect(handle.stats().filtered).toBeGreaterThanOrEqual(1);

    const first = await connect(port, tls12Client);
    await until(() => handle.stats().stored === 1);
    const second = await connect(port, { ...tls12Client, session: first.session });
    expect(second.reused).toBe(true);
    expect(store.gets).toBe(1);
  } finally {
    handle.detach();
    await close(server);
  }
});

test("lookup 'all' (the default) still asks the store about every ID, as before", async () => {
  const store = new CountingStore();
  const server = tls13Server(pki);
  const handle = attachSessionStore(server, { store, secret });
  const port = await listen(server);
  try {
    await connect(port);
    expect(store.gets).toBe(1);
    expect(handle.stats().filtered).toBe(0);
    expect(() => attachSessionStore(tls13Server(pki), { store, lookup: 'some' as 'all' })).toThrow(/options.lookup/);
  } finally {
    handle.detach();
    await close(server);
  }
});

test("SqliteStore runs without fsync by default (synchronous OFF, WAL), 'normal' on request", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tls-session-sync-'));
  try {
    const store = new SqliteStore({ path: join(dir, 'a.db') });
    expect(store.settings()).toEqual({ journalMode: 'wal', synchronous: 0, walAutocheckpoint: 1000, checkpoint: 'inline' });
    await store.close();
    const normal = new SqliteStore({ path: join(dir, 'b.db'), synchronous: 'normal' });
    expect(normal.settings().synchronous).toBe(1);
    await normal.close();
    expect(() => new SqliteStore({ path: join(dir, 'c.db'), synchronous: 'full' as 'off' })).toThrow(/synchronous/);
    expect(() => new SqliteStore({ path: join(dir, 'c.db'), checkpoint: 'never' as 'inline' })).toThrow(/checkpoint/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("SqliteStore checkpoint 'thread': the event loop's connection never checkpoints, the thread does", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tls-session-ckpt-'));
  const path = join(dir, 'a.db');
  const store = new SqliteStore({ path, checkpoint: 'thread', checkpointIntervalMs: 20 });
  try {
    expect(store.settings()).toMatchObject({ walAutocheckpoint: 0, checkpoint: 'thread' });
    const value = randomBytes(200);
    // Far more than 1000 pages of WAL: with auto-checkpoint on this connection, it would checkpoint inline.
    for (let i = 0; i < 3000; i++) await store.set(`session:${i}`, value, 300);
    // Only the thread checkpoints (this connection's auto-checkpoint is 0): it copies the WAL into the main file.
    while (statSync(path).size < 3000 * 200) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(store.settings().walAutocheckpoint).toBe(0);
    expect(await store.get('session:2999')).toEqual(value);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the sealer keeps IVs unique across refills of its pool, and every record opens', () => {
  const sealer = new Sealer(secret, 'session-record');
  const ivs = new Set<string>();
  for (let i = 0; i < 700; i++) {
    const plaintext = randomBytes(1 + (i % 90));
    const sealed = sealer.seal(`session:${i}`, plaintext);
    const idLength = sealed[4]!;
    ivs.add(sealed.subarray(5 + idLength, 5 + idLength + 12).toString('hex'));
    expect(sealer.open(`session:${i}`, sealed)).toEqual(plaintext);
  }
  expect(ivs.size).toBe(700);
  const other = new Sealer(
    [
      { id: 'next', key: randomBytes(32) },
      { id: 'default', key: secret },
    ],
    'session-record',
  );
  expect(other.open('k', sealer.seal('k', Buffer.from('x')))).toEqual(Buffer.from('x'));
});

test("the DER header reader agrees with OpenSSL's decoding of real sessions, and refuses other bytes", async () => {
  const sessions: Buffer[] = [];
  for (const server of [tls12Server(pki), tls13Server(pki)]) {
    server.on('newSession', (_id: Buffer, data: Buffer, done: () => void) => {
      sessions.push(data);
      done();
    });
    const port = await listen(server);
    await connect(port);
    await close(server);
  }
  expect(sessions.length).toBeGreaterThanOrEqual(3);
  for (const der of sessions) {
    const header = readSessionHeader(der)!;
    using session = Session.fromDER(der);
    expect(header.protocolVersion === 0x0304 ? 'TLSv1.3' : 'TLSv1.2').toBe(session.protocol);
    expect(header.sessionId).toEqual(session.id);
    expect(header.sessionIdContext).toEqual(session.idContext);
    expect(header.hostname?.toString('utf8')).toBe(session.hostname);
    expect((header.time + header.timeout) * 1000).toBe(session.expiresAt.getTime());
  }
  for (let i = 0; i < 2000; i++) {
    const bytes = randomBytes(i % 200);
    expect(() => readSessionHeader(bytes)).not.toThrow();
  }
  expect(readSessionHeader(sessions[0]!.subarray(0, 20))).toBeUndefined();
  expect(readSessionHeader(Buffer.alloc(0))).toBeUndefined();
});
