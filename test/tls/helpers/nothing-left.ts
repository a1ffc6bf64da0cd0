/** Per-test leak check for the TLS engine suites: the session ledger and the live native TLS objects. */
import { ledger, liveTlsObjects } from '../../../lib';

export interface NothingLeftOptions {
  /**
   * Poll up to this long for liveTlsObjects() to come back before checking (a server-side
   * connection finishes closing a little after its client saw 'close'); without it, one
   * setImmediate turn lets closes and deferred frees run.
   */
  settleMs?: number;
}

/** Registers beforeEach/afterEach hooks: every test must leave the ledger and liveTlsObjects() as it found them. */
export function expectNothingLeftAfterEach(options: NothingLeftOptions = {}): void {
  let ledgerBefore: ReturnType<typeof ledger>;
  let objectsBefore: number;
  beforeEach(() => {
    ledgerBefore = ledger();
    objectsBefore = liveTlsObjects();
  });
  afterEach(async () => {
    const { settleMs } = options;
    if (settleMs === undefined) {
      await new Promise((r) => setImmediate(r));
    } else {
      for (let waited = 0; waited < settleMs && liveTlsObjects() !== objectsBefore; waited += 10)
        await new Promise((r) => setTimeout(r, 10));
    }
    expect(ledger().live).toBe(ledgerBefore.live);
    expect(liveTlsObjects()).toBe(objectsBefore);
  });
}
