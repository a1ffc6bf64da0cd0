/**
 * The embedded persistent default store: one SQLite file (better-sqlite3), WAL mode so several
 * processes on one host can share it, an index on expiry and a periodic sweep of expired rows.
 * The file is created with mode 0600 because it holds session secrets (sealed or not).
 */
import Database from 'better-sqlite3';
import { chmodSync, closeSync, openSync } from 'node:fs';
import { invalidArgType, outOfRange } from '../errors';
import { PersistConfigError, StoreClosedError, StoreError } from './errors';
import { SessionStore, validateKey, validateTtl, validateValue } from './store';

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
}

interface Statements {
  get: Database.Statement<[string, number], { value: Buffer }>;
  set: Database.Statement<[string, Buffer, number]>;
  insertIfAbsent: Database.Statement<[string, Buffer, number, number]>;
  delete: Database.Statement<[string]>;
  sweep: Database.Statement<[number]>;
}

export class SqliteStore implements SessionStore {
  readonly path: string;
  #db: Database.Database | undefined;
  readonly #statements: Statements;
  readonly #sweepTimer: NodeJS.Timeout | undefined;

  constructor(options: SqliteStoreOptions) {
    if (options === null || typeof options !== 'object') throw invalidArgType('options', 'an object', options);
    const { path } = options;
    if (typeof path !== 'string' || path.length === 0) throw invalidArgType('options.path', 'a non-empty string', path);
    const sweepIntervalMs = options.sweepIntervalMs ?? 60_000;
    const busyTimeoutMs = options.busyTimeoutMs ?? 50;
    if (!Number.isInteger(sweepIntervalMs) || sweepIntervalMs < 0) throw outOfRange('options.sweepIntervalMs', 'an integer >= 0', sweepIntervalMs);
    if (!Number.isInteger(busyTimeoutMs) || busyTimeoutMs < 0) throw outOfRange('options.busyTimeoutMs', 'an integer >= 0', busyTimeoutMs);
    this.path = path;
    if (path !== ':memory:') createPrivateFile(path);
    try {
      this.#db = new Database(path, { timeout: busyTimeoutMs });
      this.#db.pragma('journal_mode = WAL');
      this.#db.pragma('synchronous = NORMAL');
      this.#db.exec(`
        CREATE TABLE IF NOT EXISTS tls_sessions (
          key TEXT PRIMARY KEY,
          value BLOB NOT NULL,
          expires_at INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS tls_sessions_expires_at ON tls_sessions (expires_at);
      `);
    } catch (err) {
      this.#db?.close();
      throw new PersistConfigError(`cannot open SQLite session store at ${path}: ${(err as Error).message}`);
    }
    const db = this.#db;
    this.#statements = {
      get: db.prepare('SELECT value FROM tls_sessions WHERE key = ? AND expires_at > ?'),
      set: db.prepare('INSERT OR REPLACE INTO tls_sessions (key, value, expires_at) VALUES (?, ?, ?)'),
      // Replaces only an expired row, so "absent" means "absent or expired" as in the other stores.
      insertIfAbsent: db.prepare(`INSERT INTO tls_sessions (key, value, expires_at) VALUES (?, ?, ?)
        ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
        WHERE tls_sessions.expires_at <= ?`),
      delete: db.prepare('DELETE FROM tls_sessions WHERE key = ?'),
      sweep: db.prepare('DELETE FROM tls_sessions WHERE expires_at <= ?'),
    };
    if (sweepIntervalMs > 0) {
      this.#sweepTimer = setInterval(() => this.#sweepQuietly(), sweepIntervalMs);
      this.#sweepTimer.unref();
    }
  }

  async get(key: string): Promise<Buffer | undefined> {
    validateKey(key);
    const row = this.#run(() => this.#statements.get.get(key, Date.now()));
    return row?.value;
  }

  async set(key: string, value: Buffer, ttlSeconds: number): Promise<void> {
    validateKey(key);
    validateValue(value);
    validateTtl(ttlSeconds);
    this.#run(() => this.#statements.set.run(key, value, Date.now() + ttlSeconds * 1000));
  }

  async setIfAbsent(key: string, value: Buffer, ttlSeconds: number): Promise<boolean> {
    validateKey(key);
    validateValue(value);
    validateTtl(ttlSeconds);
    const now = Date.now();
    const result = this.#run(() => this.#statements.insertIfAbsent.run(key, value, now + ttlSeconds * 1000, now));
    return result.changes === 1;
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    this.#run(() => this.#statements.delete.run(key));
  }

  /** Deletes expired rows now; resolves with how many went. */
  async sweep(): Promise<number> {
    return this.#run(() => this.#statements.sweep.run(Date.now())).changes;
  }

  async close(): Promise<void> {
    if (this.#sweepTimer) clearInterval(this.#sweepTimer);
    const db = this.#db;
    this.#db = undefined;
    db?.close();
  }

  #sweepQuietly(): void {
    // A failed sweep (e.g. a lock held by another process) is retried at the next tick.
    try {
      if (this.#db) this.#statements.sweep.run(Date.now());
    } catch {
      /* retried next interval */
    }
  }

  #run<T>(operation: () => T): T {
    if (!this.#db) throw new StoreClosedError();
    try {
      return operation();
    } catch (err) {
      throw new StoreError(`SQLite session store ${this.path}: ${(err as Error).message}`);
    }
  }
}

/** Creates the file with mode 0600 before SQLite opens it (SQLite gives -wal/-shm the same mode). */
function createPrivateFile(path: string): void {
  try {
    closeSync(openSync(path, 'a', 0o600));
    chmodSync(path, 0o600);
  } catch (err) {
    throw new PersistConfigError(`cannot create SQLite session store file ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}
