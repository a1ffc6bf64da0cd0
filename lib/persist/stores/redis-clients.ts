/**
 * The Redis client contract RedisStore works through, and adapters for the clients an
 * application may pass. A client is recognised by what it can do, never by `instanceof`: an
 * application's own copy of a client (another version, another install) is a different class.
 *
 * What the store needs of a server: GET, SET key value EX ttl [NX], GETDEL (Redis 6.2+,
 * Valkey 7.2+), DEL, and for `entries()` SCAN + PTTL on every master. Single-key commands only,
 * so a Cluster serves them too.
 *
 * Families:
 * - ioredis-style (ioredis 5 and 6, iovalkey): `status` string, `getBuffer`, `getdelBuffer`,
 *   `set`, `del`, `scan`, `pipeline`, events 'ready'/'error'; a Cluster has `isCluster` and
 *   `nodes('master')`.
 * - node-redis (`redis` / `@redis/client` v4, v5, v6): `sendCommand` and `isOpen`; events
 *   'ready'/'connect'/'error'; a cluster has `masters` and `nodeClient(node)` and its
 *   `sendCommand(firstKey, isReadonly, args, options)`. Raw `sendCommand` is used because it is
 *   the one call whose shape is the same across those versions; replies come back as Buffers
 *   through both versions' option (`returnBuffers` in v4, `typeMapping` since v5: each ignores
 *   the other's).
 */
import { invalidArgType } from '../../errors';
import { PersistConfigError } from '../errors';

type AnyFunction = (...args: never[]) => unknown;

/** An ioredis 5/6 or iovalkey `Redis` or `Cluster` (only the members the store uses). */
export interface IoredisStyleClient {
  readonly status: string;
  getBuffer: AnyFunction;
  getdelBuffer: AnyFunction;
  set: AnyFunction;
  del: AnyFunction;
  on: AnyFunction;
  once: AnyFunction;
  removeListener: AnyFunction;
}

/** A node-redis (`redis`, `@redis/client` v4+) client or cluster, connected by its owner (`await client.connect()`). */
export interface NodeRedisStyleClient {
  readonly isOpen: boolean;
  sendCommand: AnyFunction;
  on: AnyFunction;
  removeListener: AnyFunction;
}

/** What `RedisStore({ client })` accepts. */
export type RedisClientLike = IoredisStyleClient | NodeRedisStyleClient;

/** One master, as `entries()` walks it. */
export interface RedisScanNode {
  scan(cursor: string, pattern: string, count: number): Promise<[string, string[]]>;
  /**
   * Value and PTTL (ms; -1 no expiry, -2 gone) of each key, in order; a failed read gives value
   * undefined and, when Redis refused it (WRONGTYPE: a key of another type), the reply's message.
   */
  read(keys: string[]): Promise<Array<{ value: Buffer | undefined; ttlMs: number; error?: string }>>;
  /** PTTL of each key, in order (ms; -1 no expiry, -2 gone or unreadable). */
  ttls(keys: string[]): Promise<number[]>;
}

/** Whether a PTTL answer (ms; -1 no expiry, -2 gone) says the key is gone, or was unreadable (NaN). */
export const ttlSaysGone = (ttlMs: number): boolean => ttlMs === -2 || Number.isNaN(ttlMs);

/** What a subscription tells its owner. */
export interface SubscriptionEvents {
  /** Subscribed (first, and again after every reconnect): what was published meanwhile is lost. */
  onSubscribed(): void;
  /** The subscription's connection closed (or subscribing failed): messages may be missed until onSubscribed. */
  onLost(): void;
  onMessage(payload: Buffer): void;
}

export interface RedisSubscription {
  /** Unsubscribes and closes the subscription's connection. */
  stop(): void;
}

/** The store's view of a client, the same for every family. */
export interface RedisClientAdapter {
  /** 'ioredis' (ioredis, iovalkey) or 'node-redis'. */
  readonly family: 'ioredis' | 'node-redis';
  readonly isCluster: boolean;
  /** 'ready' when commands can run. */
  status(): string;
  get(key: string): Promise<Buffer | null>;
  /** MGET: the values of several keys in one command (single node only: a Cluster's keys may live on several). */
  getMany?(keys: string[]): Promise<Array<Buffer | null>>;
  /** SET … EX ttl (NX when onlyIfAbsent); true when written. */
  set(key: string, value: Buffer, ttlSeconds: number, onlyIfAbsent: boolean): Promise<boolean>;
  getdel(key: string): Promise<Buffer | null>;
  del(key: string): Promise<void>;
  masters(): Promise<RedisScanNode[]>;
  /**
   * A second connection, subscribed to `channel`, resubscribing after each reconnect: what the
   * written-key filter needs. Only ioredis-style single-node clients (a client with
   * duplicate()): undefined for the others, whose lookups then all go to Redis.
   */
  subscribe?(channel: string, events: SubscriptionEvents): RedisSubscription;
  /** PUBLISH: every family (so that every member announces its writes, filter or not). */
  publish?(channel: string, payload: Buffer): Promise<void>;
  /** Calls `listener` once the client is ready; returns the function that stops waiting. */
  whenReady(listener: () => void): () => void;
  onError(listener: () => void): void;
  offError(listener: () => void): void;
  disconnect(): void;
}

