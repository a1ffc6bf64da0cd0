/**
 * The README's SQLite example ("A 10-line HTTPS server whose sessions survive restarts"), run
 * verbatim: its code block is read from README.md (docs/PERSISTENCE.md must repeat it word for
 * word), written to a temporary directory next to key.pem and cert.pem, and started with PORT and
 * TLS_SESSION_SECRET (helpers/readme-example.ts; `tls-session` resolves to lib/index.ts). A TLS 1.2
 * client (session ID: the store) and a TLS 1.3 client (ticket: the key ring) connect; the process
 * is stopped and started again in the same directory; the sessions from before the restart resume
 * after it. Both processes print nothing on stderr.
 */
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { makePki, Pki } from '../helpers/pki';
import { handshake, HTTP_GET_CLOSE } from './helpers/tls-peers';
import { ExampleApp, exampleApp, expectHealthy, readmeExample, TLS12_SESSION_ID } from './helpers/readme-example';

let pki: Pki;
let app: ExampleApp;

beforeAll(() => {
  pki = makePki();
  const server = readmeExample((block) => block.includes('new SqliteStore(') && block.includes('TicketKeyRing'), ['docs/PERSISTENCE.md']);
  app = exampleApp('sqlite', pki, { 'server.ts': server });
});

afterAll(() => app?.remove());

test('the README SQLite example: a TLS 1.2 session and a TLS 1.3 ticket issued before a restart resume after it', async () => {
  const env = { TLS_SESSION_SECRET: randomBytes(32).toString('hex') };
  const before = await app.start('server.ts', env);
  await before.listening();
  const tls12 = await handshake(pki, before.port, undefined, TLS12_SESSION_ID, HTTP_GET_CLOSE);
  const tls13 = await handshake(pki, before.port, undefined, {}, HTTP_GET_CLOSE);
  expect([tls12, tls13].map(({ protocol, reused, data }) => ({ protocol, reused, data: data.slice(-6) }))).toEqual([
    { protocol: 'TLSv1.2', reused: false, data: 'hello\n' },
    { protocol: 'TLSv1.3', reused: false, data: 'hello\n' },
  ]);
  expect(tls12.session).toBeDefined();
  expect(tls13.session).toBeDefined();
  // Where the README's path puts the store, with the mode its comment promises.
  expect((statSync(join(app.dir, 'tls-sessions.db')).mode & 0o777).toString(8)).toBe('600');
  expectHealthy(before);
  await before.stop();

  const after = await app.start('server.ts', env, before.port);
  await after.listening();
  const again12 = await handshake(pki, after.port, tls12.session, TLS12_SESSION_ID, HTTP_GET_CLOSE);
  const again13 = await handshake(pki, after.port, tls13.session, {}, HTTP_GET_CLOSE);
  expect([again12, again13].map(({ protocol, reused }) => ({ protocol, reused }))).toEqual([
    { protocol: 'TLSv1.2', reused: true },
    { protocol: 'TLSv1.3', reused: true },
  ]);
  expect(before.stderr()).toBe('');
  expectHealthy(after);
  await after.stop();
});
