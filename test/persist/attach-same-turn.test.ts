/**
 * attachSessionStore answers Node's resumeSession in the same turn when the store can
 * (SessionStore#getNow: MemoryStore, SqliteStore): Node then goes on with the handshake inside
 * its own read callback. Stores without getNow, and subclasses that override get() but not
 * getNow(), keep the asynchronous path (their get() is what is called). Real node:tls servers
 * and clients; the listener is driven through the server's own 'resumeSession' event.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as tls from 'node:tls';
import { attachSessionStore, MemoryStore, SqliteStore, type SessionStore } from '../../lib/persist';
import { makePki, Pki } from '../helpers/pki';
import { close, handshake, listen, tls12Server } from './helpers/tls-peers';

let pki: Pki;
let dir: string;
beforeAll(() => {
  pki = makePki();
  dir = mkdtempSync(join(tmpdir(), 'tls-session-same-turn-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Answer {
  /** The callback ran before server.emit() returned. */
  sameTurn: boolean;
  session: Buffer | null | undefined;
}

/** Emits 'resumeSession' on the server as Node does, and reports when and how it was answered. */
function ask(server: tls.Server, sessionId: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let returned = false;
    server.emit('resumeSession', sessionId, (error: Error | null, session?: Buffer | null) => {
      if (error) reject(error);
      else resolve({ sameTurn: !returned, session });
    });
    returned = true;
  });
}

/** A server with the store attached, after one full TLS 1.2 handshake and its resumption (the store is ready and holds that session). */
async function withServer(
  store: SessionStore,
  run: (server: tls.Server, sessionId: Buffer, errors: Error[], stats: () => { hits: number; misses: number }) => Promise<void>,
): Promise<void> {
  const server = tls12Server(pki);
  const errors: Error[] = [];
  const handle = attachSessionStore(server, { store, onError: (error) => errors.push(error) });
  let sessionId: Buffer | undefined;
  server.on('newSession', (id: Buffer) => (sessionId ??= Buffer.from(id)));
  const port = await listen(server);
  try {
    const first = await handshake(pki, port);
    // The record is written behind the handshake (a resumption racing the write is a full one).
    let reused = false;
    for (let attempt = 0; attempt < 5 && !reused; attempt++) reused = (await handshake(pki, port, first.session)).reused;
    expect(reused).toBe(true);
    await run(server, sessionId!, errors, () => handle.stats());
  } finally {
    handle.detach();
    await close(server);
    await store.close();
  }
}

const stores: Array<[string, () => SessionStore]> = [
  ['MemoryStore', () => new MemoryStore()],
  ['SqliteStore', () => new SqliteStore({ path: join(dir, `${randomBytes(4).toString('hex')}.db`) })],
];

describe.each(stores)('%s (getNow)', (_name, make) => {
  test('a hit and a miss are answered before resumeSession returns', async () => {
    await withServer(make(), async (server, sessionId, errors, stats) => {
      const before = stats();
      const hit = await ask(server, sessionId);
      expect(hit.sameTurn).toBe(true);
      expect(Buffer.isBuffer(hit.session)).toBe(true);
      const miss = await ask(server, randomBytes(32));
      expect(miss).toEqual({ sameTurn: true, session: null });
      expect(stats().hits - before.hits).toBe(1);
      expect(stats().misses - before.misses).toBe(1);
      expect(errors).toEqual([]);
    });
  });
});

test('a store without getNow is answered one promise later, through its get()', async () => {
  const inner = new MemoryStore();
  let gets = 0;
  const store: SessionStore = {
    get: (key) => {
      gets += 1;
      return inner.get(key);
    },
    set: (key, value, ttl) => inner.set(key, value, ttl),
    delete: (key) => inner.delete(key),
    close: () => inner.close(),
    settlesWithinMs: 0,
  };
  await withServer(store, async (server, sessionId) => {
    const before = gets;
    const hit = await ask(server, sessionId);
    expect(hit.sameTurn).toBe(false);
    expect(Buffer.isBuffer(hit.session)).toBe(true);
    expect(gets - before).toBe(1);
  });
});

test('a subclass that overrides get() but inherits getNow() is called through its get()', async () => {
  class Filtering extends MemoryStore {
    gets = 0;
    refusing = false;
    override async get(key: string): Promise<Buffer | undefined> {
      this.gets += 1;
      return this.refusing ? undefined : super.get(key); // getNow would have answered a hit
    }
  }
  const store = new Filtering();
  await withServer(store, async (server, sessionId) => {
    store.refusing = true;
    const before = store.gets;
    const answer = await ask(server, sessionId);
    expect(answer).toEqual({ sameTurn: false, session: null });
    expect(store.gets - before).toBe(1);
  });
});

test('getNow throwing: a miss in the same turn, counted and reported to onError', async () => {
  class Failing extends MemoryStore {
    failing = false;
    override getNow(key: string): Buffer | undefined {
      if (this.failing) throw new Error('disk on fire');
      return super.getNow(key);
    }
    override async get(key: string): Promise<Buffer | undefined> {
      return this.getNow(key);
    }
  }
  const store = new Failing();
  await withServer(store, async (server, sessionId, errors, stats) => {
    store.failing = true;
    const before = stats().misses;
    const answer = await ask(server, sessionId);
    expect(answer).toEqual({ sameTurn: true, session: null });
    expect(stats().misses - before).toBe(1);
    expect(errors.map((e) => e.message)).toEqual(['disk on fire']);
  });
});
