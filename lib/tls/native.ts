/** The native TLS engine's surface (binding/tls_context.h, binding/tls_connection.h), typed. */
import type { NativeHandle } from '../binding';

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
export const enum ContextEvent { NewSession = 0, RemoveSession = 1, Lookup = 2 }
export type ContextDispatch = (event: ContextEvent, argument: unknown) => unknown;

export interface NativeCacheStats {
  size: number; maxSize: number; timeout: number;
  connect: number; connectGood: number; accept: number; acceptGood: number;
  hits: number; callbackHits: number; misses: number; timeouts: number; cacheFull: number;
}

export interface NativeTlsContext {
  flush(seconds: number): void;
  stats(): NativeCacheStats;
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

export interface NativeConnectionOptions { servername?: string; verifyHost?: string; verifyIp?: string }

export interface NativeTlsBinding {
  NativeTlsContext: {
    new (options: NativeTlsContextOptions, dispatch: ContextDispatch): NativeTlsContext;
    /** Live SSL_CTX and SSL owners in this environment. */
    liveOwners(): number;
  };
  NativeTlsConnection: new (context: NativeTlsContext, options: NativeConnectionOptions, session?: NativeHandle) => NativeTlsConnection;
  /** True while a native TLS call is on the stack (binding/tls_engine.h, TlsEngine::InOpenSSL). */
  inOpenSSL(): boolean;
}