const isFunction = (value: unknown): value is (...args: unknown[]) => unknown => typeof value === 'function';

/** Throws the error that names the first capability `client` lacks. */
function requireMethods(client: Record<string, unknown>, family: string, methods: Array<[name: string, why: string]>): void {
  for (const [name, why] of methods) {
    if (!isFunction(client[name])) {
      throw new PersistConfigError(`options.client lacks ${name}() (${family} client; ${why})`);
    }
  }
}

/** The adapter for a client the caller passed: recognised by its shape. */
export function adaptRedisClient(client: unknown): RedisClientAdapter {
  if (client === null || typeof client !== 'object') {
    throw invalidArgType('options.client', 'a Redis client (ioredis 5/6, iovalkey, or node-redis v4+)', client);
  }
  const shape = client as Record<string, unknown>;
  // node-redis first: ioredis also has a sendCommand, but never a boolean isOpen.
  if (typeof shape.isOpen === 'boolean' && isFunction(shape.sendCommand)) return nodeRedisAdapter(shape);
  if (typeof shape.status === 'string' && isFunction(shape.on)) return ioredisAdapter(shape);
  throw invalidArgType(
    'options.client',
    'a Redis client (ioredis 5/6 or iovalkey Redis/Cluster with a status, or node-redis v4+ with sendCommand and isOpen)',
    client,
  );
}

type IoredisNode = {
  scan(...args: unknown[]): Promise<[string, string[]]>;
  pipeline(): { getBuffer(key: string): unknown; pttl(key: string): unknown; exec(): Promise<Array<[Error | null, unknown]> | null> };
};

/** The subscriber connection ioredis's duplicate() makes (only what subscribe() uses). */
type IoredisSubscriber = {
  subscribe(channel: string): Promise<unknown>;
  on(event: string, listener: (...args: never[]) => void): unknown;
  removeAllListeners(): unknown;
  disconnect(): void;
};

/** subscribe() for an ioredis-style client: its duplicate() is the subscriber connection. */
function ioredisSubscription(duplicate: () => IoredisSubscriber, channel: string, events: SubscriptionEvents): RedisSubscription {
  const subscriber = duplicate();
  const channelBytes = Buffer.from(channel, 'utf8');
  let stopped = false;
  subscriber.on('ready', () => {
    // Every 'ready' (the first connect and each reconnect) subscribes again: idempotent, and
    // only its answer tells that messages flow from here on.
    subscriber.subscribe(channel).then(
      () => {
        if (!stopped) events.onSubscribed();
      },
      () => {
        if (!stopped) events.onLost();
      },
    );
  });
  subscriber.on('close', () => {
    if (!stopped) events.onLost();
  });
  // Counted nowhere and never printed: a lost subscription only means lookups go to Redis.
  subscriber.on('error', () => undefined);
  subscriber.on('messageBuffer', (from: Buffer, message: Buffer) => {
    if (!stopped && channelBytes.equals(from)) events.onMessage(message);
  });
  return {
    stop() {
      if (stopped) return;
      stopped = true;
      subscriber.removeAllListeners();
      subscriber.on('error', () => undefined);
      subscriber.disconnect();
    },
  };
}

