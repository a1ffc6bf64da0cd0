/**
 * The one way attachSessionStore, ClientSessionCache and TicketKeyRing call a SessionStore: after
 * the store's ready() (never before it could connect), within a time budget (no timer when the
 * store declares that its calls settle within it), and with one failure path: counted by the
 * consumer (`onFailure`) and reported to the user's `onError`, which may throw without reaching
 * Node's callbacks or a connection.
 */
import { StoreError, StoreTimeoutError } from '../errors';
import type { SessionStore } from './contract';
import type { WrittenKeys } from './written-keys';

export interface StoreGatewayOptions {
  /** The user's error listener; its throw is swallowed (it runs inside Node's TLS callbacks). */
  onError?: ((error: Error) => void) | undefined;
  /** Counts a failed store call (and a failed ready()) in the consumer's stats. */
  onFailure?: (error: Error) => void;
}

export class StoreGateway {
  readonly store: SessionStore;
  readonly #onError: ((error: Error) => void) | undefined;
  readonly #onFailure: ((error: Error) => void) | undefined;
  /**
   * The store's declared bound (settlesWithinMs), read once here: a later call never touches the
   * property (a throwing getter cannot reach a handshake), and anything but a finite number >= 0
   * counts as no declaration (the caller's timer applies).
   */
  readonly #settlesWithinMs: number | undefined;
  /** The store's getNow, read once here like settlesWithinMs (undefined: the store has none). */
  readonly #getNow: ((key: string) => Buffer | undefined) | undefined;
  /** Pending until the store's ready() settles (true: ready); undefined after that (or for a store without ready()). */
  #ready: Promise<boolean> | undefined;
  #started = false;

  constructor(store: SessionStore, options: StoreGatewayOptions = {}) {
    this.store = store;
    this.#onError = options.onError;
    this.#onFailure = options.onFailure;
    const declared = store.settlesWithinMs;
    this.#settlesWithinMs = typeof declared === 'number' && Number.isFinite(declared) && declared >= 0 ? declared : undefined;
    const getNow = store.getNow;
    this.#getNow = typeof getNow === 'function' && definedTogether(store, 'get', 'getNow') ? (key) => getNow.call(store, key) : undefined;
  }

  /**
   * Whether a get can be answered in the caller's turn now: the store has getNow (a declared
   * capability, SessionStore#getNow) and nothing is left to wait for (its ready() has settled).
   */
  answersNow(): boolean {
    return this.#getNow !== undefined && this.#started && this.#ready === undefined;
  }

  /**
   * The store's filter of written keys under `prefix` (SessionStore#trackWrittenKeys), or
   * undefined when it has none or it throws (then every key is looked up; the throw is reported).
   */
  trackWrittenKeys(prefix: string, options: { filter: boolean }): WrittenKeys | undefined {
    if (typeof this.store.trackWrittenKeys !== 'function') return undefined;
    let keys: WrittenKeys;
    try {
      keys = this.store.trackWrittenKeys(prefix, options);
      if (keys === null || typeof keys !== 'object' || typeof keys.mayHold !== 'function') return undefined;
    } catch (error) {
      this.report(error as Error);
      return undefined;
    }
    // A store's filter runs inside Node's resumeSession: whatever it throws is a "maybe" (a lookup), reported.
    const report = (error: unknown): void => this.report(error as Error);
    return {
      mayHold(key: string): boolean {
        try {
          return keys.mayHold(key) !== false;
        } catch (error) {
          report(error);
          return true;
        }
      },
      get complete(): boolean {
        return keys.complete === true;
      },
      unsupported: keys.unsupported,
      release(): void {
        try {
          keys.release();
        } catch (error) {
          report(error);
        }
      },
    };
  }

  /** The store's getNow(key); only when answersNow(). Throws what the store throws (not counted here, as call()). */
  getNow(key: string): Buffer | undefined {
    return this.#getNow!(key);
  }

