/**
 * TlsConnection: a TLS client or server on the system OpenSSL, as a Duplex over any socket.
 * OpenSSL reads and writes two memory BIOs (binding/tls_connection.cc); this class moves their
 * bytes to and from `socket`, and behaves like a tls.TLSSocket for backpressure, half-close
 * and errors.
 */
import { X509Certificate } from 'node:crypto';
import { isIP as netIsIP } from 'node:net';
import { Duplex } from 'node:stream';
import { invalidArgType } from '../errors';
import { adoptOwnedHandle, Session, SessionView } from '../session';
import type { TlsContext } from './context';
import { handleOf, inEngine, tlsNative } from './engine';
import { TlsDisconnectError, TlsStateError } from './errors';
import type { NativeConnectionInfo, NativeCycleResult, NativeHandle, NativeTlsConnection } from '../binding';

export interface ConnectOptions {
  /** SNI name, and the name the server certificate is checked against (unless `host` is given). An IP address is checked, not sent. */
  servername?: string;
  /** Name or IP address to check the certificate against, when it differs from `servername`. */
  host?: string;
  /** Resume this session (SSL_set_session: OpenSSL takes its own reference; you still own and free yours). */
  session?: Session | SessionView;
  /** Keep the writable side open after the peer's close_notify (default false, as node:tls). */
  allowHalfOpen?: boolean;
}

export interface AcceptOptions {
  allowHalfOpen?: boolean;
}

export interface CipherInfo {
  name: string;
  standardName: string;
  version: string;
}

type Transport = Duplex;

export interface TlsConnection {
  /** Client: the handshake completed. */
  on(event: 'secureConnect', listener: () => void): this;
  /** Server: the handshake completed. */
  on(event: 'secure', listener: () => void): this;
  /** Client: a new session (TLS 1.3: one per ticket). You own it (SSL_get1_session) and free() it; no listener: freed for you. */
  on(event: 'session', listener: (session: Session) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
}

export class TlsConnection extends Duplex {
  readonly context: TlsContext;
  readonly socket: Transport;
  readonly role: 'client' | 'server';
  /** Whether the peer's certificate verified (false before the handshake, or without a certificate). */
  authorized = false;
  /** Why the peer's certificate did not verify, when it did not. */
  authorizationError: string | undefined;

  #native: NativeTlsConnection | null;
  #info: NativeConnectionInfo | null = null;
  #secure = false;
  #closeNotifySent = false;
  #peerClosed = false;
  #failed = false;
  #pendingWrite: { chunk: Buffer; callback: (error?: Error | null) => void } | null = null;
  #pendingFinal: ((error?: Error | null) => void) | null = null;
  #inbox: Array<Buffer | 'eof'> = [];
  #draining = false;
  #scheduled = false;
  #started = false;
  readonly #listeners: Array<[string, (...args: any[]) => void]>;

  /** Starts a client handshake over `socket` (connected or connecting). */
  static connect(context: TlsContext, socket: Transport, options: ConnectOptions = {}): TlsConnection {
    if (options === null || typeof options !== 'object') throw invalidArgType('options', 'an object', options);
    return new TlsConnection(context, socket, 'client', options);
  }

  /** Answers a client handshake arriving on `socket`. */
  static accept(context: TlsContext, socket: Transport, options: AcceptOptions = {}): TlsConnection {
    if (options === null || typeof options !== 'object') throw invalidArgType('options', 'an object', options);
    return new TlsConnection(context, socket, 'server', options);
  }

