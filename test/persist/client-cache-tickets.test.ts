/**
 * Clients that keep resuming (issue 24), in one process against real node:tls servers: a new
 * ClientSessionCache over the same store stands in for a new process (one connection each);
 * client-cache-tickets.slow.test.ts runs real processes.
 *
 * - TicketKeyRing renews every ticket it opens by default (`renewTickets: 'always'`): each
 *   resumption brings the next ticket. With 'retired' (Node's own behaviour) a resumption brings
 *   none, and a client that connects once per process runs dry every third time.
 * - `reuseTickets: true` offers a peer's last ticket again once its pool is empty, and only then;
 *   bounded: the record's own expiry (the cache's clock, not the store's TTL), the peer's key and
 *   seal (a record moved to another peer's key is refused), and a ticket the server refuses is
 *   dropped.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { ClientSessionCache, MemoryStore, SqliteStore, TicketKeyRing, type ClientSessionCacheOptions, type TicketRenewal } from '../../lib';
import { makePki, type Pki } from '../helpers/pki';
import { manualClock } from './helpers/clock';
import { close, listen, tls13Server } from './helpers/tls-peers';

let pki: Pki;
let dir: string;
beforeAll(() => {
  pki = makePki();
  dir = mkdtempSync(join(tmpdir(), 'tls-session-client-tickets-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(pki.dir, { recursive: true, force: true });
});

/** A MemoryStore that remembers every key written (set and setIfAbsent), so a test can reach the records. */
class KeyedStore extends MemoryStore {
  readonly keys = new Set<string>();
  override async set(key: string, value: Buffer, ttlSeconds: number): Promise<void> {
    this.keys.add(key);
    await super.set(key, value, ttlSeconds);
  }
  override async setIfAbsent(key: string, value: Buffer, ttlSeconds: number): Promise<boolean> {
    this.keys.add(key);
    return super.setIfAbsent(key, value, ttlSeconds);
  }
  /** The reuse slot of the one peer whose keys start with `prefix`. */
  reuseKey(prefix = 'client:'): string {
    const keys = [...this.keys].filter((key) => key.startsWith(prefix) && key.endsWith(':u'));
    expect(keys).toHaveLength(1);
    return keys[0]!;
  }
}

/** A TLS 1.3 node:tls server: with a TicketKeyRing (`renewTickets`), or plain (Node's own ticket key) for 'none'. */
async function server(renewTickets: TicketRenewal | 'none', extra: tls.TlsOptions = {}) {
  const tlsServer = tls13Server(pki, extra);
  const ring = renewTickets === 'none' ? undefined : new TicketKeyRing({ store: new MemoryStore(), renewTickets });
  await ring?.attach(tlsServer);
  const port = await listen(tlsServer);
  return {
    port,
    tlsServer,
    ring,
    async stop() {
      ring?.close();
      await close(tlsServer);
    },
  };
}

/** Connects through the cache, reads to the end (the tickets come after the handshake), waits for the cache's writes. */
async function visit(cache: ClientSessionCache, port: number, extra: tls.ConnectionOptions = {}): Promise<boolean> {
  const socket = await cache.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.ca, ...extra });
  const reused = socket.isSessionReused();
  socket.resume();
  await once(socket, 'close');
  await cache.flush();
  return reused;
}

/** `count` connections, each through a new cache over `store` (as `count` processes would make): 'full' / 'resumed'. */
async function inARow(count: number, store: SqliteStore | MemoryStore, port: number, options: Partial<ClientSessionCacheOptions> = {}) {
  const outcomes: string[] = [];
  let reusedTickets = 0;
  for (let i = 0; i < count; i++) {
    const cache = new ClientSessionCache({ store, ...options });
    outcomes.push((await visit(cache, port)) ? 'resumed' : 'full');
    await cache.close();
    reusedTickets += cache.stats().reusedTickets;
  }
  return { outcomes, reusedTickets };
}

const sqlite = (name: string) => new SqliteStore({ path: join(dir, `${name}.db`) });

test("renewTickets 'always' (the default): one connection per cache, ten in a row on one SQLite file, the first full and nine resumed", async () => {
  const s = await server('always');
  const store = sqlite('always');
  try {
    const { outcomes } = await inARow(10, store, s.port);
    expect(outcomes).toEqual(['full', ...Array<string>(9).fill('resumed')]);
    expect(s.ring!.stats(s.tlsServer).tickets.renewed.current).toBe(9);
  } finally {
    await store.close();
    await s.stop();
  }
});

test("renewTickets 'retired': full, resumed, resumed, full, …; with reuseTickets every connection after the first resumes", async () => {
  const s = await server('retired');
  const [plain, reusing] = [sqlite('retired'), sqlite('retired-reuse')];
  try {
    expect((await inARow(7, plain, s.port)).outcomes).toEqual(['full', 'resumed', 'resumed', 'full', 'resumed', 'resumed', 'full']);
    const reuse = await inARow(7, reusing, s.port, { reuseTickets: true });
    expect(reuse.outcomes).toEqual(['full', ...Array<string>(6).fill('resumed')]);
    // Two connections take the two tickets of the full handshake; the next four offer the second one again.
    expect(reuse.reusedTickets).toBe(4);
  } finally {
    await plain.close();
    await reusing.close();
    await s.stop();
  }
});

test('reuseTickets against a server that renews: the pool never runs dry, no ticket is offered twice', async () => {
  const s = await server('always');
  const store = new MemoryStore();
  try {
    const { outcomes, reusedTickets } = await inARow(6, store, s.port, { reuseTickets: true });
    expect(outcomes).toEqual(['full', ...Array<string>(5).fill('resumed')]);
    expect(reusedTickets).toBe(0);
  } finally {
    await s.stop();
  }
});

