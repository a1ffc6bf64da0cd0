/**
 * The embedded persistent default store: one SQLite file, WAL mode so several processes on one
 * host can share it, an index on expiry and a periodic sweep of expired rows. The file is
 * created with mode 0600 because it holds session secrets (sealed or not).
 *
 * This file holds SqliteStore, its options and its connection: opening the file (with retries),
 * running statements, deciding when to recover. The parts it uses, each in its own file:
 *  - sqlite-backends.ts: node:sqlite and better-sqlite3 behind one interface, the one way a file
 *    is opened (chosen and loaded when a store is constructed; both write the same file);
 *  - sqlite-schema.ts: the table and its version (PRAGMA user_version): written at creation, an
 *    older one migrated at open, a newer one (or another application's database) refused with
 *    ERR_TLS_SESSION_STORE_SCHEMA;
 *  - sqlite-recovery.ts: detecting a damaged or replaced file and recreating it, under a lock file;
 *  - sqlite-checkpointer.ts (and sqlite-checkpoint-thread.ts): `checkpoint: 'thread'`;
 *  - sqlite-files.ts: what all of them share (lock and damage errors, statements, file mode 0600).
 * Tools that look at a store use sqlite-file-reader.ts (openSqliteStoreFile), which reads
 * without changing the file.
 *
 * Several processes (a cluster's workers) may open the file at once: opening retries while
 * another process holds it locked, and in steady state a lock held too long is counted, never
 * thrown into a handshake. A file found damaged or replaced is reopened or recreated while the
 * store is live. docs/PERSISTENCE.md ("SQLite across processes") has the details.
 */
import { invalidArgType } from '../../errors';
import { choiceOption, integerOption, optionsObject } from '../options';
import { clockOption, type Clock } from '../clock';
import { PersistConfigError, StoreClosedError, StoreError } from '../errors';
import {
  loadSqliteBackend,
  SQLITE_BACKEND_OPTIONS,
  SqliteBackend,
  SqliteBackendName,
  SqliteBackendOption,
  SqliteDatabase,
  SqliteStatement,
} from './sqlite-backends';
import { checkSqliteSchema, ensureSqliteSchema, isSchemaError, readSqliteSchema } from './sqlite-schema';
import { CheckpointThread, startCheckpointThread } from './sqlite-checkpointer';
import {
  closeQuietly,
  createPrivateFile,
  DELETE_SQL,
  ENTRIES_SQL,
  FileIdentity,
  fileIdentity,
  isDamaged,
  isLocked,
  SQLITE_BUSY_CODE,
  SWEEP_BATCH_SQL,
} from './sqlite-files';
import {
  acquireRecoveryLock,
  deleteDatabaseFiles,
  hasDatabaseHeader,
  isLockTaken,
  probeDatabase,
  recoveryInProgress,
  releaseRecoveryLock,
} from './sqlite-recovery';
import { SessionStore, StoredEntry, validateKey, validateKeyToDelete, validateTtl, validateValue } from './contract';

