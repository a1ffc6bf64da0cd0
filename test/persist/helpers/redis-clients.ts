/**
 * Every Redis client kind RedisStore accepts, connected to a real server or cluster: ioredis 5
 * (this package's copy, and a second module instance of it, as an application's own install
 * would be), ioredis 6, iovalkey, and node-redis v4, v5 and v6 (devDependencies under aliases).
 * Each factory returns the client as RedisClientLike without a cast: an application's client type-checks as one.
 */
import * as ioredis5 from 'ioredis';
import * as ioredis6 from 'ioredis6';
import * as iovalkey from 'iovalkey';
import * as nodeRedis6 from 'redis';
import * as nodeRedis5 from 'redis5';
import * as nodeRedis4 from 'redis4';
import type { RedisClientLike } from '../../../lib/persist/stores/redis-clients';

export const CLIENT_KINDS = ['ioredis5', 'ioredis5-copy', 'ioredis6', 'iovalkey', 'node-redis4', 'node-redis5', 'node-redis6'] as const;
export type ClientKind = (typeof CLIENT_KINDS)[number];

export interface ConnectedClient {
  kind: ClientKind;
  client: RedisClientLike;
  /** GET through the client itself (as a string), proving it still works. */
  get(key: string): Promise<string | null>;
  /** Whether the client still counts itself connected. */
  isOpen(): boolean;
  /** Errors the client emitted (node-redis throws an 'error' nobody listens to). */
  errors: Error[];
  close(): Promise<void>;
}

/** A second instance of ioredis 5: other classes, as in an application's own node_modules. */
function ioredis5Copy(): typeof ioredis5 {
  let copy: typeof ioredis5 | undefined;
  jest.isolateModules(() => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    copy = require('ioredis') as typeof ioredis5;
  });
  if (copy!.Redis === ioredis5.Redis) throw new Error('jest.isolateModules gave the same ioredis module instance');
  return copy!;
}

type IoredisLike = {
  status: string;
  get(key: string): Promise<string | null>;
  disconnect(): void;
  once(event: string, listener: (error?: Error) => void): unknown;
};

function ioredisReady(client: IoredisLike, errors: Error[], kind: ClientKind): Promise<ConnectedClient> {
  return new Promise((resolve, reject) => {
    client.once('ready', () =>
      resolve({
        kind,
        client: client as unknown as RedisClientLike,
        get: (key) => client.get(key),
        isOpen: () => client.status === 'ready',
        errors,
        close: async () => client.disconnect(),
      }),
    );
    client.once('error', (error) => reject(error ?? new Error(`${kind}: connection failed`)));
  });
}

type NodeRedisLike = { isOpen: boolean; get(key: string): Promise<unknown>; destroy?(): void; disconnect(): Promise<void> };

function nodeRedisClient(kind: ClientKind, client: NodeRedisLike, errors: Error[]): ConnectedClient {
  return {
    kind,
    client: client as unknown as RedisClientLike,
    get: async (key) => {
      const value = await client.get(key);
      return value === null || value === undefined ? null : String(value);
    },
    isOpen: () => client.isOpen,
    errors,
    close: async () => {
      if (!client.isOpen) return;
      if (typeof client.destroy === 'function') client.destroy();
      else await client.disconnect();
    },
  };
}

/** Makes an unconnected client of each kind: one line each, as an application would write it. */
const SINGLE: Record<ClientKind, (url: string) => RedisClientLike> = {
  ioredis5: (url) => new ioredis5.Redis(url),
  'ioredis5-copy': (url) => new (ioredis5Copy().Redis)(url),
  ioredis6: (url) => new ioredis6.Redis(url),
  iovalkey: (url) => new iovalkey.Redis(url),
  'node-redis4': (url) => nodeRedis4.createClient({ url }),
  'node-redis5': (url) => nodeRedis5.createClient({ url }),
  'node-redis6': (url) => nodeRedis6.createClient({ url }),
};

type Nodes = Array<{ host: string; port: number }>;
// slotsRefreshInterval 0: see cluster.redis.test.ts (a refresh in flight at disconnect() keeps the worker alive).
const CLUSTER: Record<ClientKind, (nodes: Nodes) => RedisClientLike> = {
  ioredis5: (nodes) => new ioredis5.Cluster(nodes, { slotsRefreshInterval: 0 }),
  'ioredis5-copy': (nodes) => new (ioredis5Copy().Cluster)(nodes, { slotsRefreshInterval: 0 }),
  ioredis6: (nodes) => new ioredis6.Cluster(nodes, { slotsRefreshInterval: 0 }),
  iovalkey: (nodes) => new iovalkey.Cluster(nodes, { slotsRefreshInterval: 0 }),
  'node-redis4': (nodes) => nodeRedis4.createCluster({ rootNodes: rootNodes(nodes) }),
  'node-redis5': (nodes) => nodeRedis5.createCluster({ rootNodes: rootNodes(nodes) }),
  'node-redis6': (nodes) => nodeRedis6.createCluster({ rootNodes: rootNodes(nodes) }),
};

function rootNodes(nodes: Nodes): Array<{ url: string }> {
  return nodes.map((node) => ({ url: `redis://${node.host}:${node.port}` }));
}

async function connected(kind: ClientKind, client: RedisClientLike): Promise<ConnectedClient> {
  const errors: Error[] = [];
  const emitter = client as unknown as { on(event: 'error', listener: (error: Error) => void): unknown };
  emitter.on('error', (error) => errors.push(error));
  if ('status' in client) return ioredisReady(client as unknown as IoredisLike, errors, kind);
  await (client as unknown as { connect(): Promise<unknown> }).connect();
  return nodeRedisClient(kind, client as unknown as NodeRedisLike, errors);
}

/** A client of `kind` connected to the redis-server at `url`. */
export function connectClient(kind: ClientKind, url: string): Promise<ConnectedClient> {
  return connected(kind, SINGLE[kind](url));
}

/** A cluster client of `kind` for the cluster whose nodes are `nodes`. */
export function connectClusterClient(kind: ClientKind, nodes: Nodes): Promise<ConnectedClient> {
  return connected(kind, CLUSTER[kind](nodes));
}
