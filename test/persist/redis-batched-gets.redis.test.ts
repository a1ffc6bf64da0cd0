/**
 * RedisStore batches the gets of one event-loop pass into one MGET, on a real redis-server
 * (commands counted by Redis itself, INFO commandstats); a server whose ACL refuses MGET gets
 * one GET per key instead.
 */
import { Redis } from 'ioredis';
import { RedisStore } from '../../lib/persist';
import { commandCalls, RedisServer, startRedis } from './helpers/redis-server';

let redis: RedisServer;
let admin: Redis;

beforeAll(async () => {
  redis = await startRedis();
  admin = new Redis(redis.url);
});

afterAll(async () => {
  admin.disconnect();
  await redis.stop();
});

const calls = (command: string): Promise<number> => commandCalls(admin, command);

test("the gets asked for in one pass go to Redis as one MGET, each answered with its own key's value", async () => {
  const store = new RedisStore({ url: redis.url });
  await store.ready();
  try {
    await store.set('a', Buffer.from('value a'), 60);
    await store.set('c', Buffer.from('value c'), 60);
    await admin.lpush('tls-session:list', 'x'); // another type: a miss, as a missing key
    await admin.config('RESETSTAT');
    const values = await Promise.all(['a', 'b', 'c', 'list'].map((key) => store.get(key)));
    expect(values.map((value) => value?.toString())).toEqual(['value a', undefined, 'value c', undefined]);
    expect(await calls('mget')).toBe(1);
    expect(await calls('get')).toBe(0);
    // A lone get is a GET.
    expect((await store.get('a'))?.toString()).toBe('value a');
    expect(await calls('get')).toBe(1);
  } finally {
    await store.close();
  }
});

test('a server whose ACL refuses MGET: the batch is retried one GET per key, and later gets are not batched', async () => {
  await admin.call('ACL', 'SETUSER', 'nomget', 'on', '>secret-pw', '~*', '&*', '+@all', '-mget');
  const url = redis.url.replace('redis://', 'redis://nomget:secret-pw@');
  const store = new RedisStore({ url });
  await store.ready();
  try {
    await store.set('x', Buffer.from('value x'), 60);
    const first = await Promise.all(['x', 'y'].map((key) => store.get(key)));
    expect(first.map((value) => value?.toString())).toEqual(['value x', undefined]);
    await admin.config('RESETSTAT');
    const again = await Promise.all(['x', 'y'].map((key) => store.get(key)));
    expect(again.map((value) => value?.toString())).toEqual(['value x', undefined]);
    expect(await calls('get')).toBe(2);
    expect(await calls('mget')).toBe(0);
  } finally {
    await store.close();
    await admin.call('ACL', 'DELUSER', 'nomget');
  }
});
