/**
 * Session (owns one SSL_SESSION reference) and SessionView (borrows one for a scope).
 *
 * Ownership is in the types: only Session has free()/[Symbol.dispose]; a SessionView has
 * neither and stops working when the scope that lent it ends. Both read the same metadata.
 */
import { X509Certificate } from 'node:crypto';
import { inspect } from 'node:util';
import { native, ReleaseReason, type NativeHandle, type NativeMetadata } from './binding';
import { invalidArgType, outOfRange, SessionDecodeError, SessionFreedError, SessionHostError, SessionViewExpiredError } from './errors';
import { kRegistered, trackOwner, untrackOwner } from './leak-detection';
import { buildNodeEnvelope, hasNodeEnvelopeMagic, MAX_NODE_SESSION_HOST_BYTES, parseNodeEnvelope } from './node-session';
import { nodeSessionFormat } from './node-internals';
import { DEFAULT_MAX_DER_BYTES } from './session-header';

/** Default cap on the DER passed to Session.fromDER (session-header.ts holds the value). */
export { DEFAULT_MAX_DER_BYTES };
const HARD_MAX_DER_BYTES = 16 * 1024 * 1024;

export interface FromDEROptions {
  /** Reject input longer than this many bytes (default 64 KiB, at most 16 MiB). */
  maxBytes?: number;
}

/** Options of Session.fromNodeSession: `maxBytes` caps the DER inside Node's envelope. */
export type FromNodeSessionOptions = FromDEROptions;

export interface ToNodeSessionOptions {
  /**
   * The identity the connection will have in Node: the `servername` you pass to tls.connect (or
   * its `host` if you pass no servername). Required where the running Node wraps sessions and
   * the session has no authenticatedHost (it came from fromDER).
   */
  servername?: string;
  /**
   * Bind the session to `servername` even though it was authenticated for another host. A
   * deliberate choice (e.g. a fleet behind several names with one certificate): Node's host
   * binding exists so that a session is not offered to a server other than the one it was
   * established with.
   */
  rebindToServername?: boolean;
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
  /** Present when the session came from Node's envelope (Session.fromNodeSession). */
  authenticatedHost?: string;
}

