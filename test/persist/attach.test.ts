/**
 * attachSessionStore on real TLS 1.2 servers and clients in this process: sessions are stored
 * sealed, resumed, shared between two servers with different session ID contexts, and every
 * bad record (tampered, other scope, expired, random bytes) is refused, counted and deleted.
 */
import { constants, randomBytes } from 'node:crypto';
import * as http2 from 'node:http2';
import * as https from 'node:https';
import * as tls from 'node:tls';
import { inspect } from 'node:util';
import { makePki, Pki } from '../helpers/pki';
import { withSessionTimes } from '../helpers/session-der';
import { attachSessionStore, MemoryStore, Sealer, SessionStore } from '../../lib/persist';
import { close, forNode, fromNode, handshake, listen, tls12Server, tls13Server } from './helpers/tls-peers';
import { RecordingStore } from './helpers/recording-store';
import { manualClock } from './helpers/clock';

let pki: Pki;
let otherPki: Pki;
const secret = randomBytes(32);

beforeAll(() => {
  pki = makePki();
  otherPki = makePki();
});

test('a TLS 1.2 session is stored sealed and resumed; stats count it', async () => {
  const store = new RecordingStore();
  const server = tls12Server(pki);
  const handle = attachSessionStore(server, { store, secret });
  const port = await listen(server);
  try {
    const first = await handshake(pki, port);
    expect(first.reused).toBe(false);
    expect(first.protocol).toBe('TLSv1.2');
    expect(store.keys).toHaveLength(1);
    const record = (await store.get(store.keys[0]!))!;
    expect(record.subarray(0, 4)).toEqual(Buffer.from([0x54, 0x53, 1, 1])); // sealed envelope
    const second = await handshake(pki, port, first.session);
    expect(second.reused).toBe(true);
    const stats = handle.stats();
    expect(stats.stored).toBe(1);
    expect(stats.hits).toBe(1);
    expect(stats.rejected).toBe(0);
    expect(stats.errors).toBe(0);
    expect(stats.latencyMs.get.samples).toBeGreaterThanOrEqual(1);
    expect(stats.latencyMs.set.samples).toBe(1);
  } finally {
    handle.detach();
    await close(server);
  }
});

test('two servers with different session ID contexts share sessions once attached (fleet agreement)', async () => {
  const store = new MemoryStore();
  // Two fleet members whose Node default contexts differ (as with different process.argv).
  const a = tls12Server(pki, { sessionIdContext: 'started-with-argv-A' });
  const b = tls12Server(pki, { sessionIdContext: 'started-with-argv-B' });
  const handleA = attachSessionStore(a, { store, secret });
  const handleB = attachSessionStore(b, { store, secret });
  expect(handleA.scope).toBe(handleB.scope);
  expect(handleA.sessionIdContext).toBe(handleB.sessionIdContext);
  const [portA, portB] = [await listen(a), await listen(b)];
  try {
    const first = await handshake(pki, portA);
    const onB = await handshake(pki, portB, first.session);
    expect(onB.reused).toBe(true);
    expect(handleB.stats().hits).toBe(1);
  } finally {
    handleA.detach();
    handleB.detach();
    await close(a);
    await close(b);
  }
});

test('without attach, different session ID contexts refuse each other (why attach sets one)', async () => {
  const shared = new Map<string, Buffer>();
  const make = (context: string) => {
    const server = tls12Server(pki, { sessionIdContext: context });
    server.on('newSession', (id: Buffer, data: Buffer, cb: () => void) => {
      shared.set(id.toString('hex'), data);
      cb();
    });
    server.on('resumeSession', (id: Buffer, cb: (e: null, d: Buffer | null) => void) => cb(null, shared.get(id.toString('hex')) ?? null));
    return server;
  };
  const a = make('argv-A');
  const b = make('argv-B');
  const [portA, portB] = [await listen(a), await listen(b)];
  try {
    const first = await handshake(pki, portA);
    expect(shared.size).toBe(1);
    expect((await handshake(pki, portA, first.session)).reused).toBe(true);
    expect((await handshake(pki, portB, first.session)).reused).toBe(false);
  } finally {
    await close(a);
    await close(b);
  }
});

