/**
 * TicketKeyRing on real node:tls servers sharing a MemoryStore (two fleet members, one ring each
 * as in two processes): tickets resume across members and across a rotation (older keys open and
 * renew), not past the retention. Every ticket opened is renewed by default (TLS 1.3 tickets are
 * single-use); `renewTickets: 'retired'` renews only those of retired keys, as Node does. The setTicketKeys fallback, forced by deleting the internal on
 * a real server's own context, behaves as documented. SNI contexts and contexts set later are
 * covered. Store outages and Redis are in ticket-key-ring.redis.test.ts.
 */
import { randomBytes } from 'node:crypto';
import * as tls from 'node:tls';
import { inspect } from 'node:util';
import { makePki, Pki } from '../helpers/pki';
import { MemoryStore, Sealer, SessionStore, TICKET_KEY_FALLBACK_WARNING, TicketKeyRing, TicketKeyRingOptions } from '../../lib/persist';
import { close, handshake, listen, tls13Server } from './helpers/tls-peers';
import { clockLateInEpoch, clockPastEpoch } from './helpers/rotation';
import { manualClock } from './helpers/clock';

let pki: Pki;
beforeAll(() => {
  pki = makePki();
});

interface Internals {
  _sharedCreds: { context: Record<string, unknown> };
  _contexts: Array<[RegExp, Record<string, unknown>]>;
}
const internals = (server: tls.Server) => server as unknown as Internals;

/** What a Node without the ticket-key callback looks like, on this one server's own context. */
function withoutTicketKeyCallback(server: tls.Server): tls.Server {
  Object.defineProperty(internals(server)._sharedCreds.context, 'enableTicketKeyCallback', { value: undefined, configurable: true });
  return server;
}

/**
 * A clock for the rings and their store, at the start of the epoch the wall clock is in: the
 * tests move it across rotations (the wall clock would not get there during a test, rotation
 * being hourly), so each fails if the ring ignored it.
 */
function epochClock(rotationSeconds: number) {
  const epochMs = rotationSeconds * 1000;
  return manualClock(Math.floor(Date.now() / epochMs) * epochMs + 1);
}

