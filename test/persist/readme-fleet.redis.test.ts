/**
 * The README's fleet example, run verbatim: its code block is read from README.md (docs/PERSISTENCE.md
 * must repeat it word for word), written to a temporary directory next to key.pem and cert.pem,
 * and started twice (two processes, one redis-server) with REDIS_URL, TLS_SESSION_SECRET and
 * PORT (helpers/readme-example.ts). `tls-session` resolves there to the sources (lib/index.ts,
 * through the fixtures' transpile hook). Also started before its Redis: the members listen within
 * a few seconds and serve full handshakes, and A→B resumption returns once Redis runs, without
 * restarting them. A member with an unhandled rejection would print it and exit: both must stay
 * up with an empty stderr.
 */
import { randomBytes } from 'node:crypto';
import { makePki, Pki } from '../helpers/pki';
import { RedisServer, startRedis } from './helpers/redis-server';
import { handshake, HTTP_GET_CLOSE } from './helpers/tls-peers';
import { waitFor } from './helpers/rotation';
import { ExampleApp, exampleApp, expectHealthy, Member, readmeExample, TLS12_SESSION_ID } from './helpers/readme-example';

let pki: Pki;
let app: ExampleApp;
const redises: RedisServer[] = [];

beforeAll(() => {
  pki = makePki();
  const member = readmeExample((block) => block.includes('new RedisStore(') && block.includes('TicketKeyRing'), ['docs/PERSISTENCE.md']);
  app = exampleApp('fleet', pki, { 'member.ts': member });
});

afterAll(async () => {
  app?.remove();
  for (const redis of redises) await redis.stop();
});

function startMember(redisUrl: string, secretHex: string): Promise<Member> {
  return app.start('member.ts', { REDIS_URL: redisUrl, TLS_SESSION_SECRET: secretHex });
}

async function aToB(a: Member, b: Member, extra = {}): Promise<{ first: boolean; onB: boolean; body: string }> {
  const first = await handshake(pki, a.port, undefined, extra, HTTP_GET_CLOSE);
  const onB = await handshake(pki, b.port, first.session, extra, HTTP_GET_CLOSE);
  return { first: first.reused, onB: onB.reused, body: first.data };
}

test('two members of the README fleet example on one Redis: a TLS 1.2 session and a TLS 1.3 ticket from A resume on B', async () => {
  const redis = await startRedis();
  redises.push(redis);
  const secretHex = randomBytes(32).toString('hex');
  const [a, b] = [await startMember(redis.url, secretHex), await startMember(redis.url, secretHex)];
  await a.listening();
  await b.listening();

  const tls12 = await aToB(a, b, TLS12_SESSION_ID);
  expect(tls12.body).toMatch(/hello\n$/);
  expect(tls12).toMatchObject({ first: false, onB: true });
  expect(await aToB(a, b)).toMatchObject({ first: false, onB: true });
  expectHealthy(a, b);
  await Promise.all([a.stop('SIGKILL'), b.stop('SIGKILL')]);
});

test('the README fleet example started before its Redis: members listen and serve full handshakes; once Redis runs, A→B resumes without a restart', async () => {
  const later = await startRedis({ launch: false });
  redises.push(later);
  const secretHex = randomBytes(32).toString('hex');
  const [a, b] = [await startMember(later.url, secretHex), await startMember(later.url, secretHex)];
  await a.listening();
  await b.listening();

  expect(await aToB(a, b, TLS12_SESSION_ID)).toMatchObject({ first: false, onB: false });
  expect(await aToB(a, b)).toMatchObject({ first: false, onB: false });

  await later.restart();
  await waitFor(async () => (await aToB(a, b)).onB, 'a TLS 1.3 ticket from A to resume on B (the rings converged)');
  await waitFor(async () => (await aToB(a, b, TLS12_SESSION_ID)).onB, 'a TLS 1.2 session from A to resume on B (the store reconnected)');
  expectHealthy(a, b);
  await Promise.all([a.stop('SIGKILL'), b.stop('SIGKILL')]);
});