export interface SqliteStoreOptions {
  /** Database file; created (mode 0600) when missing. */
  path: string;
  /** How often expired rows are deleted (default 60 000 ms; 0 disables the timer). */
  sweepIntervalMs?: number;
  /**
   * How long a write waits for another process's lock (default 50 ms). Short on purpose:
   * calls run on the event loop, and a handshake must not wait long for the store.
   */
  busyTimeoutMs?: number;
  /**
   * How long opening keeps retrying while other processes hold the file locked (default 5000 ms),
   * e.g. every worker of a cluster opening a fresh file at once. The constructor is synchronous,
   * so it blocks for up to this long, then throws a StoreError with code ERR_TLS_SESSION_STORE_BUSY.
   */
  openTimeoutMs?: number;
  /**
   * The SQLite library (default 'auto': the built-in node:sqlite from Node 24, better-sqlite3
   * on Node 20 and 22, falling back to the other when one does not load). Both read and write
   * the same file. A library that is not available is a PersistConfigError saying what to install.
   */
  backend?: SqliteBackendOption;
  /**
   * SQLite's `synchronous` setting (default 'off'). With 'off' SQLite never calls fsync: a write
   * and the WAL checkpoints that SQLite runs every ~1000 pages of log cost no disk flush on the
   * event loop (with 'normal', each checkpoint's fsyncs stalled the loop 15-34 ms). A process
   * crash loses nothing (the OS has the writes); a power loss or OS crash may lose the last
   * sessions or damage the file, which the store detects and recreates: for a session cache that
   * costs full handshakes only. 'normal' flushes at every checkpoint (WAL's usual setting).
   */
  synchronous?: 'off' | 'normal';
  /**
   * Where WAL checkpoints run (default 'inline'): SQLite's auto-checkpoint, on the event loop,
   * every ~1000 pages of WAL (with synchronous 'off' that is a copy into the page cache, no
   * fsync: a few ms every few hundred writes). 'thread': a worker thread opens its own
   * connection every `checkpointIntervalMs` and runs a PASSIVE checkpoint (never blocks writers
   * or readers), and the event loop's connection never checkpoints (wal_autocheckpoint = 0).
   * Measured on a loaded 2-core machine, 'thread' made writes slower (41-44 µs vs 33 µs each:
   * the thread competes for the cores); it pays on a machine with idle cores. If the thread
   * cannot start or dies, the store goes back to 'inline' by itself.
   */
  checkpoint?: 'thread' | 'inline';
  /** How often the checkpoint thread runs (default 1000 ms). */
  checkpointIntervalMs?: number;
  /**
   * The clock expiry runs on (default Date.now; milliseconds since the epoch, as clock.ts): the
   * expires_at a write stores, the rows get/take/setIfAbsent treat as expired, and what a sweep
   * (the timer's or sweep()) deletes. For tests and simulations: give the clock given to
   * attachSessionStore, ClientSessionCache or TicketKeyRing. The file is shared: every process
   * writing it should run on the same clock. Lock waits, open retries and file checks stay on the
   * real clock.
   */
  now?: Clock;
}

/** The settings a SqliteStore's connection runs with, as SQLite reports them. */
export interface SqliteStoreSettings {
  journalMode: string;
  /** 0 off, 1 normal, 2 full. */
  synchronous: number;
  /** Pages of WAL after which a write on the event loop runs a checkpoint (0: never, the checkpoint thread does). */
  walAutocheckpoint: number;
  /** Where checkpoints run now. */
  checkpoint: 'thread' | 'inline';
}

/** What the store absorbed instead of failing a caller (counters since construction). */
export interface SqliteStoreStats {
  /** The SQLite library this store runs on (as `store.backend`). */
  backend: SqliteBackendName;
  /** Opening attempts that found the file locked by another process and were retried. */
  openRetries: number;
  /** get() calls answered "absent" because the file stayed locked longer than busyTimeoutMs. */
  busyMisses: number;
  /** set() and delete() calls dropped (nothing written) because the file stayed locked longer than busyTimeoutMs. */
  busyDropped: number;
  /** Times the file was found missing or not a usable database (garbage, corrupt) and was (deleted and) recreated empty. */
  recreated: number;
  /**
   * Times the store closed and reopened the file without deleting it: it had been replaced by a
   * good database (e.g. recreated by another process), or a fresh connection found it sound.
   */
  reopened: number;
}

interface Statements {
  get: SqliteStatement;
  set: SqliteStatement;
  insertIfAbsent: SqliteStatement;
  delete: SqliteStatement;
  take: SqliteStatement;
  sweep: SqliteStatement;
  entries: SqliteStatement;
}

interface Connection {
  db: SqliteDatabase;
  statements: Statements;
  /** Undefined for ':memory:'. */
  identity: FileIdentity | undefined;
}

/** How often an operation checks that the file at `path` is still the database it opened. */
const FILE_CHECK_INTERVAL_MS = 1000;
/** How soon after a failed reopen or recovery the next operation tries again. */
const REOPEN_RETRY_MS = 100;
const MAX_OPEN_BACKOFF_MS = 100;

/**
 * Most rows one sweep statement deletes. One statement for every expired row held the event loop
 * (and the file's write lock) for 4.3 s at 100 000 rows (`npm run bench:scale`); batches of this
 * size take milliseconds each.
 */
export const SWEEP_BATCH_ROWS = 256;

