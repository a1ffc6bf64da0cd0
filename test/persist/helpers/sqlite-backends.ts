import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
/**
 * The SQLite backends SqliteStore can run on, and which of them load in the running Node: on
 * Node 20 only better-sqlite3; on Node 22+ node:sqlite, and better-sqlite3 too when it is built
 * for this Node's ABI (scripts/node-lines.sh rebuilds it per line, as CI does).
 */
import { loadSqliteBackend, SqliteBackendName, SqliteDatabase } from '../../../lib/persist/stores/sqlite-backends';

export const SQLITE_BACKENDS: readonly SqliteBackendName[] = ['node:sqlite', 'better-sqlite3'];

/** Why each backend that does not load here does not (its PersistConfigError's message). */
export const unavailableBackends = new Map<SqliteBackendName, string>();
for (const name of SQLITE_BACKENDS) {
  try {
    loadSqliteBackend(name);
  } catch (error) {
    unavailableBackends.set(name, (error as Error).message);
  }
}

export const availableBackends: readonly SqliteBackendName[] = SQLITE_BACKENDS.filter((name) => !unavailableBackends.has(name));

export const nodeMajor = Number(process.versions.node.split('.')[0]);

/**
 * describe(`${title} [backend]`) once per backend; a backend that does not load in this Node is
 * skipped (jest counts its tests as skipped; the title says so).
 */
export function describeEachBackend(title: string, body: (backend: SqliteBackendName) => void): void {
  for (const backend of SQLITE_BACKENDS) {
    if (unavailableBackends.has(backend))
      describe.skip(`${title} [${backend}: does not load on Node ${process.version}]`, () => body(backend));
    else describe(`${title} [${backend}]`, () => body(backend));
  }
}

/**
 * Opens a database file straight through a backend (not through SqliteStore), to look at what a
 * store wrote. While a store has the file open, pass the store's own backend: two SQLite
 * libraries in one process do not see each other's POSIX locks on a file.
 */
export function openRaw(path: string, backend: SqliteBackendName, { busyTimeoutMs = 1000 } = {}): SqliteDatabase {
  return loadSqliteBackend(backend).open(path, { busyTimeoutMs, fileMustExist: true });
}

/**
 * A scratch directory for one test file's databases (made before its tests, removed after):
 * `fresh(name)` is a new path in it each call.
 */
export function scratchDatabases(prefix: string): { readonly dir: string; fresh(name: string): string } {
  let dir = '';
  let counter = 0;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), prefix));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return {
    get dir() {
      return dir;
    },
    fresh: (name) => join(dir, `${name}-${counter++}.db`),
  };
}

/** What `make` threw (the test fails if it did not throw). */
export function thrownBy(make: () => unknown): Error & { code?: string } {
  try {
    make();
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('expected it to throw');
}
