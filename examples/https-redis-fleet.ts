/**
 * One member of a fleet of HTTPS servers sharing TLS sessions and ticket keys through Redis.
 * Start several (any arguments, any hosts) with the same certificate, secret and Redis:
 *   REDIS_URL=redis://127.0.0.1:6379 TLS_SESSION_SECRET=<64 hex> PORT=8443 node dist/examples/https-redis-fleet.js
 *   REDIS_URL=redis://127.0.0.1:6379 TLS_SESSION_SECRET=<64 hex> PORT=8444 node dist/examples/https-redis-fleet.js
 * A session from one resumes on the other (TLS 1.2 via the store, TLS 1.3 via the ticket ring).
 * TLS_KEY_FILE / TLS_CERT_FILE must name the fleet's shared certificate (the default scope is
 * derived from it).
 */
import { createServer } from 'node:https';
import { attachSessionStore, RedisStore, TicketKeyRing } from '../lib';
import { devCertificate } from './dev-cert';

const server = createServer(devCertificate(), (req, res) => res.end(`hello from ${process.pid}\n`));
const store = new RedisStore({ url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' });
const secret = Buffer.from(process.env.TLS_SESSION_SECRET ?? '', 'hex'); // 32 bytes, the same on every member
const sessions = attachSessionStore(server, { store, secret });
// Redis may be down while the fleet starts: attach waits for it at most the store's start-up
// budget (3 s), then starts on a local ticket key and moves to the fleet's key once Redis answers.
const ring = new TicketKeyRing({
  store,
  secret,
  rotationSeconds: 3600,
  onError: (error: Error & { code?: string }) => console.error(`ticket keys: ${error.code} ${error.message}`),
});
ring.attach(server).then(() => server.listen(Number(process.env.PORT ?? 8443), () => console.log('listening on', server.address())));
// What the ring did so far (tickets by key age, store readiness and outages): kill -USR2 <pid>.
process.on('SIGUSR2', () => console.log(JSON.stringify({ tickets: ring.stats(server), sessions: sessions.stats() })));
process.once('SIGTERM', () => {
  sessions.detach();
  ring.close();
  server.close(() => void store.close());
});
