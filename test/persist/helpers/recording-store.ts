import { MemoryStore } from '../../../lib/persist';

/** A MemoryStore that remembers which keys were written, so tests can reach the records. */
export class RecordingStore extends MemoryStore {
  readonly keys: string[] = [];
  override async set(key: string, value: Buffer, ttlSeconds: number): Promise<void> {
    this.keys.push(key);
    await super.set(key, value, ttlSeconds);
  }
}