function ioredisAdapter(client: Record<string, unknown>): RedisClientAdapter {
  const family = 'ioredis-style';
  requireMethods(client, family, [
    ['getBuffer', 'reads a session as bytes'],
    ['set', 'SET … EX for every write'],
    ['getdelBuffer', 'GETDEL takes a TLS 1.3 ticket once; needs ioredis 4.28+ and Redis 6.2+'],
    ['del', 'deletes a refused record'],
    ['once', "waits for 'ready'"],
    ['removeListener', 'stops counting errors on close()'],
  ]);
  const isCluster = client.isCluster === true;
  requireMethods(
    client,
    family,
    isCluster
      ? [['nodes', "lists a Cluster's masters for SCAN"]]
      : [
          ['scan', 'lists keys (entries())'],
          ['pipeline', 'reads listed keys'],
        ],
  );
  // Typed loosely on purpose: ioredis 5, 6 and iovalkey declare these differently but call them alike.
  const c = client as unknown as {
    status: string;
    getBuffer(key: string): Promise<Buffer | null>;
    mgetBuffer(...keys: string[]): Promise<Array<Buffer | null>>;
    getdelBuffer(key: string): Promise<Buffer | null>;
    set(...args: unknown[]): Promise<string | null>;
    del(key: string): Promise<number>;
    nodes(role: string): IoredisNode[];
    duplicate(): IoredisSubscriber;
    publish(channel: string, payload: Buffer): Promise<number>;
    on(event: string, listener: () => void): unknown;
    once(event: string, listener: () => void): unknown;
    removeListener(event: string, listener: () => void): unknown;
    disconnect(): void;
  };
  const node = (target: IoredisNode): RedisScanNode => ({
    scan: (cursor, pattern, count) => target.scan(cursor, 'MATCH', pattern, 'COUNT', count),
    async read(keys) {
      const pipeline = target.pipeline();
      for (const key of keys) {
        pipeline.getBuffer(key);
        pipeline.pttl(key);
      }
      const replies = (await pipeline.exec()) ?? [];
      return keys.map((_key, index) => {
        const [valueError, value] = replies[2 * index] ?? [];
        const [ttlError, ttl] = replies[2 * index + 1] ?? [];
        const readable = !valueError && !ttlError && Buffer.isBuffer(value);
        return { value: readable ? value : undefined, ttlMs: Number(ttl), ...(valueError ? { error: valueError.message } : {}) };
      });
    },
    async ttls(keys) {
      const pipeline = target.pipeline();
      for (const key of keys) pipeline.pttl(key);
      const replies = (await pipeline.exec()) ?? [];
      return keys.map((_key, index) => {
        const [error, ttl] = replies[index] ?? [];
        return error ? -2 : Number(ttl);
      });
    },
  });
  const canSubscribe = !isCluster && isFunction(client.duplicate);
  return {
    family: 'ioredis',
    isCluster,
    status: () => c.status,
    get: (key) => c.getBuffer(key),
    ...(!isCluster && isFunction(client.mgetBuffer) ? { getMany: (keys: string[]) => c.mgetBuffer(...keys) } : {}),
    set: async (key, value, ttl, onlyIfAbsent) =>
      (await (onlyIfAbsent ? c.set(key, value, 'EX', ttl, 'NX') : c.set(key, value, 'EX', ttl))) === 'OK',
    getdel: (key) => c.getdelBuffer(key),
    del: async (key) => {
      await c.del(key);
    },
    masters: async () => (isCluster ? c.nodes('master') : [c as unknown as IoredisNode]).map(node),
    ...(canSubscribe
      ? { subscribe: (channel: string, events: SubscriptionEvents) => ioredisSubscription(() => c.duplicate(), channel, events) }
      : {}),
    ...(isFunction(client.publish)
      ? {
          publish: async (channel: string, payload: Buffer) => {
            await c.publish(channel, payload);
          },
        }
      : {}),
    whenReady(listener) {
      c.once('ready', listener);
      return () => c.removeListener('ready', listener);
    },
    onError: (listener) => c.on('error', listener),
    offError: (listener) => c.removeListener('error', listener),
    disconnect: () => c.disconnect(),
  };
}

/** node-redis's reply-as-Buffer option, for v4 (returnBuffers) and v5+ (typeMapping of RESP blob strings, '$'). */
const BUFFER_REPLIES = { returnBuffers: true, typeMapping: { [0x24]: Buffer } };

type NodeRedisClient = {
  isOpen: boolean;
  isReady?: boolean;
  sendCommand(...args: unknown[]): Promise<unknown>;
};

/** An absent key's reply: null (RESP2) or undefined (some RESP3 mappings). */
const asBuffer = (reply: unknown): Buffer | null => (Buffer.isBuffer(reply) ? reply : reply == null ? null : Buffer.from(String(reply)));