test('a server with another certificate (another scope) does not resume the session, and leaves it to its owner', async () => {
  const store = new MemoryStore();
  const a = tls12Server(pki);
  const other = tls12Server(otherPki);
  const handleA = attachSessionStore(a, { store, secret });
  const handleOther = attachSessionStore(other, { store, secret });
  expect(handleA.scope).not.toBe(handleOther.scope);
  const [portA, portOther] = [await listen(a), await listen(other)];
  try {
    const first = await handshake(pki, portA);
    const elsewhere = await handshake(otherPki, portOther, first.session);
    expect(elsewhere.reused).toBe(false);
    // Counted, not deleted: the record is the other virtual host's (it failed before: rejected 1, deleted).
    expect(handleOther.stats()).toMatchObject({ incompatible: 1, rejected: 0 });
    expect((await handshake(pki, portA, first.session)).reused).toBe(true);
  } finally {
    handleA.detach();
    handleOther.detach();
    await close(a);
    await close(other);
  }
});

describe('bad records are refused, counted and deleted (records of another scope: kept)', () => {
  let store: RecordingStore;
  let errors: Error[];
  let handle: ReturnType<typeof attachSessionStore>;
  let server: ReturnType<typeof tls12Server>;
  let port: number;

  beforeEach(async () => {
    store = new RecordingStore();
    errors = [];
    server = tls12Server(pki);
    handle = attachSessionStore(server, { store, secret, onError: (e) => errors.push(e) });
    port = await listen(server);
  });
  afterEach(async () => {
    handle.detach();
    await close(server);
  });

  async function issue(): Promise<{ key: string; session: Buffer }> {
    const first = await handshake(pki, port);
    return { key: store.keys[store.keys.length - 1]!, session: first.session! };
  }

  test('tampered record', async () => {
    const { key, session } = await issue();
    const record = (await store.get(key))!;
    record[record.length - 20] ^= 0x01;
    await store.set(key, record, 300);
    expect((await handshake(pki, port, session)).reused).toBe(false);
    expect(handle.stats().rejected).toBe(1);
    expect(errors.map((e) => (e as { code?: string }).code)).toContain('ERR_TLS_SESSION_RECORD_REJECTED');
    expect(await store.get(key)).toBeUndefined();
  });

  test('record sealed for another scope under the same secret: refused, counted incompatible, kept', async () => {
    const { key, session } = await issue();
    const sealer = new Sealer(secret, 'session-record');
    const payload = sealer.open(key, (await store.get(key))!);
    const scopeLength = payload.readUInt16BE(1);
    const der = payload.subarray(3 + scopeLength);
    const foreignScope = Buffer.from('x509:another-virtual-host');
    const header = Buffer.from([1, 0, foreignScope.length]);
    const foreign = sealer.seal(key, Buffer.concat([header, foreignScope, der]));
    await store.set(key, foreign, 300);
    expect((await handshake(pki, port, session)).reused).toBe(false);
    expect(handle.stats()).toMatchObject({ incompatible: 1, rejected: 0 });
    expect(errors).toEqual([]);
    expect(await store.get(key)).toEqual(foreign);
  });

  test('random bytes', async () => {
    const { key, session } = await issue();
    await store.set(key, randomBytes(200), 300);
    expect((await handshake(pki, port, session)).reused).toBe(false);
    expect(handle.stats().rejected).toBe(1);
    expect(await store.get(key)).toBeUndefined();
  });

  test('unsealed (forged plain) record while a secret is configured', async () => {
    const { key, session } = await issue();
    const sealer = new Sealer(secret, 'session-record');
    const payload = sealer.open(key, (await store.get(key))!);
    await store.set(key, Buffer.concat([Buffer.from([0x54, 0x53, 1, 0]), payload]), 300);
    expect((await handshake(pki, port, session)).reused).toBe(false);
    expect(handle.stats().rejected).toBe(1);
  });

  test.each([
    ['2^53', 2n ** 53n],
    ['INT64_MAX', 2n ** 63n - 1n],
    ['INT64_MIN', -(2n ** 63n)],
  ])('sealed record whose session has an extreme time (%s): refused, never resumed', async (_name, extreme) => {
    const { key, session } = await issue();
    const sealer = new Sealer(secret, 'session-record');
    const payload = sealer.open(key, (await store.get(key))!);
    const scopeLength = payload.readUInt16BE(1);
    const forged = withSessionTimes(payload.subarray(3 + scopeLength), { time: extreme });
    await store.set(key, sealer.seal(key, Buffer.concat([payload.subarray(0, 3 + scopeLength), forged])), 300);
    expect((await handshake(pki, port, session)).reused).toBe(false);
    expect(handle.stats().rejected).toBe(1);
    expect(await store.get(key)).toBeUndefined();
  });

  test('record moved under another session ID key', async () => {
    const one = await issue();
    const two = await issue();
    await store.set(two.key, (await store.get(one.key))!, 300);
    expect((await handshake(pki, port, two.session)).reused).toBe(false);
    expect(handle.stats().rejected).toBe(1);
  });
});

