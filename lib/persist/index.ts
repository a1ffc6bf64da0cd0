/** Persistence: session stores, attachSessionStore for TLS 1.2 session IDs, TicketKeyRing for tickets, ClientSessionCache for clients. */
export type { SessionStore } from './store';
export { MemoryStore } from './memory-store';
export type { MemoryStoreOptions } from './memory-store';
export { SqliteStore } from './sqlite-store';
export type { SqliteStoreOptions, SqliteStoreStats, SqliteStoreSettings } from './sqlite-store';
export type { SqliteBackendName, SqliteBackendOption } from './sqlite-backend';
export { RedisStore } from './redis-store';
export type { RedisStoreOptions, RedisStoreUrlOptions, RedisStoreClientOptions } from './redis-store';
export { attachSessionStore } from './attach';
export { ClientSessionCache } from './client-cache';
export type { ClientSessionCacheOptions, ClientSessionCacheStats, ConnectorOptions, UndiciConnector } from './client-cache';
export type { AttachSessionStoreOptions, SessionStoreHandle } from './attach';
export { TicketKeyRing, TICKET_KEY_BYTES, TICKET_KEY_FALLBACK_WARNING } from './ticket-key-ring';
export type { TicketKeyRingOptions, TicketKeyRingStats, TicketKeyMode } from './ticket-key-ring';
export { Sealer, DEFAULT_KEY_ID } from './seal';
export type { Secret, SecretKey, SealPurpose } from './seal';
export { deriveScope, sessionIdContextFor } from './scope';
export type { SessionStoreStats, LatencyPercentiles, TicketCounts, TicketKeyAgeCounts } from './stats';
export {
  PersistConfigError,
  StoreError,
  StoreTimeoutError,
  StoreClosedError,
  RecordFormatError,
  RecordRejectedError,
  UnsealError,
  ScopeError,
  NodeInternalsError,
  ClientConnectTimeoutError,
} from './errors';
export type { RedisClientLike, IoredisStyleClient, NodeRedisStyleClient } from './redis-client';