function nodeRedisAdapter(client: Record<string, unknown>): RedisClientAdapter {
  const family = 'node-redis';
  requireMethods(client, family, [
    ['on', "counts 'error' events (node-redis throws an unlistened one)"],
    ['removeListener', 'stops counting errors on close()'],
  ]);
  // A cluster routes by key: sendCommand(firstKey, isReadonly, args, options).
  const isCluster = 'masters' in client || isFunction(client.nodeClient);
  if (isCluster) requireMethods(client, family, [['nodeClient', "reaches each master for SCAN (node-redis cluster 'masters')"]]);
  const c = client as unknown as NodeRedisClient & {
    masters: unknown[];
    nodeClient(node: unknown): NodeRedisClient | Promise<NodeRedisClient>;
    on(event: string, listener: () => void): unknown;
    removeListener(event: string, listener: () => void): unknown;
    destroy?(): void;
    disconnect?(): Promise<void>;
  };
  // Reads go to masters (isReadonly false): a session just written on A must be there for B.
  const send = (key: string, args: Array<string | Buffer>, options?: object): Promise<unknown> =>
    isCluster ? c.sendCommand(key, false, args, options) : c.sendCommand(args, options);
  // A cluster in v4/v5 has no isReady: open means its slots are known (connect() resolved).
  const ready = (target: NodeRedisClient): boolean => (typeof target.isReady === 'boolean' ? target.isReady : target.isOpen);
  const node = (target: NodeRedisClient): RedisScanNode => ({
    async scan(cursor, pattern, count) {
      const reply = (await target.sendCommand(['SCAN', cursor, 'MATCH', pattern, 'COUNT', String(count)])) as [unknown, unknown[]];
      return [String(reply[0]), reply[1].map(String)];
    },
    read: (keys) =>
      Promise.all(
        keys.map(async (key) => {
          // Sent together, so node-redis writes them in one batch (its own pipelining).
          let error: string | undefined;
          const [value, ttl] = await Promise.all([
            target.sendCommand(['GET', key], BUFFER_REPLIES).then(asBuffer, (reason: unknown) => {
              error = reason instanceof Error ? reason.message : String(reason);
              return null;
            }),
            target.sendCommand(['PTTL', key]).then(Number, () => -2),
          ]);
          return { value: value ?? undefined, ttlMs: ttl, ...(error !== undefined ? { error } : {}) };
        }),
      ),
    ttls: (keys) => Promise.all(keys.map((key) => target.sendCommand(['PTTL', key]).then(Number, () => -2))),
  });
  return {
    family: 'node-redis',
    isCluster,
    status: () => (ready(c) ? 'ready' : c.isOpen ? 'connecting' : 'closed (node-redis: call connect())'),
    get: async (key) => asBuffer(await send(key, ['GET', key], BUFFER_REPLIES)),
    ...(isCluster
      ? {}
      : {
          getMany: async (keys: string[]) => {
            const reply = await c.sendCommand(['MGET', ...keys], BUFFER_REPLIES);
            return Array.isArray(reply) ? reply.map(asBuffer) : keys.map(() => null);
          },
        }),
    set: async (key, value, ttl, onlyIfAbsent) => {
      const args = ['SET', key, value, 'EX', String(ttl)];
      if (onlyIfAbsent) args.push('NX');
      const reply = await send(key, args);
      return reply !== null && reply !== undefined && String(reply) === 'OK';
    },
    getdel: async (key) => asBuffer(await send(key, ['GETDEL', key], BUFFER_REPLIES)),
    publish: async (channel, payload) => {
      await send(channel, ['PUBLISH', channel, payload]);
    },
    del: async (key) => {
      await send(key, ['DEL', key]);
    },
    masters: async () => {
      if (!isCluster) return [node(c)];
      return Promise.all(c.masters.map(async (master) => node(await c.nodeClient(master))));
    },
    whenReady(listener) {
      // A v4/v5 cluster signals nothing when it is ready ('connect' only from v5), so also look
      // now and then; the store's start-up budget ends the wait.
      let done = false;
      const check = (): void => {
        if (done || !ready(c)) return;
        stop();
        listener();
      };
      const timer = setInterval(check, 50);
      timer.unref();
      c.on('ready', check);
      c.on('connect', check);
      const stop = (): void => {
        done = true;
        clearInterval(timer);
        c.removeListener('ready', check);
        c.removeListener('connect', check);
      };
      return stop;
    },
    onError: (listener) => c.on('error', listener),
    offError: (listener) => c.removeListener('error', listener),
    disconnect: () => {
      if (isFunction(c.destroy)) c.destroy();
      else void c.disconnect?.().catch(() => undefined);
    },
  };
}

/** The store's own client (`{ url }`): ioredis, wrapped like a passed one. */
export function ownIoredisAdapter(client: IoredisStyleClient): RedisClientAdapter {
  return ioredisAdapter(client as unknown as Record<string, unknown>);
}
