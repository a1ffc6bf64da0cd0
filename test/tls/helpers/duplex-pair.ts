/** Two connected in-memory Duplex ends (like a socketpair): what one writes, the other reads. */
import { Duplex } from 'node:stream';

class End extends Duplex {
  peer!: End;

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (!this.peer.destroyed) this.peer.push(chunk);
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (!this.peer.destroyed) this.peer.push(null); // our FIN
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // Like a reset TCP connection: the peer sees EOF, then closes.
    const peer = this.peer;
    if (!peer.destroyed) {
      if (!peer.readableEnded) peer.push(null);
      process.nextTick(() => peer.destroy());
    }
    callback(error);
  }
}

export function duplexPair(): [Duplex, Duplex] {
  const a = new End();
  const b = new End();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