/** Two fleet members: each with its own ring instance (as in two processes), one shared store. */
async function fleet(store: SessionStore, make: () => tls.Server, ringOptions: Partial<TicketKeyRingOptions> = {}) {
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

/**
 * The warnings with `code` emitted while `run` runs, kept off the test output; others go through.
 * (Jest's sandboxed `process` does not deliver 'warning' events to a listener in a test.)
 */
async function warningsDuring<T>(
  code: string,
  run: () => Promise<T>,
): Promise<{ result: T; warnings: Array<{ message: string; type?: string }> }> {
  const warnings: Array<{ message: string; type?: string }> = [];
  const emitWarning = process.emitWarning;
  const capture = (warning: string | Error, options?: unknown, ...rest: unknown[]) => {
    const { code: emitted, type } = (typeof options === 'object' && options !== null ? options : {}) as { code?: string; type?: string };
    if (emitted === code) warnings.push({ message: String(warning), type });
    else (emitWarning as (...args: unknown[]) => void).call(process, warning, options, ...rest);
  };
  process.emitWarning = capture as typeof process.emitWarning;
  try {
    return { result: await run(), warnings };
  } finally {
    process.emitWarning = emitWarning;
  }
}

test('a TLS 1.3 ticket from server A resumes on server B', async () => {
  const store = new MemoryStore();
  const f = await fleet(store, () => tls13Server(pki), { secret: randomBytes(32) });
  try {
    const first = await handshake(pki, f.ports[0]!);
    expect(first.protocol).toBe('TLSv1.3');
    const onB = await handshake(pki, f.ports[1]!, first.session);
    expect(onB.reused).toBe(true);
    // Every key in the store was created by exactly one of the two; the other read it.
    const [a, b] = [f.rings[0]!.stats(), f.rings[1]!.stats()];
    expect(a.created + b.created).toBe(store.size);
    expect(b.fetched).toBeGreaterThanOrEqual(1);
    expect(a.mode).toBe('callback');
    expect(f.rings[0]!.stats(f.servers[0]!).tickets.issued).toBeGreaterThanOrEqual(1);
    // Opened and renewed (renewTickets 'always'): by the current key, or the previous one if the epoch just ended.
    const opened = f.rings[1]!.stats(f.servers[1]!).tickets;
    expect(opened.renewed.current + opened.renewed.previous).toBe(1);
    expect(opened.decrypted).toEqual({ ahead: 0, current: 0, previous: 0, older: 0 });
    expect(b.store).toMatchObject({ ready: true, outages: 0 });
    expect(b.store.msSinceKeySync).toBeGreaterThanOrEqual(0);
  } finally {
    await f.stop();
  }
});

test('every ticket the ring seals carries its own IV, under the current key name', async () => {
  const server = tls13Server(pki);
  const ring = new TicketKeyRing({ store: new MemoryStore() });
  await ring.attach(server);
  const port = await listen(server);
  try {
    const tickets: Buffer[] = [];
    for (let i = 0; i < 4; i++) {
      await new Promise<void>((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.ca });
        socket.on('session', () => {
          const ticket = socket.getTLSTicket();
          if (ticket) tickets.push(Buffer.from(ticket));
        });
        socket.on('data', () => undefined);
        socket.once('error', reject);
        socket.once('close', () => resolve());
      });
    }
    // Node's server sends two tickets after each full handshake.
    expect(tickets.length).toBeGreaterThanOrEqual(8);
    const names = new Set(tickets.map((t) => t.subarray(0, 16).toString('hex')));
    const ivs = new Set(tickets.map((t) => t.subarray(16, 32).toString('hex')));
    expect(names.size).toBe(1);
    expect(ivs.size).toBe(tickets.length);
  } finally {
    ring.close();
    await close(server);
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

const NONE = { ahead: 0, current: 0, previous: 0, older: 0 };

describe.each([
  ['always (the default)', undefined, 'renews'],
  ['retired', 'retired', 'accepts'],
] as const)('renewTickets %s', (_name, renewTickets, does) => {
  async function ringServer(make: () => tls.Server) {
    const server = make();
    const ring = new TicketKeyRing({ store: new MemoryStore(), ...(renewTickets && { renewTickets }) });
    await ring.attach(server);
    const port = await listen(server);
    return { server, ring, port, stop: async () => (ring.close(), await close(server)) };
  }

  test(`TLS 1.3: ${does} a current-key ticket; ${does === 'renews' ? 'each resumption brings the next ticket' : 'a resumption brings none (Node’s behaviour)'}`, async () => {
    const s = await ringServer(() => tls13Server(pki));
    try {
      const first = await handshake(pki, s.port);
      expect(s.ring.stats(s.server).tickets.issued).toBe(2); // Node's server: two tickets after a full handshake
      let ticket = first.session!;
      for (let i = 1; i <= 3; i++) {
        const next = await handshake(pki, s.port, ticket);
        expect(next.reused).toBe(true);
        if (does === 'renews') {
          expect(next.session).toBeDefined();
          expect(next.session!.equals(ticket)).toBe(false);
          ticket = next.session!;
        } else {
          expect(next.session).toBeUndefined(); // the client keeps (reuses, here) its only ticket
        }
      }
      const { tickets } = s.ring.stats(s.server);
      expect(tickets.issued).toBe(does === 'renews' ? 2 + 3 : 2);
      expect(tickets.renewed).toEqual(does === 'renews' ? { ...NONE, current: 3 } : NONE);
      expect(tickets.decrypted).toEqual(does === 'renews' ? NONE : { ...NONE, current: 3 });
    } finally {
      await s.stop();
    }
  });

  test(`TLS 1.2: ${does} a current-key ticket (the callback does not know the protocol: renewing re-issues a TLS 1.2 ticket too)`, async () => {
    const s = await ringServer(() =>
      tls.createServer({ key: pki.serverKey, cert: pki.serverCert, maxVersion: 'TLSv1.2' }, (c) => c.end('hi')),
    );
    try {
      const first = await handshake(pki, s.port);
      expect(first.protocol).toBe('TLSv1.2');
      const issued = s.ring.stats(s.server).tickets.issued;
      expect((await handshake(pki, s.port, first.session)).reused).toBe(true);
      const { tickets } = s.ring.stats(s.server);
      // Renewed: one more NewSessionTicket in the abbreviated handshake (a Node client emits no 'session' for it).
      expect(tickets.issued - issued).toBe(does === 'renews' ? 1 : 0);
      expect(tickets.renewed.current + tickets.decrypted.current).toBe(1);
      expect(tickets.renewed.current).toBe(does === 'renews' ? 1 : 0);
    } finally {
      await s.stop();
    }
  });
});

test('the stored ticket key is sealed when a secret is given, and the ring never shows it', async () => {
  const store = new MemoryStore();
  const server = tls13Server(pki);
  const secret = randomBytes(32);
  const ring = new TicketKeyRing({ store, secret, keyPrefix: 'tk:' });
  await ring.attach(server);
  try {
    const storeKey = `tk:${ring.rotationSeconds}:${ring.epoch}`;
    const record = (await store.get(storeKey))!;
    const key = new Sealer(secret, 'ticket-key').open(storeKey, record);
    expect(key).toHaveLength(48);
    const shown =
      inspect(ring, { showHidden: true, depth: 10 }) +
      JSON.stringify(ring) +
      JSON.stringify(ring.stats()) +
      inspect(ring.stats(server), { depth: 10 });
    for (const part of [key.subarray(0, 16), key.subarray(16, 32), key.subarray(32)]) {
      expect(record.includes(part.subarray(0, 8))).toBe(false);
      expect(shown).not.toContain(part.toString('hex'));
      expect(shown).not.toContain(part.toString('base64'));
    }
  } finally {
    ring.close();
  }
});

test('a ticket issued just before a rotation resumes on another member just after it (renewed); past the retention it does not', async () => {
  const rotationSeconds = 3600;
  const retentionSeconds = 7200;
  const clock = epochClock(rotationSeconds);
  const f = await fleet(new MemoryStore({ now: clock.now }), () => tls13Server(pki), { rotationSeconds, retentionSeconds, now: clock.now });
  try {
    const epoch = await clockLateInEpoch(clock, f.rings, rotationSeconds);
    const issued = await handshake(pki, f.ports[0]!);
    clockPastEpoch(clock, epoch, rotationSeconds);
    expect(f.rings.map((ring) => ring.epoch)).toEqual([epoch + 1, epoch + 1]);
    const after = await handshake(pki, f.ports[1]!, issued.session);
    expect(after.reused).toBe(true);
    const onB = f.rings[1]!.stats(f.servers[1]!).tickets;
    expect(onB.renewed.previous).toBe(1);
    expect(onB.rejected).toEqual({ unknownKey: 0, pastRetention: 0 });
    // The renewed ticket is sealed with the current key: it resumes on A (renewed again, the default).
    expect((await handshake(pki, f.ports[0]!, after.session)).reused).toBe(true);
    expect(f.rings[0]!.stats(f.servers[0]!).tickets.renewed.current).toBeGreaterThanOrEqual(1);

    // The old key stopped sealing at the end of `epoch`; it opens tickets for retentionSeconds more.
    clockPastEpoch(clock, epoch, rotationSeconds, retentionSeconds * 1000 - 1000);
    expect((await handshake(pki, f.ports[1]!, issued.session)).reused).toBe(true);
    clockPastEpoch(clock, epoch, rotationSeconds, retentionSeconds * 1000);
    const late = await handshake(pki, f.ports[1]!, issued.session);
    expect(late.reused).toBe(false);
    const rejected = f.rings[1]!.stats(f.servers[1]!).tickets.rejected;
    expect(rejected.pastRetention + rejected.unknownKey).toBe(1);
  } finally {
    await f.stop();
  }
});

test('fallback (a Node without enableTicketKeyCallback): a typed warning, setTicketKeys, and tickets from before a rotation get a full handshake', async () => {
  const rotationSeconds = 3600;
  const clock = epochClock(rotationSeconds);
  const { result: f, warnings } = await warningsDuring(TICKET_KEY_FALLBACK_WARNING, () =>
    fleet(new MemoryStore({ now: clock.now }), () => withoutTicketKeyCallback(tls13Server(pki)), {
      rotationSeconds,
      retentionSeconds: 7200,
      now: clock.now,
    }),
  );
  try {
    expect(warnings).toHaveLength(2); // once per ring
    expect(warnings[0]!.type).toBe('TlsSessionWarning');
    expect(warnings[0]!.message).toContain(`Node ${process.version} lacks server._sharedCreds.context.enableTicketKeyCallback()`);
    expect(f.rings[0]!.stats().mode).toBe('setTicketKeys');
    expect(f.servers[0]!.getTicketKeys()).toEqual(f.servers[1]!.getTicketKeys());

    const epoch = await clockLateInEpoch(clock, f.rings, rotationSeconds);
    const issued = await handshake(pki, f.ports[0]!);
    expect((await handshake(pki, f.ports[1]!, issued.session)).reused).toBe(true);
    const before = f.servers[0]!.getTicketKeys();
    clockPastEpoch(clock, epoch, rotationSeconds);
    expect(f.rings.map((ring) => ring.epoch)).toEqual([epoch + 1, epoch + 1]);
    expect(f.servers[0]!.getTicketKeys().equals(before)).toBe(false);
    expect(f.servers[1]!.getTicketKeys()).toEqual(f.servers[0]!.getTicketKeys());
    // One key per server: the ticket from before the rotation is no longer accepted.
    expect((await handshake(pki, f.ports[1]!, issued.session)).reused).toBe(false);
    const fresh = await handshake(pki, f.ports[0]!);
    expect((await handshake(pki, f.ports[1]!, fresh.session)).reused).toBe(true);
  } finally {
    await f.stop();
  }
});

describe.each(['callback', 'setTicketKeys'] as const)('%s mode', (mode) => {
  const make = () => (mode === 'callback' ? tls13Server(pki) : withoutTicketKeyCallback(tls13Server(pki)));

  test('a context set later (setSecureContext) gets the ring keys before its first handshake', async () => {
    const { result: f } = await warningsDuring(TICKET_KEY_FALLBACK_WARNING, () => fleet(new MemoryStore(), make));
    try {
      f.servers[0]!.setSecureContext({ key: pki.serverKey, cert: pki.serverCert });
      const fromB = await handshake(pki, f.ports[1]!);
      expect((await handshake(pki, f.ports[0]!, fromB.session)).reused).toBe(true);
      const fromA = await handshake(pki, f.ports[0]!);
      expect((await handshake(pki, f.ports[1]!, fromA.session)).reused).toBe(true);
      expect(f.rings[0]!.stats(f.servers[0]!).mode).toBe(mode);
    } finally {
      await f.stop();
    }
  });
});

test('SNI contexts (addContext, and those an SNICallback hands out) get the callback; an SNI ticket resumes on another member across a rotation', async () => {
  const rotationSeconds = 3600;
  const clock = epochClock(rotationSeconds);
  const handedOut: tls.SecureContext[] = [];
  const a = tls13Server(pki);
  a.addContext('localhost', { key: pki.serverKey, cert: pki.serverCert });
  const b = tls.createServer(
    {
      key: pki.serverKey,
      cert: pki.serverCert,
      SNICallback: (_name, callback) => {
        const context = tls.createSecureContext({ key: pki.serverKey, cert: pki.serverCert });
        handedOut.push(context);
        callback(null, context);
      },
    },
    (socket) => socket.end('hello'),
  );
  const servers = [a, b];
  let next = 0;
  const f = await fleet(new MemoryStore({ now: clock.now }), () => servers[next++]!, {
    rotationSeconds,
    retentionSeconds: 7200,
    now: clock.now,
  });
  try {
    expect(internals(a)._contexts[0]![1].onticketkeycallback).toEqual(expect.any(Function));
    const epoch = await clockLateInEpoch(clock, f.rings, rotationSeconds);
    const issued = await handshake(pki, f.ports[0]!);
    clockPastEpoch(clock, epoch, rotationSeconds);
    expect(f.rings.map((ring) => ring.epoch)).toEqual([epoch + 1, epoch + 1]);
    const onB = await handshake(pki, f.ports[1]!, issued.session);
    expect(onB.reused).toBe(true);
    // A resumption needs no certificate, so Node calls the SNICallback on full handshakes only.
    const fullOnB = await handshake(pki, f.ports[1]!);
    expect(fullOnB.reused).toBe(false);
    expect(handedOut.length).toBeGreaterThanOrEqual(1);
    for (const context of handedOut) {
      expect((context.context as Record<string, unknown>).onticketkeycallback).toEqual(expect.any(Function));
    }
    expect((await handshake(pki, f.ports[0]!, fullOnB.session)).reused).toBe(true);
  } finally {
    await f.stop();
  }
});

test('detach: the server keeps the key that sealed last as its single key; close(): servers keep serving', async () => {
  const store = new MemoryStore();
  const server = tls13Server(pki);
  const other = tls13Server(pki);
  const ring = new TicketKeyRing({ store });
  await ring.attach(server);
  await ring.attach(other);
  const [port, otherPort] = [await listen(server), await listen(other)];
  try {
    const issued = await handshake(pki, port);
    ring.detach(server);
    expect(ring.stats().servers).toBe(1);
    expect(() => ring.stats(server)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect((await handshake(pki, port, issued.session)).reused).toBe(true);
    ring.close();
    const fresh = await handshake(pki, otherPort);
    expect(fresh.reused).toBe(false);
    expect((await handshake(pki, otherPort, fresh.session)).reused).toBe(true);
    await expect(ring.attach(tls13Server(pki))).rejects.toMatchObject({ code: 'ERR_TLS_SESSION_STORE_CLOSED' });
  } finally {
    ring.close();
    await close(server);
    await close(other);
  }
});

test('bad options and arguments are typed errors', async () => {
  const store = new MemoryStore();
  for (const [options, code] of [
    [{ store, rotationSeconds: 0 }, 'ERR_OUT_OF_RANGE'],
    [{ store, retentionSeconds: -1 }, 'ERR_OUT_OF_RANGE'],
    [{ store, retentionSeconds: 1.5 }, 'ERR_OUT_OF_RANGE'],
    [{ store, budgetMs: 0 }, 'ERR_OUT_OF_RANGE'],
    [{ store: undefined }, 'ERR_INVALID_ARG_TYPE'],
    [{ store, onError: 'log' }, 'ERR_INVALID_ARG_TYPE'],
    [{ store, now: new Date() }, 'ERR_INVALID_ARG_TYPE'],
    [{ store, secret: Buffer.alloc(3) }, 'ERR_OUT_OF_RANGE'],
    [{ store, renewTickets: 'never' }, 'ERR_INVALID_ARG_VALUE'],
    [{ store, renewTickets: false }, 'ERR_INVALID_ARG_VALUE'],
  ] as const) {
    expect(() => new TicketKeyRing(options as unknown as TicketKeyRingOptions)).toThrow(expect.objectContaining({ code }));
  }
  const ring = new TicketKeyRing({ store });
  await expect(ring.attach({} as tls.Server)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
  ring.close();
});
