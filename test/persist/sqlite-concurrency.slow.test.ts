/**
 * SqliteStore shared by several real processes (fixtures/sqlite-worker.js) on real files:
 * opening while another process holds the file locked, a herd of processes opening one fresh
 * file at once (a cluster restart), writers contending for the lock, and files replaced by
 * garbage under live stores. Once per SQLite backend that loads on this Node.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readSync, closeSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../lib/persist/stores/sqlite';
import { describeEachBackend, openRaw } from './helpers/sqlite-backends';

const FIXTURE = join(__dirname, 'fixtures', 'sqlite-worker.js');

type Line = Record<string, unknown>;

interface Worker {
  child: ChildProcess;
  send(line: string): void;
  /** The first line printed so far or later that satisfies `predicate`. */
  next(predicate: (line: Line) => boolean, what: string): Promise<Line>;
  exited: Promise<number | null>;
}

let dir: string;
const workers: Worker[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tls-session-sqlite-concurrency-'));
});

afterEach(async () => {
  // Whatever a test left running (a failed assertion mid-way) goes before the next test.
  for (const worker of workers.splice(0)) {
    if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill('SIGKILL');
    await worker.exited;
  }
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function startWorker(config: Record<string, unknown>): Worker {
  const child = spawn(process.execPath, [FIXTURE, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: Line[] = [];
  const waiters: Array<() => void> = [];
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    let newline: number;
    while ((newline = stdout.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(stdout.slice(0, newline)) as Line);
      stdout = stdout.slice(newline + 1);
      waiters.splice(0).forEach((wake) => wake());
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const worker: Worker = {
    child,
    send: (line) => {
      child.stdin!.write(`${line}\n`);
    },
    next: (predicate, what) =>
      new Promise<Line>((resolve, reject) => {
        const check = (): void => {
          const found = lines.find(predicate);
          if (found) resolve(found);
          else waiters.push(check);
        };
        exited.then((code) =>
          setImmediate(() => {
            if (!lines.some(predicate)) reject(new Error(`sqlite-worker exited (code ${code}) before ${what}; stderr: ${stderr}`));
          }),
        );
        check();
      }),
    exited,
  };
  workers.push(worker);
  return worker;
}

/** Starts `count` workers and waits until every one has loaded (the slow part: TypeScript). */
async function startWorkers(count: number, config: (index: number) => Record<string, unknown>): Promise<Worker[]> {
  const started = Array.from({ length: count }, (_, index) => startWorker(config(index)));
  await Promise.all(started.map((worker) => worker.next((line) => line.ready === true, 'ready')));
  return started;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function hasSqliteHeader(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const header = Buffer.alloc(16);
    return readSync(fd, header, 0, 16, 0) === 16 && header.toString('latin1') === 'SQLite format 3\0';
  } finally {
    closeSync(fd);
  }
}

describeEachBackend('SqliteStore across processes', (backend) => {
  describe('opening a file other processes hold locked', () => {
    test('retries while a process switching the fresh file to WAL holds its write lock, then opens', async () => {
      // SQLite fails this open at once ("database is locked"), whatever the busy timeout: the
      // switch to WAL upgrades a read to a write, and SQLite does not wait on an upgrade.
      const path = join(dir, `held-then-released-${backend}.db`);
      const holder = startWorker({ mode: 'hold', path, holdMs: 400, backend });
      await holder.next((line) => line.holding === true, 'holding the lock');
      const started = Date.now();
      const store = new SqliteStore({ path, sweepIntervalMs: 0, backend });
      const elapsedMs = Date.now() - started;
      try {
        expect(store.stats().openRetries).toBeGreaterThan(0);
        expect(elapsedMs).toBeLessThan(5000);
        await store.set('k', Buffer.from('v'), 60);
        expect((await store.get('k'))!.toString()).toBe('v');
        expect(statSync(path).mode & 0o777).toBe(0o600);
      } finally {
        await store.close();
      }
      expect(await holder.exited).toBe(0);
    });

    test('past openTimeoutMs it throws a typed error saying the file is locked', async () => {
      const path = join(dir, `held-too-long-${backend}.db`);
      const holder = startWorker({ mode: 'hold', path, holdMs: 20_000, backend });
      await holder.next((line) => line.holding === true, 'holding the lock');
      const started = Date.now();
      let thrown: unknown;
      try {
        new SqliteStore({ path, sweepIntervalMs: 0, openTimeoutMs: 300, backend }).close();
      } catch (error) {
        thrown = error;
      }
      const elapsedMs = Date.now() - started;
      holder.send('release');
      expect(await holder.exited).toBe(0);
      expect(thrown).toMatchObject({
        code: 'ERR_TLS_SESSION_STORE_BUSY',
        message: expect.stringMatching(/held-too-long-[\w:-]+\.db stayed locked by another process for \d+ ms while opening/),
      });
      expect(elapsedMs).toBeGreaterThanOrEqual(300);
      expect(elapsedMs).toBeLessThan(3000);
      // Once the lock is gone, the same file opens.
      const store = new SqliteStore({ path, sweepIntervalMs: 0, backend });
      await store.close();
    });

    test('8 processes opening the same fresh file at once, 80 times over: every open succeeds', async () => {
      // A cluster's first start. Before retries, a few opens in a hundred failed "database is locked".
      const processes = 8;
      const rounds = 80;
      const herdDir = mkdtempSync(join(dir, `herd-${backend.replace(':', '')}-`));
      const herd = await startWorkers(processes, () => ({ mode: 'open', dir: herdDir, options: { backend } }));
      const errors: string[] = [];
      for (let round = 0; round < rounds; round += 1) {
        // Every process gets the line at once and opens round-<n>.db, which does not exist yet.
        herd.forEach((worker) => worker.send(`open ${round}`));
        const answers = await Promise.all(herd.map((worker) => worker.next((line) => line.round === round, `round ${round}`)));
        for (const answer of answers) if (answer.error) errors.push(`round ${round}: ${answer.error as string}`);
      }
      herd.forEach((worker) => worker.send('exit'));
      await Promise.all(herd.map((worker) => worker.next((line) => 'stats' in line, 'its stats')));
      expect(await Promise.all(herd.map((worker) => worker.exited))).toEqual(herd.map(() => 0));
      expect(errors).toEqual([]);
      for (let round = 0; round < rounds; round += 1) {
        const raw = openRaw(join(herdDir, `round-${round}.db`), backend);
        expect(raw.prepare('SELECT count(*) AS n FROM tls_sessions').get()).toEqual({ n: processes });
        raw.close();
      }
    });
  });

  describe('steady state: a lock held longer than the busy timeout', () => {
    test('a set or delete is dropped and counted, a get still reads, setIfAbsent says "locked"', async () => {
      const path = join(dir, `write-locked-${backend}.db`);
      const store = new SqliteStore({ path, sweepIntervalMs: 0, backend });
      const other = openRaw(path, backend, { busyTimeoutMs: 0 });
      let inTransaction = false;
      try {
        await store.set('kept', Buffer.from('before'), 60);
        other.exec('BEGIN IMMEDIATE'); // another writer holds the write lock
        inTransaction = true;
        other.prepare("INSERT INTO tls_sessions VALUES ('other', x'00', 0)").run();
        await expect(store.set('new', Buffer.from('x'), 60)).resolves.toBeUndefined();
        await expect(store.delete('kept')).resolves.toBeUndefined();
        // WAL: readers do not wait for writers.
        expect((await store.get('kept'))!.toString()).toBe('before');
        await expect(store.setIfAbsent('ticket', Buffer.from('t'), 60)).rejects.toMatchObject({ code: 'ERR_TLS_SESSION_STORE_BUSY' });
        expect(store.stats()).toMatchObject({ busyDropped: 2, busyMisses: 0 });
        other.exec('COMMIT');
        inTransaction = false;
        await store.set('new', Buffer.from('x'), 60);
        expect((await store.get('new'))!.toString()).toBe('x');
        expect(store.stats().busyDropped).toBe(2);
      } finally {
        if (inTransaction) other.exec('ROLLBACK');
        other.close();
        await store.close();
      }
    });

    test('4 processes writing one file as fast as they can: no operation fails', async () => {
      // Before: a few operations in ten thousand failed "database is locked" (a lock holder
      // descheduled for longer than the 50 ms busy timeout on a loaded machine).
      const path = join(dir, `write-load-${backend}.db`);
      await new SqliteStore({ path, sweepIntervalMs: 0, backend }).close(); // the load, not the open, is under test
      const writers = await startWorkers(4, (worker) => ({ mode: 'write', path, durationMs: 1500, worker, options: { backend } }));
      writers.forEach((worker) => worker.send('go'));
      const results = await Promise.all(writers.map((worker) => worker.next((line) => 'ops' in line, 'its results')));
      expect(await Promise.all(writers.map((worker) => worker.exited))).toEqual([0, 0, 0, 0]);
      const failures = results.flatMap((result) => result.failures as string[]);
      const ops = results.reduce((sum, result) => sum + (result.ops as number), 0);
      expect(failures).toEqual([]);
      expect(ops).toBeGreaterThan(1000);
      for (const result of results) {
        expect(result.stats).toMatchObject({ busyMisses: expect.any(Number), busyDropped: expect.any(Number) });
      }
    });
  });

  describe('files replaced by garbage under a live store', () => {
    const garbage = (bytes: number) => randomBytes(Math.max(bytes, 4096));

    test('db and -wal overwritten in place under two stores: no call fails, the file is recreated (0600), both converge', async () => {
      const path = join(dir, `garbage-two-stores-${backend}.db`);
      const a = new SqliteStore({ path, sweepIntervalMs: 0, backend });
      const b = new SqliteStore({ path, sweepIntervalMs: 0, backend });
      try {
        for (let i = 0; i < 50; i += 1) await a.set(`old-${i}`, Buffer.alloc(300, i), 60);
        expect((await b.get('old-7'))!.equals(Buffer.alloc(300, 7))).toBe(true);
        // Same inodes, new bytes; the -shm is left alone (SQLite maps it: truncating it is fatal).
        writeFileSync(path, garbage(statSync(path).size));
        writeFileSync(`${path}-wal`, garbage(statSync(`${path}-wal`).size));

        const failures: string[] = [];
        const attempt = async <T>(call: () => Promise<T>): Promise<T | undefined> => {
          try {
            return await call();
          } catch (error) {
            failures.push(`${(error as { code?: string }).code} ${(error as Error).message}`);
            return undefined;
          }
        };
        let converged = false;
        for (let i = 0; i < 60 && !converged; i += 1) {
          await attempt(() => b.set(`from-b-${i}`, Buffer.from('b'), 60));
          await attempt(() => a.set(`from-a-${i}`, Buffer.from('a'), 60));
          const seenByA = await attempt(() => a.get(`from-b-${i}`));
          const seenByB = await attempt(() => b.get(`from-a-${i}`));
          converged = seenByA?.toString() === 'b' && seenByB?.toString() === 'a';
          if (!converged) await sleep(50);
        }
        expect(failures).toEqual([]);
        expect(converged).toBe(true);
        expect(a.stats().recreated + b.stats().recreated).toBeGreaterThanOrEqual(1);
        expect(hasSqliteHeader(path) || statSync(path).size === 0).toBe(true);
        for (const file of [path, `${path}-wal`, `${path}-shm`]) expect(statSync(file).mode & 0o777).toBe(0o600);
        const fresh = new SqliteStore({ path, sweepIntervalMs: 0, backend });
        expect(await fresh.get('old-7')).toBeUndefined(); // a cache: what was there is gone
        await fresh.close();
      } finally {
        await a.close();
        await b.close();
      }
    });

    test.each([
      [
        'overwritten in place',
        (path: string) => {
          writeFileSync(path, garbage(statSync(path).size));
          writeFileSync(`${path}-wal`, garbage(statSync(`${path}-wal`).size));
        },
      ],
      [
        'replaced by other files (rename)',
        (path: string) => {
          for (const file of [path, `${path}-wal`]) {
            writeFileSync(`${file}.new`, garbage(8192));
            renameSync(`${file}.new`, file);
          }
        },
      ],
    ])('db and -wal %s under a single store: it notices within a second and recreates the file', async (how, damage) => {
      const path = join(dir, `garbage-single-${how.split(' ')[0]}-${backend}.db`);
      const store = new SqliteStore({ path, sweepIntervalMs: 0, backend });
      try {
        await store.set('old', Buffer.from('old'), 60);
        damage(path);
        // SQLite serves this connection from its page cache and reports nothing, while any other
        // process (or this one after a restart) finds garbage. Keep using it past one file check.
        for (let i = 0; i < 30; i += 1) {
          await store.set(`new-${i}`, Buffer.from('new'), 60);
          await sleep(50);
        }
        await store.set('after', Buffer.from('after'), 60);
      } finally {
        await store.close();
      }
      const fresh = new SqliteStore({ path, sweepIntervalMs: 0, backend });
      try {
        expect((await fresh.get('after'))!.toString()).toBe('after');
        expect(await fresh.get('old')).toBeUndefined(); // recreated empty: a cache loses only handshakes
        expect(statSync(path).mode & 0o777).toBe(0o600);
      } finally {
        await fresh.close();
      }
      expect(store.stats()).toMatchObject({ recreated: 1, busyMisses: 0, busyDropped: 0 });
    });
  });
});
