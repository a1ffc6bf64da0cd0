/** StoreGateway: the one way the persistence consumers call a store (ready, budget, one failure path). */
import { MemoryStore } from '../../lib/persist';
import { StoreTimeoutError } from '../../lib/persist/errors';
import type { SessionStore } from '../../lib/persist/stores/contract';
import { StoreGateway } from '../../lib/persist/stores/gateway';

/** A store whose ready() settles when the test says; records the order of calls. */
function slowStartingStore(): { store: SessionStore; startUp: (error?: Error) => void; log: string[] } {
  const log: string[] = [];
  let settle!: (error?: Error) => void;
  const started = new Promise<void>((resolve, reject) => {
    settle = (error) => (error ? reject(error) : resolve());
  });
  const inner = new MemoryStore();
  const store: SessionStore = {
    ready: () => started,
    get: async (key) => {
      log.push(`get ${key}`);
      return inner.get(key);
    },
    set: (key, value, ttl) => inner.set(key, value, ttl),
    delete: (key) => inner.delete(key),
    close: () => inner.close(),
  };
  return { store, startUp: (error) => settle(error), log };
}

test('calls wait for ready(); a failed ready() is counted and reported once, and calls go on', async () => {
  const failures: string[] = [];
  const reported: string[] = [];
  const { store, startUp, log } = slowStartingStore();
  const gateway = new StoreGateway(store, { onFailure: (e) => failures.push(e.message), onError: (e) => reported.push(e.message) });
  const pending = gateway.call('get', 1000, (s) => s.get('k'));
  await new Promise((resolve) => setImmediate(resolve));
  expect(log).toEqual([]); // not before the store could connect
  startUp(new Error('no connection yet'));
  await expect(pending).resolves.toBeUndefined();
  expect(log).toEqual(['get k']);
  expect([failures, reported]).toEqual([['no connection yet'], ['no connection yet']]);
  expect(gateway.start()).toBeUndefined();
});

test('a call over its budget rejects with StoreTimeoutError naming the operation; a synchronous throw becomes a rejection', async () => {
  const hanging: SessionStore = {
    get: () => new Promise(() => {}),
    set: () => {
      throw new TypeError('bad value');
    },
    delete: async () => {},
    close: async () => {},
  };
  const gateway = new StoreGateway(hanging);
  await expect(gateway.call('get', 20, (s) => s.get('k'))).rejects.toThrow(new StoreTimeoutError('get', 20));
  const thrown = gateway.call('set', 20, (s) => s.set('k', Buffer.alloc(1), 1));
  await expect(thrown).rejects.toThrow('bad value');
});

test('no deadline timer for a store that declares its calls settle within the budget', async () => {
  const spy = jest.spyOn(global, 'setTimeout');
  try {
    const bounded = Object.assign(new MemoryStore(), { settlesWithinMs: 0 });
    const unbounded: SessionStore = { get: async () => undefined, set: async () => {}, delete: async () => {}, close: async () => {} };
    const before = spy.mock.calls.length;
    await new StoreGateway(bounded).call('get', 50, (s) => s.get('k'));
    expect(spy.mock.calls.length).toBe(before);
    await new StoreGateway(unbounded).call('get', 50, (s) => s.get('k'));
    expect(spy.mock.calls.length).toBe(before + 1);
    // Declared, but over the budget: the budget still holds.
    await new StoreGateway(Object.assign(new MemoryStore(), { settlesWithinMs: 5000 })).call('get', 50, (s) => s.get('k'));
    expect(spy.mock.calls.length).toBe(before + 2);
  } finally {
    spy.mockRestore();
  }
});

test('fail() counts and reports; a throwing onError is swallowed', async () => {
  let failures = 0;
  const failing: SessionStore = {
    get: async () => {
      throw new Error('backend down');
    },
    set: async () => {},
    delete: async () => {},
    close: async () => {},
  };
  const gateway = new StoreGateway(failing, {
    onFailure: () => failures++,
    onError: () => {
      throw new Error('listener bug');
    },
  });
  const outcome = await gateway
    .call('get', 50, (s) => s.get('k'))
    .then(
      () => 'answered',
      (error: Error) => {
        gateway.fail(error);
        return 'failed';
      },
    );
  expect(outcome).toBe('failed');
  expect(failures).toBe(1);
});

test('a store that declares no finite bound gets the timer; the property is read once, at construction', async () => {
  let reads = 0;
  const store: SessionStore = { get: async () => undefined, set: async () => {}, delete: async () => {}, close: async () => {} };
  Object.defineProperty(store, 'settlesWithinMs', {
    get: () => {
      reads += 1;
      return Number.NaN;
    },
  });
  const spy = jest.spyOn(global, 'setTimeout');
  try {
    const gateway = new StoreGateway(store);
    const before = spy.mock.calls.length;
    await gateway.call('get', 50, (s) => s.get('k'));
    await gateway.call('get', 50, (s) => s.get('k'));
    expect(spy.mock.calls.length).toBe(before + 2);
    expect(reads).toBe(1);
  } finally {
    spy.mockRestore();
  }
});
