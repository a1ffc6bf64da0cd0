/**
 * Session (owns one SSL_SESSION reference) and SessionView (borrows one for a scope).
 *
 * Ownership is in the types: only Session has free()/[Symbol.dispose]; a SessionView has
 * neither and stops working when the scope that lent it ends. Both read the same metadata.
 */
import { X509Certificate } from 'node:crypto';
import { inspect } from 'node:util';
import { native, ReleaseReason, type NativeHandle, type NativeMetadata } from './binding';
import { invalidArgType, outOfRange, SessionDecodeError, SessionFreedError, SessionViewExpiredError } from './errors';
import { kRegistered, trackOwner, untrackOwner } from './leak-detection';

/** Default cap on the DER passed to Session.fromDER: real sessions are < 8 KiB even with a certificate chain. */
export const DEFAULT_MAX_DER_BYTES = 64 * 1024;
const HARD_MAX_DER_BYTES = 16 * 1024 * 1024;

export interface FromDEROptions {
  /** Reject input longer than this many bytes (default 64 KiB, at most 16 MiB). */
  maxBytes?: number;
}

/** What JSON.stringify and util.inspect show: metadata only, never key material. */
export interface SessionSummary {
  protocol: string;
  cipher: string | undefined;
  id: string;
  idContext: string;
  startTime: string;
  timeout: number;
  expiresAt: string;
  isResumable: boolean;
  hasTicket: boolean;
  ticketLifetimeHint: number;
  maxEarlyData: number;
  hostname: string | undefined;
  alpnProtocol: string | undefined;
  peerCertificate: { subject: string; fingerprint256: string } | undefined;
}

/** The metadata both owned sessions and borrowed views expose. */
export abstract class SessionReader {
  #metadata: NativeMetadata | undefined;
  #peerCertificate: X509Certificate | undefined;
  #derLength = 0;

  protected constructor(derLength: number) {
    this.#derLength = derLength;
  }

  /** The live native handle, or throws the error that says why there is none. */
  protected abstract liveHandle(): NativeHandle;

  /** @internal See liveHandleOf(). */
  static liveHandleOf(reader: SessionReader): NativeHandle {
    return reader.liveHandle();
  }

  // Sessions are immutable once established, so one native call serves every getter.
  #read(): NativeMetadata {
    const handle = this.liveHandle();
    return (this.#metadata ??= native.metadata(handle));
  }

