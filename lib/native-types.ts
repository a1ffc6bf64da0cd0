/**
 * The native addon's surface, typed (binding/*.cc). Types only, importing nothing: lib/binding.ts
 * loads the addon and re-exports these; every other module imports them from there.
 */

/** The native error kinds (binding/openssl_errors.h, ErrorKind); lib/binding.ts maps each to a class. */
export type NativeErrorKind = 'decode' | 'freed' | 'viewExpired' | 'openssl' | 'invalidArgument' | 'state' | 'config' | 'protocol';

/** A session's slot in the native table (see binding/session_table.h). Never 0 when valid. */
export type NativeHandle = number;

export const enum ReleaseReason {
  Explicit = 0,
  Gc = 1,
}

export interface NativeMetadata {
  id: Buffer;
  idContext: Buffer;
  protocol: string;
  cipher: string | undefined;
  startTime: number;
  timeout: number;
  isResumable: boolean;
  hasTicket: boolean;
  ticketLifetimeHint: number;
  maxEarlyData: number;
  hostname?: string;
  alpnProtocol?: string;
  peerCertificate?: Buffer;
}

export interface NativeOpenSSLInfo {
  version: string;
  versionNumber: number;
  libssl: string;
  libcrypto: string;
  deepbind: boolean;
  relocationsChecked: number;
  headerVersion: string;
  loadedAs: OpenSSLLoadWay;
  fallbackReasons: string[];
  linkMapNamespace: number;
  importsRebound: number;
}

/**
 * How the binding obtained the system OpenSSL (binding/openssl_library.h, LoadWay):
 * 'isolated' (dlopen'ed by the addon with RTLD_DEEPBIND, the usual case), 'reused' (the
 * libssl.so.3 another module had already loaded, proven self-contained), 'private-namespace'
 * (a private copy in its own link-map namespace, dlmopen).
 */
export type OpenSSLLoadWay = 'isolated' | 'reused' | 'private-namespace';

export interface SymbolOrigin {
  symbol: string;
  library: 'libssl' | 'libcrypto';
  file: string;
  ok: boolean;
}

export interface NativeBinding extends NativeTlsBinding {
  openssl: NativeOpenSSLInfo;
  proveSymbols(): SymbolOrigin[];
  setErrorClasses(classes: Record<NativeErrorKind, Function>): void;
  decode(bytes: Uint8Array): NativeHandle;
  encode(handle: NativeHandle): Buffer;
  /** Writes the DER into `dest` when its length is exactly right; returns the DER length either way. */
  encodeInto(handle: NativeHandle, dest: Uint8Array): number;
  upRef(handle: NativeHandle): NativeHandle;
  release(handle: NativeHandle, reason: ReleaseReason): boolean;
  lend(handle: NativeHandle): NativeHandle;
  isLive(handle: NativeHandle): boolean;
  metadata(handle: NativeHandle): NativeMetadata;
  ledger(): {
    acquired: number;
    explicit: number;
    gc: number;
    teardown: number;
    liveInThisEnvironment: number;
    /** V8's whole external-memory total as of the table's last report (other allocations included). */
    v8ExternalMemory: number;
    /** The estimated native size of this environment's live owned sessions (what the table reports to V8). */
    nativeBytes: number;
  };
  /** AES-256-GCM with its key schedule made once (binding/record_cipher.h): the stores' sealed records. */
  NativeRecordCipher: new (key: Uint8Array) => NativeRecordCipher;
}

export interface NativeRecordCipher {
  /** Writes ciphertext | tag (16) into `out` at `offset`; returns the bytes written. */
  seal(iv: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, out: Uint8Array, offset: number): number;
  /** Writes the plaintext into `out` (as long as the ciphertext); false, and `out` wiped, when the tag does not verify. */
  open(iv: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array, out: Uint8Array): boolean;
  /** Frees the key schedules now (cleansed); later calls throw. */
  wipe(): void;
}

// ---- TLS engine (binding/tls_context.h, binding/tls_connection.h) ----