test('an expired session is refused and counted as expired, even if the store still holds it', async () => {
  const clock = manualClock();
  const store = new RecordingStore();
  const server = tls12Server(pki, { sessionTimeout: 3 });
  const reported: Error[] = [];
  const handle = attachSessionStore(server, { store, secret, now: clock.now, onError: (error) => reported.push(error) });
  const port = await listen(server);
  try {
    const first = await handshake(pki, port);
    const key = store.keys[0]!;
    const record = (await store.get(key))!;
    // Keep the record in the store (its TTLs run on its own clock) far longer than the session lives.
    await store.set(key, record, 3600);
    // Past the session's 3 s lifetime on the attachment's clock; no real time passes.
    clock.advance(60_000);
    expect((await handshake(pki, port, first.session)).reused).toBe(false);
    // The lookup refused the record as expired (reported, deleted). The full handshake's new
    // session lives 3 s of real time too, so on the moved clock it is expired at once: counted,
    // not stored (OpenSSL stamps sessions with the real time).
    expect(reported).toEqual([expect.objectContaining({ reason: 'expired' })]);
    expect(handle.stats()).toMatchObject({ expired: 2, rejected: 0, stored: 1 });
    expect(await store.get(key)).toBeUndefined();
  } finally {
    handle.detach();
    await close(server);
  }
});

test('TLS 1.3 newSession events are skipped (Node resumes TLS 1.3 by ticket only)', async () => {
  const store = new RecordingStore();
  const server = tls13Server(pki);
  const handle = attachSessionStore(server, { store, secret });
  const port = await listen(server);
  try {
    const first = await handshake(pki, port);
    expect(first.protocol).toBe('TLSv1.3');
    expect(handle.stats().skippedTls13).toBeGreaterThanOrEqual(1);
    expect(store.keys).toHaveLength(0);
  } finally {
    handle.detach();
    await close(server);
  }
});

test('a failing store and a throwing onError never break handshakes', async () => {
  const broken: SessionStore = {
    get: async () => {
      throw new Error('backend down');
    },
    set: async () => {
      throw new Error('backend down');
    },
    delete: async () => {},
    close: async () => {},
  };
  const stalled: SessionStore = {
    get: () => new Promise(() => {}),
    set: () => new Promise(() => {}),
    delete: async () => {},
    close: async () => {},
  };
  for (const store of [broken, stalled]) {
    const server = tls12Server(pki);
    const handle = attachSessionStore(server, {
      store,
      budgetMs: 50,
      onError: () => {
        throw new Error('bad listener');
      },
    });
    const port = await listen(server);
    try {
      const first = await handshake(pki, port);
      const second = await handshake(pki, port, first.session);
      expect(second.reused).toBe(false);
      expect(handle.stats().errors).toBeGreaterThanOrEqual(2);
      expect(handle.stats().misses).toBeGreaterThanOrEqual(1);
    } finally {
      handle.detach();
      await close(server);
    }
  }
});

test('plain (unsealed) records work without a secret', async () => {
  const store = new RecordingStore();
  const server = tls12Server(pki);
  const handle = attachSessionStore(server, { store });
  const port = await listen(server);
  try {
    const first = await handshake(pki, port);
    expect((await store.get(store.keys[0]!))!.subarray(0, 4)).toEqual(Buffer.from([0x54, 0x53, 1, 0]));
    expect((await handshake(pki, port, first.session)).reused).toBe(true);
  } finally {
    handle.detach();
    await close(server);
  }
});