  /**
   * Starts waiting for the store's ready() (once; the first call does it too). Returns a promise
   * that resolves, never rejecting, when it has settled (false: it failed, which was counted and
   * reported); undefined when there is nothing (left) to wait for.
   */
  start(): Promise<boolean> | undefined {
    if (!this.#started) {
      this.#started = true;
      this.#ready = this.#waitForReady();
    }
    return this.#ready;
  }

  #waitForReady(): Promise<boolean> | undefined {
    if (typeof this.store.ready !== 'function') return undefined;
    let readiness: Promise<void>;
    try {
      readiness = Promise.resolve(this.store.ready());
    } catch (error) {
      readiness = Promise.reject(error);
    }
    return readiness
      .then(
        () => true,
        (error: unknown) => {
          this.fail(asError(error));
          return false;
        },
      )
      .finally(() => {
        this.#ready = undefined;
      });
  }

  /**
   * One store call, made once the store is ready (a wait bounded by the store's own start-up
   * budget, not by `budgetMs`), within `budgetMs`: no timer when the store declares that its
   * calls settle within it. Rejects with what the store rejected with, a StoreTimeoutError naming
   * `operation`, or the error a synchronous throw carried. Nothing is counted or reported here:
   * the caller decides (usually through fail()).
   */
  call<T>(operation: string, budgetMs: number, work: (store: SessionStore) => Promise<T>): Promise<T> {
    const start = (): Promise<T> => {
      const pending = invoke(work, this.store);
      return this.#boundsItsOwnCalls(budgetMs) ? pending : withDeadline(operation, budgetMs, pending);
    };
    const ready = this.start();
    return ready ? ready.then(start) : start();
  }

  /**
   * Several store calls as one operation (a client's lookup: a get, then takes from a pool) under
   * one `budgetMs` that also covers the wait for ready(): always timed, since a store's bound
   * holds per call, not for a sequence. Rejects as call() does.
   */
  run<T>(operation: string, budgetMs: number, work: (store: SessionStore) => Promise<T>): Promise<T> {
    const ready = this.start();
    const pending = ready ? ready.then(() => work(this.store)) : invoke(work, this.store);
    return withDeadline(operation, budgetMs, pending);
  }

  /** A failed store call: counted by the consumer and reported to onError. */
  fail(error: Error): void {
    this.#onFailure?.(error);
    this.report(error);
  }

  /** Reports to onError; a throwing listener is swallowed. */
  report(error: Error): void {
    try {
      this.#onError?.(error);
    } catch {
      /* a throwing onError must not reach Node's callbacks or a connection */
    }
  }

  /** Whether the store declares that its calls settle within `budgetMs` (then no deadline timer is needed). */
  #boundsItsOwnCalls(budgetMs: number): boolean {
    return this.#settlesWithinMs !== undefined && this.#settlesWithinMs <= budgetMs;
  }
}

/**
 * Whether `a` and `b` come from the same object of `store`'s prototype chain: a subclass that
 * overrides get() (to count, to filter) but inherits getNow() would otherwise be bypassed by it.
 */
function definedTogether(store: object, a: string, b: string): boolean {
  try {
    return ownerOf(store, a) === ownerOf(store, b);
  } catch {
    return false; // a Proxy's trap threw: no fast path
  }
}

function ownerOf(store: object, name: string): object | null {
  for (let object: object | null = store; object !== null; object = Object.getPrototypeOf(object) as object | null) {
    if (Object.prototype.hasOwnProperty.call(object, name)) return object;
  }
  return null;
}

/** Runs a promise against a time budget without leaving the loser's rejection unhandled. */
export function withDeadline<T>(operation: string, budgetMs: number, work: Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new StoreTimeoutError(operation, budgetMs)), budgetMs);
    work.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

/** `work(store)`, a synchronous throw turned into a rejection. */
function invoke<T>(work: (store: SessionStore) => Promise<T>, store: SessionStore): Promise<T> {
  try {
    return work(store);
  } catch (error) {
    return Promise.reject(asError(error));
  }
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new StoreError(`session store call failed: ${String(error)}`);
}
