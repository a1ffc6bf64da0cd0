/**
 * Random bytes drawn from a pool refilled a batch at a time: one CSPRNG call per `parts` draws
 * instead of one each (the record sealer's IVs, the ticket ring's ticket IVs). Each part is
 * handed out once and wiped from the pool.
 */
import { randomFillSync } from 'node:crypto';

export class RandomPool {
  readonly #partBytes: number;
  readonly #pool: Buffer;
  #offset: number;

  constructor(partBytes: number, parts = 256) {
    this.#partBytes = partBytes;
    this.#pool = Buffer.allocUnsafe(partBytes * parts);
    this.#offset = this.#pool.length;
  }

  /** Copies the next `partBytes` fresh random bytes into `target` (from its start). */
  next(target: Buffer): void {
    const part = this.#partBytes;
    if (this.#offset + part > this.#pool.length) {
      randomFillSync(this.#pool);
      this.#offset = 0;
    }
    this.#pool.copy(target, 0, this.#offset, this.#offset + part);
    this.#pool.fill(0, this.#offset, this.#offset + part);
    this.#offset += part;
  }
}
