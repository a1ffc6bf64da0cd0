/** Persistence: session stores, attachSessionStore for TLS 1.2 session IDs, TicketKeyRing for tickets, ClientSessionCache for clients. */
export type { SessionStore } from './stores/contract';
export type { WrittenKeys } from './stores/written-keys';
export { MemoryStore } from './stores/memory';
export type { MemoryStoreOptions } from './stores/memory';
export { SqliteStore } from './stores/sqlite';
export type { SqliteStoreOptions, SqliteStoreStats, SqliteStoreSettings } from './stores/sqlite';
export type { SqliteBackendName, SqliteBackendOption } from './stores/sqlite-backends';
export { RedisStore } from './stores/redis';
export type { RedisStoreOptions, RedisStoreUrlOptions, RedisStoreClientOptions } from './stores/redis';
export { attachSessionStore } from './server/attach';
export { ClientSessionCache } from './client/cache';
export type { ClientSessionCacheOptions, ClientSessionCacheStats, ConnectorOptions, UndiciConnector } from './client/cache';
export type { AttachSessionStoreOptions, SessionStoreHandle } from './server/attach';
export { TicketKeyRing, TICKET_KEY_FALLBACK_WARNING } from './server/ticket-key-ring';
export { TICKET_KEY_BYTES } from '../ticket-key-layout';
export type { TicketKeyRingOptions, TicketKeyRingStats, TicketKeyMode, TicketRenewal } from './server/ticket-key-ring';
export { Sealer, DEFAULT_KEY_ID } from './records/envelope';
export type { Secret, SecretKey, SealPurpose } from './records/envelope';
export { deriveScope, sessionIdContextFor } from './server/session-id-context';
export type { SessionStoreStats, LatencyPercentiles, TicketCounts, TicketKeyAgeCounts } from './counters';
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
export type { RedisClientLike, IoredisStyleClient, NodeRedisStyleClient } from './stores/redis-clients';