  private constructor(context: TlsContext, socket: Transport, role: 'client' | 'server', options: ConnectOptions) {
    super({ allowHalfOpen: options.allowHalfOpen ?? false });
    if (context === null || typeof context !== 'object' || typeof (context as TlsContext).nativeContext !== 'function') {
      throw invalidArgType('context', 'a TlsContext', context);
    }
    if (context.role !== role) throw new TlsStateError(`a ${context.role} TlsContext cannot ${role === 'client' ? 'connect' : 'accept'}`);
    if (!(socket instanceof Duplex)) throw invalidArgType('socket', 'a Duplex stream (net.Socket or similar)', socket);
    this.context = context;
    this.socket = socket;
    this.role = role;
    const nativeOptions: { servername?: string; verifyHost?: string; verifyIp?: string } = {};
    let session: NativeHandle | undefined;
    if (role === 'client') {
      const { servername, host } = options;
      if (servername !== undefined && typeof servername !== 'string') throw invalidArgType('options.servername', 'a string', servername);
      if (host !== undefined && typeof host !== 'string') throw invalidArgType('options.host', 'a string', host);
      if (servername !== undefined && netIsIP(servername) === 0) nativeOptions.servername = servername;
      const checked = host ?? servername;
      if (checked !== undefined) {
        if (netIsIP(checked) !== 0) nativeOptions.verifyIp = checked;
        else nativeOptions.verifyHost = checked;
      } else if (context.verifiesPeer) {
        throw invalidArgType(
          'options.servername',
          'a host name or IP address to verify the server against (or a context with rejectUnauthorized: false)',
          undefined,
        );
      }
      if (options.session !== undefined) session = handleOf(options.session, 'options.session');
    }
    this.#native = new tlsNative.NativeTlsConnection(context.nativeContext(), nativeOptions, session);
    this.#listeners = [
      ['data', (chunk: Buffer | string) => this.#receive(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)],
      ['end', () => this.#receive('eof')],
      ['error', (err: Error) => this.destroy(err)],
      ['close', () => this.#onSocketClose()],
    ];
    for (const [event, listener] of this.#listeners) socket.on(event, listener);
    // Started on the next tick, so that listeners and setSession() can come first.
    process.nextTick(() => {
      this.#started = true;
      this.#schedule();
    });
  }

  // ---- public API, as tls.TLSSocket -------------------------------------------------------

  /** True once the handshake completed. */
  get encrypted(): true {
    return true;
  }
  get secureEstablished(): boolean {
    return this.#secure;
  }

  /** The current session as an owned Session (SSL_get1_session): free() it. Null before there is one or after destroy. */
  getSession(): Session | null {
    if (this.#native === null) return null;
    const handle = this.#native.getSession();
    return handle === null ? null : adoptOwnedHandle(handle);
  }

  /** Client, before the handshake: resume `session`. OpenSSL takes its own reference; you still own yours. */
  setSession(session: Session | SessionView): void {
    const handle = handleOf(session, 'session');
    if (this.role !== 'client') throw new TlsStateError('setSession() is for client connections');
    if (this.#native === null) throw new TlsStateError('the connection was destroyed');
    if (this.#started) throw new TlsStateError('setSession() must be called before the handshake starts (in the same tick as connect())');
    this.#native.setSession(handle);
  }

  isSessionReused(): boolean {
    return this.#info?.reused ?? false;
  }
  /** 'TLSv1.3', 'TLSv1.2', ... or null before the handshake. */
  getProtocol(): string | null {
    return this.#info?.protocol ?? null;
  }
  getCipher(): CipherInfo | null {
    return this.#info?.cipher ? { ...this.#info.cipher } : null;
  }
  /** The peer's certificate, or null (no handshake yet, or none sent). */
  getPeerCertificate(): X509Certificate | null {
    const der = this.#info?.peerCertificate;
    return der ? new X509Certificate(der) : null;
  }
  /** The negotiated ALPN protocol, or false (as tls.TLSSocket). */
  get alpnProtocol(): string | false {
    return this.#info?.alpnProtocol ?? false;
  }

  // ---- Duplex ------------------------------------------------------------------------------

  override _read(): void {
    if (this.socket.isPaused()) this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (!this.#secure || inEngine()) {
      // Before the handshake, or from inside a session callback: sent once that is over.
      this.#pendingWrite = { chunk, callback };
      if (this.#secure) this.#schedule();
      return;
    }
    this.#encrypt(chunk, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (!this.#secure || inEngine() || this.#pendingWrite !== null) {
      this.#pendingFinal = callback; // like TLSSocket: end() before the handshake waits for it
      if (this.#secure) this.#schedule();
      return;
    }
    this.#sendCloseNotify();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const native = this.#native;
    this.#native = null;
    for (const [event, listener] of this.#listeners) this.socket.removeListener(event, listener);
    this.socket.on('error', () => {}); // late transport errors have nowhere useful to go
    const healthy = error === null && this.#secure && !this.#failed;
    const finish = () => {
      // A clean close sends close_notify first: OpenSSL drops a session from its cache when an
      // SSL is freed without it (it counts as a failed connection).
      let out: Buffer | undefined;
      if (native !== null && healthy && !this.#closeNotifySent) {
        try {
          out = native.shutdown();
        } catch {
          out = undefined;
        }
      }
      native?.free();
      if (this.#failed || healthy) endThenDestroy(this.socket, out);
      else this.socket.destroy();
    };
    if (inEngine()) setImmediate(finish);
    else finish();
    // A write or end() that waited for the handshake (or for a callback to return) gets the
    // reason the connection ended, as node:tls does: an `await write()` must not hang.
    const pendingWrite = this.#pendingWrite;
    const pendingFinal = this.#pendingFinal;
    this.#pendingWrite = null;
    this.#pendingFinal = null;
    const reason = error ?? new TlsStateError('the connection was destroyed before the write was sent');
    pendingWrite?.callback(reason);
    pendingFinal?.(reason);
    callback(error);
  }

  // ---- engine ------------------------------------------------------------------------------

  #receive(input: Buffer | 'eof'): void {
    this.#inbox.push(input);
    this.#schedule();
  }

  // Drives OpenSSL now, or once the current native call is over when one is on the stack.
  #schedule(): void {
    if (!this.#started || this.#draining) return;
    if (inEngine()) {
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => {
          this.#scheduled = false;
          this.#schedule();
        });
      }
      return;
    }
    this.#draining = true;
    try {
      if (!this.#secure && this.#inbox.length === 0 && !this.destroyed) this.#cycle(undefined);
      while (this.#inbox.length > 0 && !this.destroyed) {
        const input = this.#inbox.shift()!;
        if (input === 'eof') this.#onTransportEnd();
        else this.#cycle(input);
      }
      if (this.#secure && !this.destroyed) {
        const pending = this.#pendingWrite;
        if (pending !== null) {
          this.#pendingWrite = null;
          this.#encrypt(pending.chunk, pending.callback);
        }
        const final = this.#pendingFinal;
        if (final !== null && this.#pendingWrite === null) {
          this.#pendingFinal = null;
          this.#sendCloseNotify();
          final();
        }
      }
    } finally {
      this.#draining = false;
    }
  }

  #cycle(input: Buffer | undefined): void {
    const native = this.#native;
    if (native === null || this.#failed) return;
    let result: NativeCycleResult;
    try {
      result = native.cycle(input);
    } catch (err) {
      this.#fail(asError(err));
      return;
    }
    if (result.out) this.#send(result.out);
    const sessions = result.sessions.map((handle) => adoptOwnedHandle(handle));
    if (result.error) {
      for (const s of sessions) s.free();
      this.#fail(result.error);
      return;
    }
    if (result.secure) this.#onSecure();
    for (const session of sessions) {
      // A listener may destroy the connection: the rest are still ours to free.
      if (this.destroyed || this.listenerCount('session') === 0) session.free();
      else this.emit('session', session);
    }
    if (this.destroyed) return;
    if (result.data && !this.push(result.data)) this.socket.pause();
    if (result.closed) {
      this.#peerClosed = true;
      this.push(null);
    }
  }

  #onSecure(): void {
    this.#secure = true;
    this.#info = this.#native?.info() ?? null;
    const verifyError = this.#info?.verifyError;
    this.authorized = this.#info?.peerCertificate !== undefined && verifyError === undefined;
    this.authorizationError = verifyError ?? (this.#info?.peerCertificate === undefined ? 'no peer certificate' : undefined);
    this.emit(this.role === 'client' ? 'secureConnect' : 'secure');
  }

  #encrypt(chunk: Buffer, callback: (error?: Error | null) => void): void {
    const native = this.#native;
    if (native === null) {
      callback(new TlsStateError('the connection was destroyed'));
      return;
    }
    let out: Buffer | undefined;
    try {
      out = native.write(chunk);
    } catch (err) {
      callback(asError(err));
      return;
    }
    // Backpressure: the write completes when the transport has taken the ciphertext.
    if (!this.socket.writable) callback(new TlsStateError('the transport is no longer writable'));
    else if (out === undefined || this.socket.write(out)) callback();
    else this.socket.once('drain', () => callback());
  }

  #sendCloseNotify(): void {
    const native = this.#native;
    if (native === null || this.#closeNotifySent) return;
    this.#closeNotifySent = true;
    let out: Buffer | undefined;
    try {
      out = native.shutdown();
    } catch {
      out = undefined;
    }
    // Half-close: close_notify, then the transport's FIN; reading goes on until the peer's.
    if (this.socket.writable) this.socket.end(out);
  }

  #send(bytes: Buffer): void {
    if (this.socket.writable) this.socket.write(bytes);
  }

  #onTransportEnd(): void {
    if (!this.#secure) {
      this.#fail(new TlsDisconnectError());
      return;
    }
    // An EOF without close_notify ends the stream as tls.TLSSocket does (no error).
    if (!this.#peerClosed) {
      this.#peerClosed = true;
      this.push(null);
    }
  }

  #onSocketClose(): void {
    if (this.destroyed) return;
    if (!this.#secure) this.destroy(new TlsDisconnectError());
    else {
      if (!this.#peerClosed) {
        this.#peerClosed = true;
        this.push(null);
      }
      this.destroy();
    }
  }

  #fail(error: Error): void {
    this.#failed = true;
    this.destroy(error);
  }
}

// Native calls throw the typed errors of lib/binding.ts's table; anything else is passed on.
function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

// Sends what is left (close_notify or an alert), then closes the transport.
function endThenDestroy(socket: Transport, last: Buffer | undefined): void {
  if (socket.destroyed) return;
  if (socket.writableEnded || !socket.writable) {
    if (socket.writableFinished || !socket.writableEnded) socket.destroy();
    else socket.once('finish', () => socket.destroy());
    return;
  }
  socket.end(last, () => socket.destroy());
}
