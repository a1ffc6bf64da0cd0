/** The SessionStore contract every store must keep (test/persist/stores*.test.ts run it per store). */
import type { SessionStore } from '../../../lib/persist/stores/contract';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Moves the clock the stores' TTLs run on (a store made with an injected `now`). */
export interface ContractClock {
  advance(ms: number): void;
}

/**
 * Defines the contract's tests for stores made by `make`; each store made is pushed to `opened`
 * (closed by the caller). With `clock` (the stores `make` makes run their TTLs on it), expiry is
 * tested by moving it; without, by sleeping.
 */
export function describeStoreContract(
  name: string,
  make: () => Promise<SessionStore>,
  opened: SessionStore[],
  clock?: ContractClock,
): void {
  const pass = async (ms: number): Promise<void> => {
    if (clock) clock.advance(ms);
    else await sleep(ms);
  };
  describe(`${name} contract`, () => {
    let store: SessionStore;
    beforeEach(async () => {
      store = await make();
      opened.push(store);
    });

    test('get/set/delete round trip with binary values', async () => {
      const value = Buffer.from([0, 1, 2, 255, 0, 128]);
      expect(await store.get('k')).toBeUndefined();
      await store.set('k', value, 60);
      const back = await store.get('k');
      expect(Buffer.isBuffer(back)).toBe(true);
      expect(back).toEqual(value);
      await store.set('k', Buffer.from('replaced'), 60);
      expect((await store.get('k'))!.toString()).toBe('replaced');
      await store.delete('k');
      expect(await store.get('k')).toBeUndefined();
      await store.delete('never-there');
    });

    test('entries expire after their TTL', async () => {
      await store.set('short', Buffer.from('x'), 1);
      await store.set('long', Buffer.from('y'), 60);
      await pass(2100);
      expect(await store.get('short')).toBeUndefined();
      expect((await store.get('long'))!.toString()).toBe('y');
    });

    test('take removes and returns the value, once, even to concurrent callers', async () => {
      expect(await store.take!('t')).toBeUndefined();
      await store.set('t', Buffer.from('ticket'), 60);
      const results = await Promise.all([store.take!('t'), store.take!('t'), store.take!('t')]);
      expect(results.filter((value) => value !== undefined).map((value) => value!.toString())).toEqual(['ticket']);
      expect(await store.get('t')).toBeUndefined();
      await store.set('short-ticket', Buffer.from('x'), 1);
      await pass(2100);
      expect(await store.take!('short-ticket')).toBeUndefined();
    });

    test('setIfAbsent writes once', async () => {
      expect(await store.setIfAbsent!('once', Buffer.from('first'), 60)).toBe(true);
      expect(await store.setIfAbsent!('once', Buffer.from('second'), 60)).toBe(false);
      expect((await store.get('once'))!.toString()).toBe('first');
    });

    test('bad arguments are typed errors', async () => {
      await expect(store.get(42 as unknown as string)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
      await expect(store.get('')).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
      await expect(store.set('k', 'text' as unknown as Buffer, 60)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
      await expect(store.set('k', Buffer.from('v'), 0)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
      await expect(store.set('k', Buffer.from('v'), 1.5)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    });

    test('calls after close reject with ERR_TLS_SESSION_STORE_CLOSED', async () => {
      await store.close();
      await expect(store.get('k')).rejects.toMatchObject({ code: 'ERR_TLS_SESSION_STORE_CLOSED' });
    });

    test('ready() resolves on an open store (every built-in store has it) and rejects after close', async () => {
      await expect(store.ready!()).resolves.toBeUndefined();
      await store.close();
      await expect(store.ready!()).rejects.toMatchObject({ code: 'ERR_TLS_SESSION_STORE_CLOSED' });
    });
  });
}