test("the reused ticket expires with its record (the cache's clock, maxAgeSeconds), whatever the store keeps", async () => {
  const s = await server('none'); // Node's own tickets: none after a resumption
  const clock = manualClock();
  const store = new KeyedStore(); // TTLs on the real clock: the store still holds the ticket below
  try {
    const cache = new ClientSessionCache({ store, now: clock.now, reuseTickets: true, maxAgeSeconds: 60 });
    expect([await visit(cache, s.port), await visit(cache, s.port), await visit(cache, s.port), await visit(cache, s.port)]).toEqual([
      false,
      true,
      true,
      true,
    ]);
    expect(cache.stats()).toMatchObject({ offered: 3, resumed: 3, reusedTickets: 1, expired: 0 });
    const reuseKey = store.reuseKey();
    clock.advance(61_000);
    expect(await store.get(reuseKey)).toBeDefined();
    // The server would still resume it (OpenSSL checks the ticket's 2-hour lifetime on the real clock): the cache does not offer it.
    expect(await visit(cache, s.port)).toBe(false);
    expect(cache.stats()).toMatchObject({ offered: 3, reusedTickets: 1, expired: 1 });
    expect(await store.get(reuseKey)).toBeUndefined();
    await cache.close();
  } finally {
    await s.stop();
  }
});

test('a reused ticket the server refuses costs one full handshake and is dropped; the new tickets are taken next', async () => {
  const s = await server('none');
  const store = new KeyedStore();
  try {
    const cache = new ClientSessionCache({ store, reuseTickets: true });
    for (const expected of [false, true, true, true]) expect(await visit(cache, s.port)).toBe(expected);
    const reuseKey = store.reuseKey();
    // The server forgets its ticket key (a restart without TicketKeyRing): it refuses the ticket offered again.
    s.tlsServer.setTicketKeys(randomBytes(48));
    expect(await visit(cache, s.port)).toBe(false);
    expect(cache.stats()).toMatchObject({ offered: 4, resumed: 3, notResumed: 1, reusedTickets: 2 });
    expect(await store.get(reuseKey)).toBeUndefined();
    // The full handshake brought two tickets: taken from the pool, not offered again.
    expect(await visit(cache, s.port)).toBe(true);
    expect(cache.stats()).toMatchObject({ offered: 5, resumed: 4, reusedTickets: 2 });
    await cache.close();
  } finally {
    await s.stop();
  }
});

test("never across peers: another peer's pool running dry offers nothing, and a reuse record moved to its key is refused", async () => {
  // Two servers sharing a ticket key: a ticket wrongly offered to the other WOULD resume there.
  const ticketKeys = randomBytes(48);
  const [a, b] = [await server('none', { ticketKeys }), await server('none', { ticketKeys })];
  const store = new KeyedStore();
  try {
    const cache = new ClientSessionCache({ store, reuseTickets: true, poolSize: 1 });
    // A: full (the pool keeps one ticket), resumed (taken: kept for reuse), resumed again (offered again).
    for (const expected of [false, true, true]) expect(await visit(cache, a.port)).toBe(expected);
    const aReuse = store.reuseKey();
    // B (another port, so another key): its pool is empty and it has no ticket of its own to reuse.
    expect(await visit(cache, b.port)).toBe(false);
    expect(await visit(cache, b.port)).toBe(true);
    const bReuse = [...store.keys].find((key) => key.endsWith(':u') && key !== aReuse)!;
    expect(bReuse).toBeDefined();
    expect(cache.stats()).toMatchObject({ offered: 3, resumed: 3, reusedTickets: 1, rejected: 0 });
    // A's ticket, moved under B's reuse slot: sealed under A's key, so refused, dropped, not offered.
    await store.set(bReuse, (await store.get(aReuse))!, 3600);
    expect(await visit(cache, b.port)).toBe(false);
    expect(cache.stats()).toMatchObject({ offered: 3, reusedTickets: 1, rejected: 1 });
    expect(await store.get(bReuse)).toBeUndefined();
    // A's own slot still serves A.
    expect(await visit(cache, a.port)).toBe(true);
    expect(cache.stats()).toMatchObject({ offered: 4, reusedTickets: 2 });
    await cache.close();
  } finally {
    await a.stop();
    await b.stop();
  }
});

test('reuseTickets and renewTickets: a malformed value is a typed error naming the option', () => {
  const store = new MemoryStore();
  for (const reuseTickets of ['yes', 1, null]) {
    expect(() => new ClientSessionCache({ store, reuseTickets } as unknown as ClientSessionCacheOptions)).toThrow(
      expect.objectContaining({
        code: 'ERR_INVALID_ARG_TYPE',
        message: expect.stringMatching(/^The "options\.reuseTickets" argument must be of type boolean\. Received /),
      }),
    );
  }
  for (const renewTickets of ['never', true, 2]) {
    expect(() => new TicketKeyRing({ store, renewTickets } as unknown as ConstructorParameters<typeof TicketKeyRing>[0])).toThrow(
      expect.objectContaining({
        code: 'ERR_INVALID_ARG_VALUE',
        message: expect.stringMatching(/^The "options\.renewTickets" argument must be 'always' or 'retired'\. Received /),
      }),
    );
  }
  expect(new TicketKeyRing({ store }).renewTickets).toBe('always');
  expect(new TicketKeyRing({ store, renewTickets: 'retired' }).renewTickets).toBe('retired');
});
