/**
 * The written-key filter without Redis: ExpiringKeyFilter's answers (an explicit clock), the
 * channel's message codec, and how attachSessionStore uses a store's trackWrittenKeys (a real
 * TLS server, a MemoryStore that declares the capability).
 */
import { constants, randomBytes } from 'node:crypto';
import * as tls from 'node:tls';
import fc from 'fast-check';
import { attachSessionStore, MemoryStore, type WrittenKeys } from '../../lib/persist';
import { decodeKeys, encodeKeys } from '../../lib/persist/stores/redis-written-keys';
import { ExpiringKeyFilter } from '../../lib/persist/stores/written-keys';
import { makePki, Pki } from '../helpers/pki';
import { close, listen, tls12Server } from './helpers/tls-peers';

describe('ExpiringKeyFilter', () => {
  test('a key is held until its expiry, by its own TTL; an unknown key is not', () => {
    const filter = new ExpiringKeyFilter(1 << 12);
    filter.add('session:a', 1000);
    filter.add('session:b', 2000);
    filter.add('session:c', Infinity);
    expect(filter.mayHold('session:a', 999)).toBe(true);
    expect(filter.mayHold('session:a', 1000)).toBe(false);
    expect(filter.mayHold('session:b', 1999.5)).toBe(true);
    expect(filter.mayHold('session:c', 4e9)).toBe(true);
    expect(filter.mayHold('session:d', 0)).toBe(false);
    // A later expiry for the same key extends it; an earlier one never shortens it.
    filter.add('session:a', 3000);
    filter.add('session:a', 10);
    expect(filter.mayHold('session:a', 2999)).toBe(true);
    filter.clear();
    expect(filter.mayHold('session:c', 0)).toBe(false);
  });

  test('never a false negative; false positives near the Bloom bound', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ minLength: 1, maxLength: 80 }), { maxLength: 200 }), (keys) => {
        const filter = new ExpiringKeyFilter(1 << 10);
        for (const key of keys) filter.add(key, 100);
        return keys.every((key) => filter.mayHold(key, 50));
      }),
    );
    // 2^16 slots, 4 hashes, 5,000 live session keys: (1 - e^(-4·5000/65536))^4 ≈ 0.48%.
    const filter = new ExpiringKeyFilter(1 << 16);
    for (let i = 0; i < 5000; i++) filter.add(`session:${randomBytes(32).toString('hex')}`, 100);
    let positives = 0;
    for (let i = 0; i < 20000; i++) if (filter.mayHold(`session:${randomBytes(32).toString('hex')}`, 50)) positives += 1;
    expect(positives / 20000).toBeLessThan(0.02);
  });
});

describe("the channel's messages", () => {
  test('round trip, including keys without expiry', () => {
    const keys = [
      { key: 'session:00ff', expiresAtSec: 1_800_000_000 },
      { key: 'session:é', expiresAtSec: Infinity },
    ];
    expect(decodeKeys(encodeKeys(keys))).toEqual(keys);
  });

  test('anything malformed is refused whole, never thrown', () => {
    const good = encodeKeys([{ key: 'session:aa', expiresAtSec: 5 }]);
    expect(decodeKeys(Buffer.alloc(0))).toBeUndefined();
    expect(decodeKeys(Buffer.concat([Buffer.from([2]), good.subarray(1)]))).toBeUndefined();
    expect(decodeKeys(good.subarray(0, good.length - 1))).toBeUndefined();
    expect(decodeKeys(Buffer.concat([good, Buffer.from([0])]))).toBeUndefined();
    expect(decodeKeys(Buffer.from([1, 0, 0, 0, 0, 0, 0]))).toBeUndefined();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const keys = decodeKeys(Buffer.from(bytes));
        return keys === undefined || Array.isArray(keys);
      }),
    );
  });
});

describe("attachSessionStore's lookup 'written'", () => {
  let pki: Pki;
  beforeAll(() => {
    pki = makePki();
  });

  /** A MemoryStore that declares trackWrittenKeys with a given answer, and counts its gets. */
  class FilteredStore extends MemoryStore {
    gets = 0;
    released = 0;
    /** The `filter` option of each trackWrittenKeys call. */
    asked: Array<boolean | undefined> = [];
    constructor(readonly answer: (key: string) => boolean) {
      super();
    }
    override async get(key: string): Promise<Buffer | undefined> {
      this.gets += 1;
      return super.get(key);
    }
    trackWrittenKeys(_prefix: string, options?: { filter?: boolean }): WrittenKeys {
      this.asked.push(options?.filter);
      return { mayHold: (key) => this.answer(key), complete: true, unsupported: undefined, release: () => (this.released += 1) };
    }
  }

  function offer(port: number, session?: Buffer): Promise<{ reused: boolean; session?: Buffer }> {
    return new Promise((resolve, reject) => {
      let reused = false;
      let issued: Buffer | undefined;
      const socket = tls.connect({
        host: '127.0.0.1',
        port,
        ca: pki.ca,
        servername: 'localhost',
        maxVersion: 'TLSv1.2',
        secureOptions: constants.SSL_OP_NO_TICKET,
        session,
      });
      socket.once('secureConnect', () => (reused = socket.isSessionReused()));
      socket.on('session', (s: Buffer) => (issued = s));
      socket.on('data', () => undefined);
      socket.once('error', reject);
      socket.once('close', () => resolve({ reused, session: issued }));
    });
  }

  async function resumeWith(store: FilteredStore, options: { lookup?: 'written' | 'all'; onError?: (e: Error) => void } = {}) {
    const server = tls12Server(pki);
    const handle = attachSessionStore(server, { store, ...options });
    const port = await listen(server);
    try {
      const first = await offer(port);
      while (handle.stats().stored < 1) await new Promise((resolve) => setImmediate(resolve));
      const again = await offer(port, first.session);
      return { reused: again.reused, stats: handle.stats() };
    } finally {
      handle.detach();
      await close(server);
    }
  }

  test('an ID the store rules out is not looked up (a miss, counted filtered); lookup all asks anyway', async () => {
    const ruledOut = new FilteredStore(() => false);
    const result = await resumeWith(ruledOut);
    expect(result.reused).toBe(false);
    expect(result.stats.filtered).toBeGreaterThanOrEqual(1);
    expect(ruledOut.gets).toBe(0);
    expect(ruledOut.released).toBe(1);

    const all = new FilteredStore(() => false);
    expect((await resumeWith(all, { lookup: 'all' })).reused).toBe(true);
    expect(all.gets).toBeGreaterThanOrEqual(1);
    // Tracked all the same (a member announces its writes whatever its own lookup) but asked for
    // no filter; released on detach.
    expect(all.asked).toEqual([false]);
    expect(ruledOut.asked).toEqual([true]);
    expect(all.released).toBe(1);
  });

  test('an ID the store may hold is looked up and resumes; a throwing filter is a "maybe", reported', async () => {
    const maybe = new FilteredStore((key) => key.startsWith('session:'));
    expect((await resumeWith(maybe)).reused).toBe(true);

    const errors: Error[] = [];
    const throwing = new FilteredStore(() => {
      throw new Error('filter broke');
    });
    const result = await resumeWith(throwing, { onError: (e) => errors.push(e) });
    expect(result.reused).toBe(true);
    expect(errors.map((e) => e.message)).toContain('filter broke');
  });

  test('options.lookup names its choices', () => {
    const server = tls12Server(pki);
    expect(() => attachSessionStore(server, { store: new MemoryStore(), lookup: 'some' as never })).toThrow(
      expect.objectContaining({ message: expect.stringMatching(/options\.lookup.*written/s) }),
    );
  });
});
