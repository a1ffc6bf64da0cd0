/**
 * The records the scale benchmark stores: what attachSessionStore really writes. One real TLS 1.2
 * session is issued by a real node:tls handshake (tickets off, so the session goes through
 * attachSessionStore's newSession into a MemoryStore, sealed, default scope derived from the
 * certificate); its record is read back from the store and opened. Record i is then made on the
 * same write path (sealServerSessionRecord, the function attachSessionStore calls) from that DER
 * with its session ID bytes replaced by ID i: every record has its own session ID, store key and
 * IV, and the size of the real one. Only the ID differs from the one real session (the master
 * secret and times are the real session's).
 */
import { constants, createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { devCertificate } from '../../examples/dev-cert';
import { attachSessionStore, MemoryStore } from '../../lib/persist';
import { openServerSessionRecord, sealServerSessionRecord } from '../../lib/persist/records/server-session';
import { Sealer } from '../../lib/persist/records/envelope';
import { readSessionHeader } from '../../lib/session-header';

/** What a worker process needs to make records exactly as the real one was made (JSON-safe). */
export interface RecordTemplate {
  /** The real session's DER (hex). */
  derHex: string;
  /** Where its 32-byte session ID sits in the DER. */
  idOffset: number;
  idLength: number;
  /** The attachment's scope ('x509:' + SHA-256 of the certificate). */
  scope: string;
  /** The 32-byte secret records are sealed with (hex). */
  secretHex: string;
  /** attachSessionStore's default key prefix. */
  keyPrefix: string;
  /** The record attachSessionStore wrote, as stored (bytes). */
  recordBytes: number;
  /** Its store key's length (characters). */
  keyChars: number;
  /** The TTL attachSessionStore gave it (seconds: what was left of the session's lifetime). */
  ttlSeconds: number;
  /** What the session header says (for the report). */
  protocol: string;
  cipher: string;
  sessionTimeoutSeconds: number;
}

/** Issues one real TLS 1.2 session through attachSessionStore (sealed) and returns the template to copy it from. */
export async function captureRealRecord(secret: Buffer): Promise<RecordTemplate> {
  const dir = mkdtempSync(join(tmpdir(), 'tls-session-scale-cert-'));
  try {
    const pem = devCertificate(dir, 'p256');
    const server = tls.createServer({ ...pem, maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET }, (socket) => socket.end());
    const store = new MemoryStore();
    let ttlSeconds = 0;
    const recording = {
      get: (key: string) => store.get(key),
      set: (key: string, value: Buffer, ttl: number) => {
        ttlSeconds = ttl;
        return store.set(key, value, ttl);
      },
      delete: (key: string) => store.delete(key),
      close: () => store.close(),
      settlesWithinMs: 0,
    };
    const handle = attachSessionStore(server, { store: recording, secret });
    let issued: Buffer | undefined;
    server.prependListener('newSession', (id: Buffer) => (issued = Buffer.from(id)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      await new Promise<void>((resolve, reject) => {
        const socket = tls.connect({
          host: '127.0.0.1',
          port: (server.address() as { port: number }).port,
          servername: 'localhost',
          ca: pem.cert,
          maxVersion: 'TLSv1.2',
          secureOptions: constants.SSL_OP_NO_TICKET,
        });
        socket.on('data', () => undefined);
        socket.once('error', reject);
        socket.once('close', () => resolve());
      });
      for (let i = 0; i < 200 && handle.stats().stored < 1; i++) await new Promise((resolve) => setTimeout(resolve, 5));
      if (!issued || handle.stats().stored < 1)
        throw new Error('the handshake issued no TLS 1.2 session (attachSessionStore stored nothing)');
      const keyPrefix = 'session:';
      const key = keyPrefix + issued.toString('hex');
      const record = await store.get(key);
      if (!record) throw new Error(`attachSessionStore stored no record under ${key}`);
      const { scope, der } = openServerSessionRecord(new Sealer(secret, 'session-record'), key, record);
      const idOffset = der.indexOf(issued);
      if (idOffset < 0 || der.lastIndexOf(issued) !== idOffset) throw new Error('cannot locate the session ID in the session DER');
      const header = readSessionHeader(der);
      if (!header) throw new Error('the real session DER does not read');
      const template: RecordTemplate = {
        derHex: der.toString('hex'),
        idOffset,
        idLength: issued.length,
        scope,
        secretHex: secret.toString('hex'),
        keyPrefix,
        recordBytes: record.length,
        keyChars: key.length,
        ttlSeconds,
        protocol: header.protocolVersion === 0x0303 ? 'TLSv1.2' : `0x${header.protocolVersion.toString(16)}`,
        cipher: header.cipher,
        sessionTimeoutSeconds: header.timeout,
      };
      // The copies are made the way the real one was: same length, and each reads back with its own ID.
      const factory = new RecordFactory(template, 'check');
      const copy = factory.record(0);
      if (copy.length !== record.length) throw new Error(`a copied record is ${copy.length} bytes, the real one ${record.length}`);
      if (!factory.verify(0, copy)) throw new Error('a copied record does not open under its own key');
      return template;
    } finally {
      handle.detach();
      await store.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Session IDs, store keys and records by index: index i is the same everywhere for one seed. */
export class RecordFactory {
  readonly template: RecordTemplate;
  readonly #seed: Buffer;
  readonly #der: Buffer;
  readonly #scope: Buffer;
  readonly #sealer: Sealer;
  readonly #index = Buffer.alloc(4);

  constructor(template: RecordTemplate, seed: string) {
    this.template = template;
    this.#seed = Buffer.from(`tls-session/bench-scale/${seed}\0`);
    this.#der = Buffer.from(template.derHex, 'hex');
    this.#scope = Buffer.from(template.scope, 'utf8');
    this.#sealer = new Sealer(Buffer.from(template.secretHex, 'hex'), 'session-record');
  }

  /** Session ID i: random-looking (SHA-256 of seed and index, as long as the real one), distinct per index. */
  id(i: number): Buffer {
    this.#index.writeUInt32BE(i >>> 0);
    return createHash('sha256').update(this.#seed).update(this.#index).digest().subarray(0, this.template.idLength);
  }

  /** The store key attachSessionStore uses for session ID i. */
  key(i: number, id = this.id(i)): string {
    return this.template.keyPrefix + id.toString('hex');
  }

  /** Record i: the real DER carrying ID i, sealed under key i (a fresh IV), as attachSessionStore's newSession writes it. */
  record(i: number, id = this.id(i), key = this.key(i, id)): Buffer {
    const der = Buffer.from(this.#der);
    id.copy(der, this.template.idOffset);
    return sealServerSessionRecord(this.#sealer, key, this.#scope, der);
  }

  /** Whether `record` opens under key i, in this scope, with session ID i in its DER (a sanity check, not on any timed path). */
  verify(i: number, record: Buffer): boolean {
    try {
      const id = this.id(i);
      const { scope, der } = openServerSessionRecord(this.#sealer, this.key(i, id), record);
      return scope === this.template.scope && readSessionHeader(der)?.sessionId.equals(id) === true;
    } catch {
      return false;
    }
  }
}