/** The metadata both owned sessions and borrowed views expose. */
export abstract class SessionReader {
  #metadata: NativeMetadata | undefined;
  #peerCertificate: X509Certificate | undefined;
  #derLength = 0;
  #authenticatedHost: string | undefined;

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
  get id(): Buffer {
    return Buffer.from(this.#read().id);
  }
  /** Session ID context the server bound the session to. */
  get idContext(): Buffer {
    return Buffer.from(this.#read().idContext);
  }
  /** 'TLSv1.3', 'TLSv1.2', ... as `openssl sess_id -text` prints it. */
  get protocol(): string {
    return this.#read().protocol;
  }
  /** OpenSSL's cipher name, e.g. 'TLS_AES_256_GCM_SHA384' or 'ECDHE-ECDSA-AES128-GCM-SHA256'. */
  get cipher(): string | undefined {
    return this.#read().cipher;
  }
  get startTime(): Date {
    return new Date(this.#read().startTime * 1000);
  }
  /** Lifetime in seconds, counted from startTime. */
  get timeout(): number {
    return this.#read().timeout;
  }
  get expiresAt(): Date {
    const m = this.#read();
    return new Date((m.startTime + m.timeout) * 1000);
  }
  get isResumable(): boolean {
    return this.#read().isResumable;
  }
  get hasTicket(): boolean {
    return this.#read().hasTicket;
  }
  /** Seconds; 0 when the server sent none. */
  get ticketLifetimeHint(): number {
    return this.#read().ticketLifetimeHint;
  }
  get maxEarlyData(): number {
    return this.#read().maxEarlyData;
  }
  /** SNI hostname the session was negotiated for, if any. */
  get hostname(): string | undefined {
    return this.#read().hostname;
  }
  get alpnProtocol(): string | undefined {
    return this.#read().alpnProtocol;
  }
  /** The server's (or client's) certificate kept in the session; SessionDecodeError when OpenSSL kept bytes Node's X509 parser refuses. */
  get peerCertificate(): X509Certificate | undefined {
    const der = this.#read().peerCertificate;
    if (der === undefined) return undefined;
    if (this.#peerCertificate === undefined) {
      try {
        this.#peerCertificate = new X509Certificate(der);
      } catch (error) {
        // Node's message depends on its OpenSSL (a DER it cannot read may be reported as "PEM
        // routines::no start line"): name the problem, keep Node's words as the reason.
        throw new SessionDecodeError("the session's peer certificate does not parse as X.509", (error as Error).message);
      }
    }
    return this.#peerCertificate;
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

  /**
   * A new, independent owned reference to the same SSL_SESSION (SSL_SESSION_up_ref). It keeps
   * the authenticatedHost: that is a fact about the SSL_SESSION, not about this reference.
   */
  clone(): Session {
    return SessionReader.withAuthenticatedHost(adoptOwnedHandle(native.upRef(this.liveHandle())), this.#authenticatedHost);
  }

  /**
   * The host Node's client authenticated this session for, from Node's envelope
   * (Session.fromNodeSession); undefined for sessions from plain DER (fromDER, Node 20, servers,
   * the TLS engine). Read-only; kept by clone() and lend(); not part of the DER (toDER drops it),
   * so a session stored as DER needs `servername` again in toNodeSession().
   */
  get authenticatedHost(): string | undefined {
    return this.#authenticatedHost;
  }

  /** @internal Sets the host once, on a session or view just made; returns it. */
  static withAuthenticatedHost<T extends SessionReader>(reader: T, host: string | undefined): T {
    if (host !== undefined) reader.#authenticatedHost = host;
    return reader;
  }

  /**
   * What the running Node's `tls.connect({ session })` resumes: Node's envelope binding the
   * session to a host where Node wraps client sessions (22.23.0+, 24.17.0+, 26.3.1+; see
   * nodeSessionFormat()), plain DER where it does not (Node 20).
   *
   * The host is `servername` when given, else the session's authenticatedHost. A session is never
   * bound to a host other than its authenticatedHost unless `rebindToServername: true`
   * (SessionHostError ERR_TLS_SESSION_HOST_MISMATCH; hosts compare ignoring ASCII case, and the
   * envelope carries `servername` as given because Node compares it byte for byte). Where Node
   * wraps and no host is known: SessionHostError ERR_TLS_SESSION_HOST_REQUIRED. The mismatch check
   * runs on every Node line, so code behaves the same before and after the upgrade.
   */
  toNodeSession(options: ToNodeSessionOptions = {}): Buffer {
    if (options === null || typeof options !== 'object') throw invalidArgType('options', 'an object', options);
    const { servername, rebindToServername = false } = options;
    if (servername !== undefined) {
      if (typeof servername !== 'string') throw invalidArgType('options.servername', 'of type string', servername);
      const bytes = Buffer.byteLength(servername, 'utf8');
      if (bytes === 0 || bytes > MAX_NODE_SESSION_HOST_BYTES) {
        throw outOfRange(
          'options.servername',
          `a non-empty string of at most ${MAX_NODE_SESSION_HOST_BYTES} UTF-8 bytes`,
          `${bytes} bytes`,
        );
      }
    }
    if (typeof rebindToServername !== 'boolean') throw invalidArgType('options.rebindToServername', 'of type boolean', rebindToServername);
    const der = this.toDER();
    const known = this.#authenticatedHost;
    const asciiLower = (host: string): string => host.replace(/[A-Z]+/g, (upper) => upper.toLowerCase());
    if (servername !== undefined && known !== undefined && asciiLower(servername) !== asciiLower(known) && !rebindToServername) {
      throw new SessionHostError(
        'ERR_TLS_SESSION_HOST_MISMATCH',
        `this session was authenticated for ${JSON.stringify(known)}, not ${JSON.stringify(servername)}: Node binds client sessions ` +
          'to their host so that one is never offered to another server; pass rebindToServername: true to do it deliberately',
        { authenticatedHost: known, servername },
      );
    }
    if (nodeSessionFormat().format === 'der') return der;
    const host = servername ?? known;
    if (host === undefined) {
      throw new SessionHostError(
        'ERR_TLS_SESSION_HOST_REQUIRED',
        `Node ${process.version} binds client sessions to a host and this session has no authenticatedHost ` +
          "(it came from plain DER): pass toNodeSession({ servername }) with the connection's servername (or host)",
      );
    }
    return buildNodeEnvelope(host, der);
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
      ...(this.#authenticatedHost !== undefined && { authenticatedHost: this.#authenticatedHost }),
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
    if (bytes[0] === 0 && hasNodeEnvelopeMagic(bytes)) {
      throw new SessionDecodeError(
        'this is a node:tls client session in Node\'s host-binding envelope ("\\0nodejs:tls:session:…"), ' +
          'not plain DER: read it with Session.fromNodeSession(bytes)',
      );
    }
    if (bytes.byteLength > maxBytes) {
      throw new SessionDecodeError(
        `input of ${bytes.byteLength} bytes is over the ${maxBytes}-byte limit for one session (options.maxBytes)`,
      );
    }
    return Session.adopt(native.decode(bytes), bytes.byteLength);
  }

  /**
   * Takes what the running Node's client hands out (the 'session' event, getSession()), in
   * either form, and returns an owned Session: Node's envelope (22.23.0+, 24.17.0+, 26.3.1+) is
   * parsed strictly and its host kept as `authenticatedHost`; plain DER (Node 20) is read as by
   * fromDER (no authenticatedHost). The form is told by content (DER starts with 0x30, the
   * envelope with 0x00). A malformed envelope (truncated, unknown version, bad length, empty or
   * non-UTF-8 host, nothing or more than one session after it) throws SessionDecodeError.
   */
  static fromNodeSession(bytes: Uint8Array, options?: FromNodeSessionOptions): Session {
    if (!(bytes instanceof Uint8Array)) throw invalidArgType('bytes', 'a Uint8Array or Buffer', bytes);
    if (bytes.byteLength === 0 || bytes[0] !== 0) return Session.fromDER(bytes, options);
    const { host, der } = parseNodeEnvelope(bytes);
    return SessionReader.withAuthenticatedHost(Session.fromDER(der, options), host);
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
      return fn(SessionReader.withAuthenticatedHost(SessionView.borrow(viewHandle), this.authenticatedHost));
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
