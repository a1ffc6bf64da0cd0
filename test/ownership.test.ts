/** Exactly once: every reference taken is released once, by free(), by the GC safety net, or at teardown. */
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { ledger, Session, SessionView, setLeakDetection, SessionFreedError, SessionViewExpiredError } from '../lib';
import { native } from '../lib/binding';
import { makeSampleSessions, type SampleSessions } from './helpers/sessions';
import { blockUntilWorkerThreadGone, threadIdSlot, workerOutcome } from './helpers/worker-exit';

let samples: SampleSessions;
beforeAll(async () => {
  samples = await makeSampleSessions();
});
afterEach(() => setLeakDetection('count'));

const gc = (globalThis as { gc?: () => void }).gc;

/** Runs GC until the FinalizationRegistry has released what `done` waits for. */
async function collectUntil(done: () => boolean): Promise<void> {
  if (!gc) throw new Error('run jest with node --expose-gc (npm test does)');
  for (let i = 0; i < 100 && !done(); i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function dropSessions(der: Buffer, count: number): void {
  for (let i = 0; i < count; i++) Session.fromDER(der);
}

describe('free', () => {
  test('free() releases once: true, then false, and every later use throws SessionFreedError', () => {
    const before = ledger();
    const session = Session.fromDER(samples.server);
    expect(session.freed).toBe(false);
    expect(session.free()).toBe(true);
    expect(session.freed).toBe(true);
    expect(session.free()).toBe(false);
    session[Symbol.dispose]();
    const uses: Array<() => unknown> = [
      () => session.toDER(),
      () => session.clone(),
      () => session.id,
      () => session.protocol,
      () => session.cipher,
      () => session.expiresAt,
      () => session.peerCertificate,
      () => session.hostname,
      () => session.lend(() => 1),
      () => session.isExpired(),
    ];
    for (const use of uses) {
      expect(use).toThrow(SessionFreedError);
      expect(use).toThrow(expect.objectContaining({ code: 'ERR_TLS_SESSION_FREED' }));
    }
    const after = ledger();
    expect(after.acquired - before.acquired).toBe(1);
    expect(after.releasedBy.explicit - before.releasedBy.explicit).toBe(1);
    expect(after.live).toBe(before.live);
  });

  test('metadata read before free() is not served after it', () => {
    const session = Session.fromDER(samples.server);
    expect(session.protocol).toBe('TLSv1.2');
    session.free();
    expect(() => session.protocol).toThrow(SessionFreedError);
  });

  test('`using` frees at the end of the block', () => {
    const before = ledger();
    let escaped: Session;
    {
      using session = Session.fromDER(samples.server);
      escaped = session;
      expect(ledger().live).toBe(before.live + 1);
    }
    expect(escaped.freed).toBe(true);
    expect(ledger().live).toBe(before.live);
  });

  test('a clone is an independent reference: free the original, the clone still works, and vice versa', () => {
    const before = ledger();
    const original = Session.fromDER(samples.clientWithCertificate);
    const clone = original.clone();
    expect(ledger().live).toBe(before.live + 2);
    original.free();
    expect(clone.toDER().equals(samples.clientWithCertificate)).toBe(true);
    expect(clone.peerCertificate!.subject).toBe('CN=localhost');
    const second = clone.clone();
    clone.free();
    expect(clone.free()).toBe(false);
    using third = Session.fromDER(samples.clientWithCertificate);
    expect(second.id.equals(third.id)).toBe(true);
    second.free();
    third.free();
    const after = ledger();
    expect(after.acquired - before.acquired).toBe(4);
    expect(after.releasedBy.explicit - before.releasedBy.explicit).toBe(4);
  });

  test('Session and SessionView cannot be constructed directly', () => {
    expect(() => new (Session as unknown as new (h: number) => Session)(1)).toThrow(TypeError);
    expect(() => new (SessionView as unknown as new (h: number) => SessionView)(1)).toThrow(TypeError);
  });

  test('forged or stale handles passed straight to the binding throw, never crash', () => {
    const session = Session.fromDER(samples.server);
    const live = native.ledger().liveInThisEnvironment;
    for (const handle of [0, -1, 1, 2 ** 52, 1.5, NaN, Infinity, 123456789]) {
      expect(native.release(handle, 0)).toBe(false);
      expect(() => native.encode(handle)).toThrow(expect.objectContaining({ code: expect.stringMatching(/^ERR_TLS_SESSION_/) }));
      expect(() => native.metadata(handle)).toThrow();
      expect(() => native.upRef(handle)).toThrow();
    }
    expect(() => (native.encode as (x: unknown) => Buffer)('1')).toThrow(TypeError);
    expect(() => (native.decode as (x: unknown) => number)({ length: 3 })).toThrow(TypeError);
    expect(native.ledger().liveInThisEnvironment).toBe(live);
    session.free();
  });
});

describe('borrowed views', () => {
  test('a lent view reads metadata, cannot be freed, and expires when the scope ends', () => {
    const session = Session.fromDER(samples.clientWithCertificate);
    let kept: SessionView | undefined;
    const protocol = session.lend((view) => {
      kept = view;
      expect(view).toBeInstanceOf(SessionView);
      expect('free' in view).toBe(false);
      expect(view.valid).toBe(true);
      expect(view.toDER().equals(samples.clientWithCertificate)).toBe(true);
      return view.protocol;
    });
    expect(protocol).toBe('TLSv1.2');
    expect(kept!.valid).toBe(false);
    expect(() => kept!.protocol).toThrow(SessionViewExpiredError);
    expect(() => kept!.toDER()).toThrow(expect.objectContaining({ code: 'ERR_TLS_SESSION_VIEW_EXPIRED' }));
    expect(JSON.stringify(kept)).toBe('{"expired":true}');
    expect(session.freed).toBe(false);
    session.free();
  });

  test('clone() of a view takes an owned reference that outlives the loan', () => {
    const before = ledger();
    const session = Session.fromDER(samples.server);
    const owned = session.lend((view) => view.clone());
    session.free();
    expect(owned.toDER().equals(samples.server)).toBe(true);
    owned.free();
    expect(ledger().live).toBe(before.live);
  });

  test('freeing the owner inside the loan expires the view instead of leaving it dangling', () => {
    const session = Session.fromDER(samples.server);
    session.lend((view) => {
      expect(view.id.length).toBe(32);
      session.free();
      expect(view.valid).toBe(false);
      expect(() => view.id).toThrow(SessionViewExpiredError);
    });
    expect(session.freed).toBe(true);
  });
});

describe('garbage-collection safety net', () => {
  test('thousands of dropped sessions are released by GC and the ledger balances', async () => {
    setLeakDetection('off');
    const before = ledger();
    dropSessions(samples.server, 5000);
    expect(ledger().live).toBe(before.live + 5000);
    await collectUntil(() => ledger().live <= before.live);
    const after = ledger();
    expect(after.live).toBe(before.live);
    expect(after.releasedBy.gc - before.releasedBy.gc).toBe(5000);
    expect(after.acquired - before.acquired).toBe(after.released - before.released);
  });

  test('free() unregisters: an explicitly freed session is never released again by GC', async () => {
    setLeakDetection('off');
    const before = ledger();
    for (let i = 0; i < 1000; i++) Session.fromDER(samples.server).free();
    let rounds = 0;
    await collectUntil(() => ++rounds > 5);
    const after = ledger();
    expect(after.releasedBy.explicit - before.releasedBy.explicit).toBe(1000);
    expect(after.releasedBy.gc - before.releasedBy.gc).toBe(0);
  });

  test("'trace' names where a leaked session was created; 'count' summarises; 'off' is silent", async () => {
    // Jest gives each test file its own `process` facade whose 'warning' events never fire, so
    // the calls to process.emitWarning are what is observed.
    const warnings: Array<{ message: string }> = [];
    const spy = jest.spyOn(process, 'emitWarning').mockImplementation(((message: string, options?: { code?: string }) => {
      if (options?.code === 'TLS_SESSION_LEAK') warnings.push({ message });
    }) as typeof process.emitWarning);
    try {
      const leakHere = () => dropSessions(samples.server, 3);
      setLeakDetection('trace');
      let before = ledger();
      leakHere();
      await collectUntil(() => ledger().live <= before.live && warnings.length >= 3);
      expect(warnings).toHaveLength(3);
      expect(warnings[0]!.message).toContain('ownership.test.ts');
      expect(warnings[0]!.message).toContain('leakHere');

      warnings.length = 0;
      setLeakDetection('count');
      before = ledger();
      dropSessions(samples.server, 10);
      await collectUntil(() => ledger().live <= before.live && warnings.length >= 1);
      expect(warnings.length).toBeGreaterThanOrEqual(1);
      expect(warnings[0]!.message).toMatch(/\d+ tls-session Session\(s\) were garbage-collected without free\(\)/);

      await new Promise((resolve) => setTimeout(resolve, 20));
      warnings.length = 0;
      setLeakDetection('off');
      before = ledger();
      dropSessions(samples.server, 10);
      await collectUntil(() => ledger().live <= before.live);
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(ledger().live).toBe(before.live);
      expect(warnings).toHaveLength(0);
    } finally {
      spy.mockRestore();
    }
  });

  test('native memory is reported to V8 (its own external-memory total) and given back on free', () => {
    // process.memoryUsage().external does not include napi_adjust_external_memory on Node 20,
    // so this reads the total V8 returned to the binding's last report.
    const sessions: Session[] = [];
    const before = native.ledger().v8ExternalMemory;
    for (let i = 0; i < 2000; i++) sessions.push(Session.fromDER(samples.clientWithCertificate));
    const grown = native.ledger().v8ExternalMemory - before;
    expect(grown).toBeGreaterThan(2000 * 1024);
    for (const s of sessions) s.free();
    const shrunk = native.ledger().v8ExternalMemory - before;
    expect(shrunk).toBeLessThan(grown / 4);
  });
});

describe('environment teardown', () => {
  const workerScript = join(__dirname, 'helpers', 'leaky-worker.js');

  test.each(['exits by itself', 'is terminated'])('a worker that %s with live sessions leaves nothing live', async (how) => {
    const before = ledger();
    const byItself = how === 'exits by itself';
    const tid = threadIdSlot();
    const worker = new Worker(workerScript, {
      workerData: { der: samples.server, count: 250, wait: !byItself, tid: byItself ? tid : undefined },
      execArgv: [],
    });
    const outcome = workerOutcome<{ live: number }>(worker);
    // The main thread gets back to its event loop only once the worker thread has gone, as it
    // may under CPU load: Node then emits 'message' and 'exit' in one go (helpers/worker-exit.ts).
    if (byItself) blockUntilWorkerThreadGone(tid, 20_000);
    const message = await outcome.message;
    expect(message.live).toBe(250);
    if (byItself) expect(await outcome.exit).toBe(0);
    else await worker.terminate();
    const after = ledger();
    expect(after.live).toBe(before.live);
    expect(after.releasedBy.teardown - before.releasedBy.teardown).toBe(250);
    expect(after.acquired - before.acquired).toBe(250);
  });
});