export class SqliteStore implements SessionStore {
  /** Each call does its work (a lock wait included, up to busyTimeoutMs) before it returns: nothing left for a timer to bound. */
  readonly settlesWithinMs = 0;
  readonly path: string;
  /** The SQLite library this store runs on. */
  readonly backend: SqliteBackendName;
  readonly #sqlite: SqliteBackend;
  readonly #busyTimeoutMs: number;
  /** Expiry decisions only (clock.ts); timeouts and retries use the real clock. */
  readonly #now: Clock;
  readonly #synchronous: 'off' | 'normal';
  /** The checkpoint thread while it runs (sqlite-checkpointer.ts). */
  #checkpointer: CheckpointThread | undefined;
  #connection: Connection | undefined;
  #closed = false;
  /** Set while no connection is open after a failed reopen: when to try again, and why it failed. */
  #unavailable: { retryAt: number; error: Error | undefined } | undefined;
  #nextFileCheckAt = 0;
  readonly #stats: Omit<SqliteStoreStats, 'backend'> = { openRetries: 0, busyMisses: 0, busyDropped: 0, recreated: 0, reopened: 0 };
  readonly #sweepTimer: NodeJS.Timeout | undefined;
  #sweeping = false;

  constructor(options: SqliteStoreOptions) {
    optionsObject(options);
    const { path } = options;
    if (typeof path !== 'string' || path.length === 0) throw invalidArgType('options.path', 'a non-empty string', path);
    const sweepIntervalMs = integerOption(options.sweepIntervalMs, 'options.sweepIntervalMs', 60_000, 0);
    const busyTimeoutMs = integerOption(options.busyTimeoutMs, 'options.busyTimeoutMs', 50, 0);
    const openTimeoutMs = integerOption(options.openTimeoutMs, 'options.openTimeoutMs', 5000, 0);
    this.#now = clockOption(options.now);
    const backend = choiceOption(options.backend, 'options.backend', SQLITE_BACKEND_OPTIONS, 'auto');
    const synchronous = choiceOption(options.synchronous, 'options.synchronous', ['off', 'normal'] as const, 'off');
    const checkpoint = choiceOption(options.checkpoint, 'options.checkpoint', ['inline', 'thread'] as const, 'inline');
    const checkpointIntervalMs = integerOption(options.checkpointIntervalMs, 'options.checkpointIntervalMs', 1000, 1);
    this.#sqlite = loadSqliteBackend(backend);
    this.backend = this.#sqlite.name;
    this.path = path;
    this.#busyTimeoutMs = busyTimeoutMs;
    this.#synchronous = synchronous;
    if (checkpoint === 'thread' && path !== ':memory:') this.#checkpointer = this.#startCheckpointer(checkpointIntervalMs);
    try {
      this.#connection = this.#openWithRetry(openTimeoutMs, { waitForRecovery: true });
    } catch (err) {
      void this.#checkpointer?.stop();
      this.#checkpointer = undefined;
      if (err instanceof PersistConfigError || (err instanceof StoreError && (isLocked(err) || isSchemaError(err)))) throw err;
      throw new PersistConfigError(`cannot open SQLite session store at ${path}: ${(err as Error).message}`);
    }
    this.#nextFileCheckAt = Date.now() + FILE_CHECK_INTERVAL_MS;
    if (sweepIntervalMs > 0) {
      this.#sweepTimer = setInterval(() => this.#sweepQuietly(), sweepIntervalMs);
      this.#sweepTimer.unref();
    }
  }

  /** Ready once constructed (the constructor opened the file): SessionStore's optional ready(). */
  async ready(): Promise<void> {
    if (this.#closed) throw new StoreClosedError();
  }

  async get(key: string): Promise<Buffer | undefined> {
    return this.getNow(key);
  }

  /** get(), answered before returning (SessionStore#getNow): both SQLite libraries are synchronous. */
  getNow(key: string): Buffer | undefined {
    validateKey(key);
    const row = this.#run(
      (s) => s.get.get(key, this.#now()) as { value: Buffer } | undefined,
      () => {
        this.#stats.busyMisses += 1;
        return undefined;
      },
    );
    return row?.value;
  }

  async set(key: string, value: Buffer, ttlSeconds: number): Promise<void> {
    validateKey(key);
    validateValue(value);
    validateTtl(ttlSeconds);
    this.#run(
      (s) => s.set.run(key, value, this.#now() + ttlSeconds * 1000),
      () => {
        this.#stats.busyDropped += 1;
      },
    );
  }

  async setIfAbsent(key: string, value: Buffer, ttlSeconds: number): Promise<boolean> {
    validateKey(key);
    validateValue(value);
    validateTtl(ttlSeconds);
    const now = this.#now();
    // Not a handshake path (TicketKeyRing retries a failed rotation), and "false" would claim
    // another process wrote the key: a lock is reported as such.
    const result = this.#run(
      (s) => s.insertIfAbsent.run(key, value, now + ttlSeconds * 1000, now),
      () => {
        throw this.#busyError('setIfAbsent');
      },
    );
    return result.changes === 1;
  }