  /** Session ID (empty for a TLS 1.3 or ticket-only session that has none). */
  get id(): Buffer { return Buffer.from(this.#read().id); }
  /** Session ID context the server bound the session to. */
  get idContext(): Buffer { return Buffer.from(this.#read().idContext); }
  /** 'TLSv1.3', 'TLSv1.2', ... as `openssl sess_id -text` prints it. */
  get protocol(): string { return this.#read().protocol; }
  /** OpenSSL's cipher name, e.g. 'TLS_AES_256_GCM_SHA384' or 'ECDHE-ECDSA-AES128-GCM-SHA256'. */
  get cipher(): string | undefined { return this.#read().cipher; }
  get startTime(): Date { return new Date(this.#read().startTime * 1000); }
  /** Lifetime in seconds, counted from startTime. */
  get timeout(): number { return this.#read().timeout; }
  get expiresAt(): Date { const m = this.#read(); return new Date((m.startTime + m.timeout) * 1000); }
  get isResumable(): boolean { return this.#read().isResumable; }
  get hasTicket(): boolean { return this.#read().hasTicket; }
  /** Seconds; 0 when the server sent none. */
  get ticketLifetimeHint(): number { return this.#read().ticketLifetimeHint; }
  get maxEarlyData(): number { return this.#read().maxEarlyData; }
  /** SNI hostname the session was negotiated for, if any. */
  get hostname(): string | undefined { return this.#read().hostname; }
  get alpnProtocol(): string | undefined { return this.#read().alpnProtocol; }
  get peerCertificate(): X509Certificate | undefined {
    const der = this.#read().peerCertificate;
    if (der === undefined) return undefined;
    return (this.#peerCertificate ??= new X509Certificate(der));
  }

  /** True when `now` is past expiresAt. */
  isExpired(now: Date = new Date()): boolean {
    return now.getTime() >= this.expiresAt.getTime();
  }

  /** The DER encoding (i2d_SSL_SESSION): the form that crosses processes and Node's APIs. */
  toDER(): Buffer {
    const handle = this.liveHandle();
    // An established session does not change, so its DER length is known after the first
    // encode (or from fromDER's input): encode straight into a pooled Buffer of that size.
    if (this.#derLength > 0) {
      const der = Buffer.allocUnsafe(this.#derLength);
      const length = native.encodeInto(handle, der);
      if (length === der.length) return der;
    }
    const der = native.encode(handle);
    this.#derLength = der.length;
    return der;
  }

  /** A new, independent owned reference to the same SSL_SESSION (SSL_SESSION_up_ref). */
  clone(): Session {
    return adoptOwnedHandle(native.upRef(this.liveHandle()));
  }

  protected summary(): SessionSummary {
    const m = this.#read();
    const cert = this.peerCertificate;
    return {
      protocol: m.protocol,
      cipher: m.cipher,
      id: m.id.toString('hex'),
      idContext: m.idContext.toString('hex'),
      startTime: this.startTime.toISOString(),
      timeout: m.timeout,
      expiresAt: this.expiresAt.toISOString(),
      isResumable: m.isResumable,
      hasTicket: m.hasTicket,
      ticketLifetimeHint: m.ticketLifetimeHint,
      maxEarlyData: m.maxEarlyData,
      hostname: m.hostname,
      alpnProtocol: m.alpnProtocol,
      peerCertificate: cert && { subject: cert.subject, fingerprint256: cert.fingerprint256 },
    };
  }

  protected abstract isUsable(): boolean;

  /** Metadata only; a freed session or expired view serialises as `{ freed: true }` / `{ expired: true }`. */
  abstract toJSON(): SessionSummary | { freed: true } | { expired: true };

  [inspect.custom](depth: number, options: { stylize: (s: string, style: string) => string }, nested: typeof inspect): string {
    const name = this.constructor.name;
    if (!this.isUsable()) return `${name} { ${options.stylize(this instanceof Session ? '<freed>' : '<expired>', 'special')} }`;
    return `${name} ${nested(this.summary(), { ...options, depth: depth < 0 ? null : depth })}`;
  }
}

let constructing = false;

/** Owns exactly one SSL_SESSION reference and releases it exactly once. */
export class Session extends SessionReader {
  #handle: NativeHandle;
  /** @internal Whether the GC safety net holds this session (lib/leak-detection.ts). */
  [kRegistered] = false;

  /** Sessions come from factories (fromDER, clone, TLS APIs); the constructor is not public. */
  private constructor(handle: NativeHandle, derLength: number) {
    super(derLength);
    if (!constructing) throw new TypeError('Session cannot be constructed directly: use Session.fromDER(bytes)');
    constructing = false;
    this.#handle = handle;
    trackOwner(this, handle);
  }

  /** @internal Wraps a handle to a reference the caller already owns. */
  static adopt(handle: NativeHandle, derLength = 0): Session {
    constructing = true;
    return new Session(handle, derLength);
  }

  /**
   * Decodes one DER-encoded SSL_SESSION (d2i_SSL_SESSION). The bytes must be exactly one
   * session: empty input, input over `maxBytes`, trailing bytes or anything OpenSSL rejects
   * throw SessionDecodeError (code ERR_TLS_SESSION_DECODE).
   */
  static fromDER(bytes: Uint8Array, options?: FromDEROptions): Session {
    if (!(bytes instanceof Uint8Array)) throw invalidArgType('bytes', 'a Uint8Array or Buffer', bytes);
    let maxBytes = DEFAULT_MAX_DER_BYTES;
    if (options !== undefined) {
      if (options === null || typeof options !== 'object') throw invalidArgType('options', 'an object', options);
      if (options.maxBytes !== undefined) {
        maxBytes = options.maxBytes;
        if (!Number.isInteger(maxBytes) || maxBytes < 1 || maxBytes > HARD_MAX_DER_BYTES) {
          throw outOfRange('options.maxBytes', `an integer from 1 to ${HARD_MAX_DER_BYTES}`, maxBytes);
        }
      }
    }
    if (bytes.byteLength === 0) throw new SessionDecodeError('empty input: a DER-encoded SSL_SESSION needs at least one byte');
    if (bytes.byteLength > maxBytes) {
      throw new SessionDecodeError(`input of ${bytes.byteLength} bytes is over the ${maxBytes}-byte limit for one session (options.maxBytes)`);
    }
    return Session.adopt(native.decode(bytes), bytes.byteLength);
  }

  /** True once free() ran (or the GC / teardown released the reference). */
  get freed(): boolean {
    return this.#handle === 0;
  }

  /** Releases the reference (SSL_SESSION_free). Returns true the first time, false after. */
  free(): boolean {
    const handle = this.#handle;
    if (handle === 0) return false;
    this.#handle = 0;
    untrackOwner(this);
    return native.release(handle, ReleaseReason.Explicit);
  }

  [Symbol.dispose](): void {
    this.free();
  }

  /**
   * Lends a read-only view of this session to `fn` for the duration of the call (synchronous
   * only); the view cannot free the session and throws ERR_TLS_SESSION_VIEW_EXPIRED afterwards.
   */
  lend<T>(fn: (view: SessionView) => T): T {
    const viewHandle = native.lend(this.liveHandle());
    try {
      return fn(SessionView.borrow(viewHandle));
    } finally {
      native.release(viewHandle, ReleaseReason.Explicit);
    }
  }

  protected liveHandle(): NativeHandle {
    if (this.#handle === 0) throw new SessionFreedError();
    return this.#handle;
  }

  protected isUsable(): boolean {
    return this.#handle !== 0;
  }

  toJSON(): SessionSummary | { freed: true } {
    return this.#handle === 0 ? { freed: true } : this.summary();
  }
}

let borrowing = false;

/**
 * A read-only view of a session someone else owns (OpenSSL, a callback's caller, or
 * Session#lend). It cannot be freed; clone() takes an owned reference that outlives it.
 */
export class SessionView extends SessionReader {
  readonly #handle: NativeHandle;

  private constructor(handle: NativeHandle) {
    super(0);
    if (!borrowing) throw new TypeError('SessionView cannot be constructed directly: views are lent by the library');
    borrowing = false;
    this.#handle = handle;
  }

  /** @internal Wraps a borrowed handle; the lender ends the loan in native code. */
  static borrow(handle: NativeHandle): SessionView {
    borrowing = true;
    return new SessionView(handle);
  }

  /** False once the lending scope has ended. */
  get valid(): boolean {
    return native.isLive(this.#handle);
  }

  // The native table is asked every time: a loan can end without this object knowing.
  protected liveHandle(): NativeHandle {
    if (!native.isLive(this.#handle)) throw new SessionViewExpiredError();
    return this.#handle;
  }

  protected isUsable(): boolean {
    return this.valid;
  }

  toJSON(): SessionSummary | { expired: true } {
    return this.valid ? this.summary() : { expired: true };
  }
}

/**
 * @internal The live native handle of a session or view (throws the freed / expired error),
 * for other lib/ modules that pass sessions to native code.
 */
export function liveHandleOf(reader: SessionReader): NativeHandle {
  return SessionReader.liveHandleOf(reader);
}

/** @internal For other lib/ modules that receive an owned reference from native code. */
export function adoptOwnedHandle(handle: NativeHandle): Session {
  return Session.adopt(handle);
}
