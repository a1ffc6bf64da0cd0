/**
 * SqliteStore's sweep deletes expired rows in batches of SWEEP_BATCH_ROWS, one per event-loop
 * turn: one statement for every expired row held the loop for 4.3 s at 100 000 rows
 * (`npm run bench:scale`), so a server's handshakes waited behind its own periodic sweep. Real
 * SQLite files, both libraries; expiry on an injected clock.
 */
import { SqliteStore, SWEEP_BATCH_ROWS } from '../../lib/persist/stores/sqlite';
import { manualClock } from './helpers/clock';
import { describeEachBackend, scratchDatabases } from './helpers/sqlite-backends';

const files = scratchDatabases('tls-session-sweep-');
const value = Buffer.alloc(64, 1);

describeEachBackend('sweep', (backend) => {
  test('many expired rows: all deleted (and only those), with turns for other work between batches', async () => {
    const clock = manualClock(1_700_000_000_000);
    const store = new SqliteStore({ path: files.fresh('batches'), backend, now: clock.now, sweepIntervalMs: 0 });
    try {
      const expiring = SWEEP_BATCH_ROWS * 4 + 17;
      for (let i = 0; i < expiring; i++) await store.set(`old-${i}`, value, 60);
      for (let i = 0; i < 50; i++) await store.set(`live-${i}`, value, 3600);
      clock.advance(61_000);
      // Other work: a callback that queues itself again, three times.
      const ticks: number[] = [];
      const other = (): void => {
        ticks.push(ticks.length);
        if (ticks.length < 3) setImmediate(other);
      };
      setImmediate(other);
      const swept = await store.sweep();
      expect(swept).toBe(expiring);
      // Other callbacks ran while the sweep was going on (it was not one blocking statement).
      expect(ticks.length).toBeGreaterThanOrEqual(3);
      expect(await store.sweep()).toBe(0);
      for (let i = 0; i < 50; i++) expect(await store.get(`live-${i}`)).toEqual(value);
      expect(await store.get('old-0')).toBeUndefined();
    } finally {
      await store.close();
    }
  });

  test('fewer expired rows than a batch: one statement, nothing else touched', async () => {
    const clock = manualClock(1_700_000_000_000);
    const store = new SqliteStore({ path: files.fresh('small'), backend, now: clock.now, sweepIntervalMs: 0 });
    try {
      await store.set('a', value, 60);
      await store.set('b', value, 120);
      clock.advance(90_000);
      expect(await store.sweep()).toBe(1);
      expect(await store.get('b')).toEqual(value);
    } finally {
      await store.close();
    }
  });
});