  async take(key: string): Promise<Buffer | undefined> {
    validateKey(key);
    const row = this.#run(
      (s) => s.take.get(key) as { value: Buffer; expires_at: number } | undefined,
      () => {
        this.#stats.busyMisses += 1;
        return undefined;
      },
    );
    return row !== undefined && Number(row.expires_at) > this.#now() ? row.value : undefined;
  }

  async delete(key: string): Promise<void> {
    validateKeyToDelete(key);
    // A dropped delete leaves a record that is refused again on its next lookup and expires anyway.
    this.#run(
      (s) => s.delete.run(key),
      () => {
        this.#stats.busyDropped += 1;
      },
    );
  }

  /**
   * Deletes expired rows now; resolves with how many went. In batches of SWEEP_BATCH_ROWS, each in
   * its own event-loop turn: handshakes (and other processes' writes) go on between them.
   */
  async sweep(): Promise<number> {
    let swept = 0;
    for (;;) {
      const changes = Number(
        this.#run(
          (s) => s.sweep.run(this.#now(), SWEEP_BATCH_ROWS),
          () => {
            throw this.#busyError('sweep');
          },
        ).changes,
      );
      swept += changes;
      if (changes < SWEEP_BATCH_ROWS || this.#closed) return swept;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /**
   * Every row, expired ones not yet swept included (their expiresAt is in the past), in key
   * order. Read-only: for tools that list or check a store (`tls-session store`), not for the
   * handshake path. A file locked past the busy timeout is a StoreError (ERR_TLS_SESSION_STORE_BUSY).
   */
  async *entries(): AsyncGenerator<StoredEntry> {
    const rows = this.#run(
      (s) => s.entries.all() as { key: string; value: Buffer; expires_at: number }[],
      () => {
        throw this.#busyError('entries');
      },
    );
    for (const row of rows) yield { key: row.key, value: row.value, expiresAt: new Date(Number(row.expires_at)) };
  }

  /** What SQLite reports for this store's connection: journal mode, synchronous, WAL auto-checkpoint. */
  settings(): SqliteStoreSettings {
    return this.#run(
      (_s, db) => ({
        journalMode: String(db.pragma('journal_mode')),
        synchronous: Number(db.pragma('synchronous')),
        walAutocheckpoint: Number(db.pragma('wal_autocheckpoint')),
        checkpoint: this.#checkpointer ? 'thread' : 'inline',
      }),
      () => {
        throw this.#busyError('settings');
      },
    );
  }

  /** Locks and damage the store absorbed instead of failing callers (see SqliteStoreStats). */
  stats(): SqliteStoreStats {
    return { backend: this.backend, ...this.#stats };
  }

  async close(): Promise<void> {
    if (this.#sweepTimer) clearInterval(this.#sweepTimer);
    this.#closed = true;
    const checkpointer = this.#checkpointer;
    this.#checkpointer = undefined;
    if (checkpointer) await checkpointer.stop();
    this.#closeConnection();
  }

  #sweepQuietly(): void {
    // One sweep at a time; a failed one (e.g. a lock held by another process) is retried at the next tick.
    if (this.#closed || this.#sweeping) return;
    this.#sweeping = true;
    this.sweep()
      .catch(() => undefined)
      .finally(() => {
        this.#sweeping = false;
      });
  }

  /**
   * Runs one statement. `whenLocked` answers for it when the file stays locked past the busy
   * timeout (or is being recovered by another process): a lock is the normal price of sharing
   * the file, so it must not fail a handshake.
   */
  #run<T>(operation: (statements: Statements, db: SqliteDatabase) => T, whenLocked: () => T): T {
    if (this.#closed) throw new StoreClosedError();
    this.#checkFileQuietly();
    for (let attempt = 1; ; attempt += 1) {
      const connection = this.#connection ?? this.#reconnect();
      if (!connection) {
        const reason = this.#unavailable?.error;
        if (reason) throw new StoreError(`SQLite session store ${this.path} is unavailable: ${reason.message}`);
        return whenLocked();
      }
      try {
        return operation(connection.statements, connection.db);
      } catch (err) {
        if (isLocked(err)) return whenLocked();
        // Once: if the recovered file fails the same way, something else is wrong; report it.
        if (attempt === 1 && isDamaged(err) && connection.identity) {
          this.#recover();
          continue;
        }
        throw new StoreError(`SQLite session store ${this.path}: ${(err as Error).message}`);
      }
    }
  }

  /** After a failed reopen: tries again once REOPEN_RETRY_MS have passed. */
  #reconnect(): Connection | undefined {
    if (this.#unavailable && Date.now() < this.#unavailable.retryAt) return undefined;
    this.#recover();
    return this.#connection;
  }

  /**
   * Notices a file replaced under the store (another process recreated it, someone moved a file
   * over it) or overwritten in place: SQLite serves this connection from its page cache and
   * would not notice until much later, while every other process sees the new file.
   */
  #checkFileQuietly(): void {
    const connection = this.#connection;
    if (!connection?.identity) return;
    const now = Date.now();
    if (now < this.#nextFileCheckAt) return;
    this.#nextFileCheckAt = now + FILE_CHECK_INTERVAL_MS;
    const current = fileIdentity(this.path);
    if (!current || current.dev !== connection.identity.dev || current.ino !== connection.identity.ino || !hasDatabaseHeader(this.path)) {
      this.#recover();
    }
  }

  /**
   * The file is damaged, or is no longer the one this connection opened. Closes the connection
   * and, holding a lock file that other processes respect, either reopens the file (it is a good
   * database: another process already recreated it, or the error was this connection's alone) or
   * deletes it and creates an empty one. Deleting is fine because this is a cache: losing it
   * costs full handshakes, nothing else. On failure the store stays unavailable and the next
   * operation after REOPEN_RETRY_MS tries again.
   */
  #recover(): void {
    this.#closeConnection();
    this.#unavailable = undefined;
    let lock: number;
    try {
      lock = acquireRecoveryLock(this.path);
    } catch (err) {
      // Another process is recovering this file right now: treated like a lock held.
      this.#unavailable = { retryAt: Date.now() + REOPEN_RETRY_MS, error: isLockTaken(err) ? undefined : (err as Error) };
      return;
    }
    try {
      const probed = probeDatabase(this.#sqlite, this.path, this.#busyTimeoutMs);
      if (probed === 'damaged') deleteDatabaseFiles(this.path);
      if (probed === 'good') this.#stats.reopened += 1;
      else this.#stats.recreated += 1;
      // On the event loop: a short deadline, the next operation retries if it is not enough.
      this.#connection = this.#openWithRetry(this.#busyTimeoutMs, { waitForRecovery: false });
      this.#nextFileCheckAt = Date.now() + FILE_CHECK_INTERVAL_MS;
    } catch (err) {
      this.#unavailable = { retryAt: Date.now() + REOPEN_RETRY_MS, error: isLocked(err) ? undefined : (err as Error) };
    } finally {
      releaseRecoveryLock(this.path, lock);
    }
  }

  /**
   * Opens the file, retrying with backoff while another process holds it locked. Locks are
   * not all waited out by SQLite's busy timeout: switching a fresh file to WAL upgrades a read
   * to a write, and SQLite fails that at once ("database is locked") if another process holds
   * the write lock, whatever the timeout. A cluster whose workers start together does this.
   * `waitForRecovery` also waits while another process recreates a damaged file.
   */
  #openWithRetry(timeoutMs: number, { waitForRecovery }: { waitForRecovery: boolean }): Connection {
    const started = Date.now();
    let backoffMs = 2;
    for (;;) {
      try {
        return openConnection(this.#sqlite, this.path, this.#busyTimeoutMs, this.#synchronous, this.#checkpointer ? 0 : 1000);
      } catch (err) {
        const retryable = isLocked(err) || (waitForRecovery && isDamaged(err) && recoveryInProgress(this.path));
        if (!retryable) throw err;
        const elapsedMs = Date.now() - started;
        if (elapsedMs >= timeoutMs) {
          throw new StoreError(
            `SQLite session store ${this.path} stayed locked by another process for ${elapsedMs} ms while opening`,
            SQLITE_BUSY_CODE,
          );
        }
        this.#stats.openRetries += 1;
        // Jitter: processes that collided once must not retry in lockstep.
        sleepSync(Math.min(backoffMs * (0.5 + Math.random()), timeoutMs - elapsedMs));
        backoffMs = Math.min(backoffMs * 2, MAX_OPEN_BACKOFF_MS);
      }
    }
  }

  /** Starts the checkpoint thread; if it dies, auto-checkpoints come back on the event loop's connection. */
  #startCheckpointer(intervalMs: number): CheckpointThread | undefined {
    const thread = startCheckpointThread(
      { path: this.path, backend: this.backend, intervalMs, busyTimeoutMs: this.#busyTimeoutMs, synchronous: this.#synchronous },
      () => {
        if (this.#checkpointer !== thread) return;
        this.#checkpointer = undefined;
        if (this.#closed) return;
        try {
          this.#connection?.db.pragma('wal_autocheckpoint = 1000');
        } catch {
          /* the next connection opened gets it */
        }
      },
    );
    return thread;
  }

  #closeConnection(): void {
    const connection = this.#connection;
    this.#connection = undefined;
    // A damaged file may fail its final checkpoint; the handle is released regardless.
    closeQuietly(connection?.db);
  }

  #busyError(operation: string): StoreError {
    return new StoreError(
      `SQLite session store ${this.path} stayed locked for more than ${this.#busyTimeoutMs} ms (${operation})`,
      SQLITE_BUSY_CODE,
    );
  }
}

function openConnection(
  sqlite: SqliteBackend,
  path: string,
  busyTimeoutMs: number,
  synchronous: 'off' | 'normal',
  walAutocheckpoint: number,
): Connection {
  let identity: FileIdentity | undefined;
  if (path !== ':memory:') {
    createPrivateFile(path);
    // Taken before SQLite opens the file: if it is replaced in between, the next file check
    // sees a mismatch and reopens, instead of trusting a file this connection never saw.
    identity = fileIdentity(path);
  }
  const db = sqlite.open(path, { busyTimeoutMs });
  try {
    // Before anything is written: a file of a newer schema (or another application's) is refused unchanged.
    checkSqliteSchema(readSqliteSchema(db), path);
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${synchronous === 'off' ? 'OFF' : 'NORMAL'}`);
    db.pragma(`wal_autocheckpoint = ${walAutocheckpoint}`);
    // Creates the table in a new file, migrates an older one (sqlite-schema.ts).
    ensureSqliteSchema(db, path);
    const statements: Statements = {
      get: db.prepare('SELECT value FROM tls_sessions WHERE key = ? AND expires_at > ?'),
      set: db.prepare('INSERT OR REPLACE INTO tls_sessions (key, value, expires_at) VALUES (?, ?, ?)'),
      // Replaces only an expired row, so "absent" means "absent or expired" as in the other stores.
      insertIfAbsent: db.prepare(`INSERT INTO tls_sessions (key, value, expires_at) VALUES (?, ?, ?)
        ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
        WHERE tls_sessions.expires_at <= ?`),
      delete: db.prepare(DELETE_SQL),
      // One statement: SQLite's write lock makes it atomic across processes sharing the file.
      take: db.prepare('DELETE FROM tls_sessions WHERE key = ? RETURNING value, expires_at'),
      sweep: db.prepare(SWEEP_BATCH_SQL),
      entries: db.prepare(ENTRIES_SQL),
    };
    return { db, statements, identity };
  } catch (err) {
    db.close();
    throw err;
  }
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/** Blocks the thread: opening is synchronous (the constructor), as are both SQLite libraries. */
function sleepSync(ms: number): void {
  if (ms > 0) Atomics.wait(sleepCell, 0, 0, ms);
}
