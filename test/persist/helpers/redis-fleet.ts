/**
 * Two fleet members, each with its own RedisStore over its own client (of any kind), on one
 * Redis or Cluster: TLS 1.2 sessions through attachSessionStore, TLS 1.3 tickets through
 * TicketKeyRing (redis-clients.redis.test.ts, redis-clients-cluster.redis.test.ts).
 */
import { randomBytes } from 'node:crypto';
import { attachSessionStore, RedisStore, TicketKeyRing } from '../../../lib/persist';
import type { Pki } from '../../helpers/pki';
import { waitFor } from './rotation';
import { close, handshake, listen, tls12Server, tls13Server } from './tls-peers';

/** Sessions A issues (`sessions` of them) resume on B, whose argv-derived context differs: stored by A, hit by B. */
export async function tls12FleetResumes(pki: Pki, storeA: RedisStore, storeB: RedisStore, sessions: number): Promise<void> {
  const secret = randomBytes(32);
  const a = tls12Server(pki);
  const b = tls12Server(pki, { sessionIdContext: 'different-argv' });
  const handleA = attachSessionStore(a, { store: storeA, secret, budgetMs: 10_000 });
  const handleB = attachSessionStore(b, { store: storeB, secret, budgetMs: 10_000 });
  const [portA, portB] = [await listen(a), await listen(b)];
  try {
    let resumed = 0;
    for (let i = 0; i < sessions; i++) {
      const first = await handshake(pki, portA);
      expect(first).toMatchObject({ protocol: 'TLSv1.2', reused: false });
      // Stored by A, and (where B keeps a written-key filter) announced to B: the write and its
      // message follow A's handshake, and a client faster than them gets a full handshake.
      await waitFor(() => handleA.stats().stored === i + 1, 'A to store the session');
      await waitFor(() => {
        const filter = storeB.writtenKeyStats()['session:'];
        return !filter?.complete || filter.received >= i + 1;
      }, "B's filter to learn the session's ID");
      if ((await handshake(pki, portB, first.session)).reused) resumed++;
    }
    expect(resumed).toBe(sessions);
    expect(handleA.stats().stored).toBe(sessions);
    expect(handleB.stats().hits).toBe(sessions);
  } finally {
    handleA.detach();
    handleB.detach();
    await close(a);
    await close(b);
    await storeA.close();
    await storeB.close();
  }
}

/** A ticket A issues resumes on B; each epoch key in the store was created by exactly one ring (SET NX). */
export async function tls13FleetResumes(pki: Pki, storeA: RedisStore, storeB: RedisStore): Promise<void> {
  const secret = randomBytes(32);
  const a = tls13Server(pki);
  const b = tls13Server(pki);
  const [ringA, ringB] = [new TicketKeyRing({ store: storeA, secret }), new TicketKeyRing({ store: storeB, secret })];
  await Promise.all([ringA.attach(a), ringB.attach(b)]);
  const [portA, portB] = [await listen(a), await listen(b)];
  try {
    const stored = async () => {
      let count = 0;
      for await (const entry of storeB.entries()) if (entry.key.startsWith('ticket-key:')) count++;
      return count;
    };
    await waitFor(
      async () => ringA.stats().created + ringB.stats().created === (await stored()),
      'the created keys to match the stored ones',
    );
    expect(ringA.stats().created + ringB.stats().created).toBeGreaterThanOrEqual(1);
    const first = await handshake(pki, portA);
    expect(first).toMatchObject({ protocol: 'TLSv1.3', reused: false });
    expect((await handshake(pki, portB, first.session)).reused).toBe(true);
  } finally {
    ringA.close();
    ringB.close();
    await close(a);
    await close(b);
    await storeA.close();
    await storeB.close();
  }
}