export interface NativeTlsContextOptions {
  server: boolean;
  cert?: Buffer;
  key?: Buffer;
  passphrase?: string;
  ca?: Buffer;
  verifyPeer: boolean;
  requirePeerCertificate: boolean;
  minVersion?: string;
  maxVersion?: string;
  ciphers?: string;
  ciphersuites?: string;
  /** ALPN wire format: length-prefixed protocol names. */
  alpn?: Buffer;
  cacheMode: 'off' | 'client' | 'server' | 'both';
  cacheSize?: number;
  cacheTimeout?: number;
  tickets: boolean;
  sessionIdContext?: Buffer;
}

/** Native → JavaScript calls from the SSL_CTX callbacks. */
export const enum ContextEvent {
  NewSession = 0,
  RemoveSession = 1,
  Lookup = 2,
}
export type ContextDispatch = (event: ContextEvent, argument: unknown) => unknown;

/** SSL_CTX_sess_* counters and the cache's size and timeout (public as SessionCacheStats). */
export interface NativeCacheStats {
  /** Sessions in the internal cache now. */
  size: number;
  maxSize: number;
  timeout: number;
  connect: number;
  connectGood: number;
  accept: number;
  acceptGood: number;
  /** Resumptions from the internal cache or tickets. */
  hits: number;
  /** Resumptions from the session lookup function. */
  callbackHits: number;
  misses: number;
  timeouts: number;
  cacheFull: number;
}

/** What the ticket-key callback did (public as TicketKeyStats; binding/tls_context.cc, OnTicketKey). */
export interface NativeTicketKeyStats {
  /** Keys set now (0: setTicketKeys never called, OpenSSL's own internal keys are in use). */
  keys: number;
  /** Tickets sealed with the first (current) key: new sessions, renewals, TLS 1.3 post-handshake tickets. */
  issued: number;
  /** Tickets opened with the current key. */
  decrypted: number;
  /** Tickets opened with an older key and renewed: OpenSSL issues the client a new ticket under the current key (TLS 1.2 and 1.3). */
  renewed: number;
  /** Tickets whose key name is not among the keys: no resumption from them (full handshake, new ticket). */
  rejected: number;
  /** RAND/EVP failures in the callback (the handshake failed). */
  failed: number;
}

export interface NativeTlsContext {
  flush(seconds: number): void;
  stats(): NativeCacheStats;
  /** Copies the keys (48-byte Uint8Arrays, Node's setTicketKeys layout) into native memory; the first seals. */
  setTicketKeys(keys: Uint8Array[]): void;
  ticketKeyStats(): NativeTicketKeyStats;
  close(): void;
}

export interface NativeCycleResult {
  out?: Buffer;
  data?: Buffer;
  secure?: true;
  closed?: true;
  sessions: NativeHandle[];
  error?: Error & { opensslReason?: string; verifyError?: string };
}

export interface NativeConnectionInfo {
  handshakeDone: boolean;
  protocol?: string;
  reused?: boolean;
  cipher?: { name: string; standardName: string; version: string };
  alpnProtocol?: string;
  peerCertificate?: Buffer;
  verifyResult?: number;
  verifyError?: string;
}

export interface NativeTlsConnection {
  cycle(input: Uint8Array | undefined): NativeCycleResult;
  write(data: Uint8Array): Buffer | undefined;
  shutdown(): Buffer | undefined;
  info(): NativeConnectionInfo | null;
  getSession(): NativeHandle | null;
  setSession(handle: NativeHandle): void;
  free(): void;
}

export interface NativeConnectionOptions {
  servername?: string;
  verifyHost?: string;
  verifyIp?: string;
}

export interface NativeTlsBinding {
  NativeTlsContext: {
    new (options: NativeTlsContextOptions, dispatch: ContextDispatch): NativeTlsContext;
    /** Live SSL_CTX and SSL owners in this environment, and the native size they reported to V8. */
    liveOwners(): { count: number; reportedNativeBytes: number };
  };
  NativeTlsConnection: new (context: NativeTlsContext, options: NativeConnectionOptions, session?: NativeHandle) => NativeTlsConnection;
  /** True while a native TLS call is on the stack (binding/tls_engine.h, TlsEngine::InOpenSSL). */
  inOpenSSL(): boolean;
}
