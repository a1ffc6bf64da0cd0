/**
 * TicketKeyRing: servers that share a store share ticket keys, so a TLS 1.3 (or TLS 1.2 ticket)
 * session from one resumes on another; keys rotate together at epoch boundaries.
 */
import { randomBytes } from 'node:crypto';
import { makePki, Pki } from '../helpers/pki';
import { MemoryStore, SessionStore, TicketKeyRing } from '../../lib/persist';
import { close, handshake, listen, tls13Server } from './helpers/tls-peers';
import * as tls from 'node:tls';

let pki: Pki;
beforeAll(() => {
  pki = makePki();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Two "fleet members": each with its own ring instance (as in two processes), one shared store. */
async function fleet(store: SessionStore, make: () => tls.Server, ringOptions: { rotationSeconds?: number; secret?: Buffer } = {}) {
  const servers = [make(), make()];
  const rings = servers.map(() => new TicketKeyRing({ store, ...ringOptions }));
  for (let i = 0; i < 2; i++) await rings[i]!.attach(servers[i]!);
  const ports = [await listen(servers[0]!), await listen(servers[1]!)];
  return {
    servers,
    rings,
    ports,
    async stop() {
      for (const ring of rings) ring.close();
      for (const server of servers) await close(server);
    },
  };
}

test('a TLS 1.3 ticket from server A resumes on server B', async () => {
  const store = new MemoryStore();
  const f = await fleet(store, () => tls13Server(pki), { secret: randomBytes(32) });
  try {
    expect(f.servers[0]!.getTicketKeys()).toEqual(f.servers[1]!.getTicketKeys());
    const first = await handshake(pki, f.ports[0]!);
    expect(first.protocol).toBe('TLSv1.3');
    const onB = await handshake(pki, f.ports[1]!, first.session);
    expect(onB.reused).toBe(true);
    expect(f.rings[0]!.stats().created + f.rings[1]!.stats().created).toBe(1);
    expect(f.rings[1]!.stats().fetched).toBe(1);
  } finally {
    await f.stop();
  }
});

test('a TLS 1.2 ticket from server A resumes on server B', async () => {
  const f = await fleet(new MemoryStore(), () =>
    tls.createServer({ key: pki.serverKey, cert: pki.serverCert, maxVersion: 'TLSv1.2' }, (s) => s.end('hi')),
  );
  try {
    const first = await handshake(pki, f.ports[0]!);
    expect(first.protocol).toBe('TLSv1.2');
    expect((await handshake(pki, f.ports[1]!, first.session)).reused).toBe(true);
  } finally {
    await f.stop();
  }
});

test('the stored ticket key is sealed when a secret is given', async () => {
  const store = new MemoryStore();
  const server = tls13Server(pki);
  const ring = new TicketKeyRing({ store, secret: randomBytes(32), keyPrefix: 'tk:' });
  await ring.attach(server);
  try {
    const applied = server.getTicketKeys();
    const epoch = ring.epoch!;
    const record = (await store.get(`tk:${ring.rotationSeconds}:${epoch}`))!;
    expect(record).toBeDefined();
    expect(record.includes(applied)).toBe(false);
    expect(record.includes(applied.subarray(16, 32))).toBe(false);
  } finally {
    ring.close();
  }
});

test('all servers rotate to the same new key at the epoch boundary; an old ticket then needs a full handshake', async () => {
  const store = new MemoryStore();
  const f = await fleet(store, () => tls13Server(pki), { rotationSeconds: 2 });
  try {
    const rotated = async (from: number) => {
      // Polls (generously) until both rings have moved past `from`; asserts on counts, not time.
      for (let i = 0; i < 100 && !(f.rings[0]!.epoch! > from && f.rings[1]!.epoch === f.rings[0]!.epoch); i++) await sleep(100);
    };
    // Start right after a boundary so the ticket below is surely issued under `before`.
    await rotated(f.rings[0]!.epoch!);
    const firstEpoch = f.rings[0]!.epoch!;
    const before = f.servers[0]!.getTicketKeys();
    const ticket = (await handshake(pki, f.ports[0]!)).session;
    expect(f.rings[0]!.epoch).toBe(firstEpoch);
    await rotated(firstEpoch);
    expect(f.rings[0]!.epoch).toBeGreaterThan(firstEpoch);
    expect(f.rings[1]!.epoch).toBe(f.rings[0]!.epoch);
    const after = f.servers[0]!.getTicketKeys();
    expect(after.equals(before)).toBe(false);
    expect(f.servers[1]!.getTicketKeys()).toEqual(after);
    expect(f.rings[0]!.stats().rotations).toBeGreaterThanOrEqual(1);
    // Node keeps one ticket key per context: the old ticket is no longer accepted.
    expect((await handshake(pki, f.ports[1]!, ticket)).reused).toBe(false);
    const fresh = await handshake(pki, f.ports[0]!);
    expect((await handshake(pki, f.ports[1]!, fresh.session)).reused).toBe(true);
  } finally {
    await f.stop();
  }
});

test('a store that fails: attach rejects with a typed error; nothing throws later', async () => {
  const broken: SessionStore = {
    get: async () => {
      throw Object.assign(new Error('down'), { code: 'ECONNREFUSED' });
    },
    set: async () => {},
    delete: async () => {},
    close: async () => {},
  };
  const ring = new TicketKeyRing({ store: broken });
  await expect(ring.attach(tls13Server(pki))).rejects.toThrow('down');
  const stalled: SessionStore = { get: () => new Promise(() => {}), set: async () => {}, delete: async () => {}, close: async () => {} };
  const slowRing = new TicketKeyRing({ store: stalled, budgetMs: 100 });
  await expect(slowRing.attach(tls13Server(pki))).rejects.toMatchObject({ code: 'ERR_TLS_SESSION_STORE_TIMEOUT' });
  ring.close();
  slowRing.close();
});

test('bad options are typed errors', () => {
  expect(() => new TicketKeyRing({ store: new MemoryStore(), rotationSeconds: 0 })).toThrow(
    expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }),
  );
  expect(() => new TicketKeyRing({ store: undefined as unknown as SessionStore })).toThrow(
    expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }),
  );
  expect(() => new TicketKeyRing({ store: new MemoryStore(), secret: Buffer.alloc(3) })).toThrow(
    expect.objectContaining({ code: 'ERR_TLS_SESSION_PERSIST_CONFIG' }),
  );
});
