export { TlsContext } from './context';
export type { TlsContextOptions, TlsRole, TlsVersion, SessionCacheMode, SessionLookup, SessionCacheStats, TicketKeyStats } from './context';
export { TlsConnection } from './connection';
export type { ConnectOptions, AcceptOptions, CipherInfo } from './connection';
export { TlsConfigError, TlsProtocolError, TlsDisconnectError, TlsStateError } from './errors';
export { liveTlsObjects } from './engine';
