export { Session, SessionView, SessionReader, DEFAULT_MAX_DER_BYTES } from './session';
export type { FromDEROptions, FromNodeSessionOptions, ToNodeSessionOptions, SessionSummary } from './session';
export { nodeInternals, nodeSessionFormat, nodeSessionFormatByVersion, sessionBinding, sessionBindingByVersion } from './node-internals';
export type { NodeSessionFormat, NodeSessionFormatInfo } from './node-internals';
export type { NodeInternalsReport, SessionBinding, SessionBindingInfo } from './node-internals';
export { openssl, proveOpenSSLBinding } from './openssl';
export type { OpenSSLInfo, SymbolOrigin } from './openssl';
export { ledger } from './ledger';
export type { Ledger } from './ledger';
export { setLeakDetection, getLeakDetection } from './leak-detection';
export type { LeakDetectionMode } from './leak-detection';
export {
  TlsSessionError,
  SessionDecodeError,
  SessionFreedError,
  SessionViewExpiredError,
  SessionHostError,
  OpenSSLLoadError,
  OpenSSLError,
} from './errors';
export * from './tls';
export * from './persist';
export * from './metrics';