test('detach removes the listeners and restores the session ID context; bad options are typed errors', async () => {
  const server = tls12Server(pki, { sessionIdContext: 'original' });
  const handle = attachSessionStore(server, { store: new MemoryStore() });
  expect(server.listenerCount('newSession')).toBe(1);
  expect((server as unknown as { sessionIdContext: string }).sessionIdContext).toBe(handle.sessionIdContext);
  handle.detach();
  expect(server.listenerCount('newSession')).toBe(0);
  expect(server.listenerCount('resumeSession')).toBe(0);
  expect((server as unknown as { sessionIdContext: string }).sessionIdContext).toBe('original');
  expect(() => attachSessionStore(server, { store: {} as SessionStore })).toThrow(
    expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }),
  );
  expect(() => attachSessionStore(server, { store: new MemoryStore(), secret: Buffer.alloc(16) })).toThrow(
    expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('exactly 32') }),
  );
  expect(() => attachSessionStore(server, { store: new MemoryStore(), lookup: 'some' as never })).toThrow(
    expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining("'all' or 'issued'") }),
  );
  expect(() => attachSessionStore(server, { store: new MemoryStore(), scope: '' })).toThrow(
    expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('"options.scope"') }),
  );
  expect(() => attachSessionStore(server, { store: new MemoryStore(), budgetMs: 0 })).toThrow(
    expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }),
  );
  expect(() => attachSessionStore(server, { store: new MemoryStore(), now: 0 as never })).toThrow(
    expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('options.now') }),
  );
});

test('handle output never shows the secret', () => {
  const server = tls12Server(pki);
  const handle = attachSessionStore(server, { store: new MemoryStore(), secret });
  try {
    const shown = inspect(handle, { depth: 10, showHidden: true }) + JSON.stringify(handle);
    expect(shown).not.toContain(secret.toString('hex'));
    expect(shown).not.toContain(secret.toString('base64'));
  } finally {
    handle.detach();
  }
});

test("SNI contexts (added before or after attach) and setSecureContext keep the scope's session ID context", async () => {
  const store = new MemoryStore();
  const server = tls12Server(pki);
  const sniOptions = { key: pki.serverKey, cert: pki.serverCert, maxVersion: 'TLSv1.2' as const };
  server.addContext('before.test', sniOptions);
  const handle = attachSessionStore(server, { store, secret });
  server.addContext('after.test', sniOptions);
  const port = await listen(server);
  // Node does not match '*.test' against two-label names; the certificate check is not under test here.
  const checkServerIdentity = () => undefined;
  try {
    for (const servername of ['before.test', 'after.test']) {
      const first = await handshake(pki, port, undefined, { servername, checkServerIdentity });
      expect((await handshake(pki, port, first.session, { servername, checkServerIdentity })).reused).toBe(true);
    }
    server.setSecureContext({ key: pki.serverKey, cert: pki.serverCert, maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET });
    expect((server as unknown as { sessionIdContext: string }).sessionIdContext).toBe(handle.sessionIdContext);
    const first = await handshake(pki, port);
    expect((await handshake(pki, port, first.session)).reused).toBe(true);
    expect(handle.stats().rejected).toBe(0);
  } finally {
    handle.detach();
    await close(server);
  }
});

test('works on https.Server and http2.createSecureServer too', async () => {
  const tlsOptions = {
    key: pki.serverKey,
    cert: pki.serverCert,
    maxVersion: 'TLSv1.2' as const,
    secureOptions: constants.SSL_OP_NO_TICKET,
  };
  const servers: tls.Server[] = [
    https.createServer(tlsOptions, (req, res) => res.end('hi')),
    http2.createSecureServer(tlsOptions) as unknown as tls.Server,
  ];
  // Hands back the TLS 1.2 session (as DER) right after the handshake, then hangs up.
  const connect = (port: number, session?: Buffer) =>
    new Promise<{ reused: boolean; session: Buffer }>((resolve, reject) => {
      const offered = session && forNode(session, 'localhost');
      const socket = tls.connect(
        { host: '127.0.0.1', port, servername: 'localhost', ca: pki.ca, session: offered, ALPNProtocols: ['h2', 'http/1.1'] },
        () => {
          const result = { reused: socket.isSessionReused(), session: fromNode(socket.getSession()!) };
          socket.destroy();
          resolve(result);
        },
      );
      socket.once('error', reject);
    });
  for (const server of servers) {
    const handle = attachSessionStore(server, { store: new MemoryStore(), secret });
    const port = await listen(server);
    try {
      const first = await connect(port);
      expect(first.reused).toBe(false);
      expect((await connect(port, first.session)).reused).toBe(true);
      expect(handle.stats().hits).toBe(1);
    } finally {
      handle.detach();
      await close(server);
    }
  }
});
