/**
 * An HTTPS server that shows whether resumption works: attachSessionStore (SQLite) and a
 * TicketKeyRing, with tls-session's Prometheus metrics on a separate plain-HTTP loopback port.
 *   npm run build:ts && TLS_SESSION_SECRET=$(openssl rand -hex 32) node dist/examples/metrics.js
 *   curl -sk https://127.0.0.1:8443/ ; curl -s http://127.0.0.1:9464/metrics | grep tls_session_server_handshakes_total
 * PORT (8443), METRICS_PORT (9464), TLS_SESSION_DB, TLS_KEY_FILE / TLS_CERT_FILE as in https-sqlite.ts.
 * README "Is resumption working?" has the PromQL for the resumption rate.
 */
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:https';
import { attachSessionStore, collectPrometheusMetrics, SqliteStore, TicketKeyRing } from '../lib';
import { devCertificate } from './dev-cert';

const collector = collectPrometheusMetrics(); // tls_session_* in prom-client's default registry
const server = createServer(devCertificate(), (req, res) => res.end('hello\n'));
const store = new SqliteStore({ path: process.env.TLS_SESSION_DB ?? 'tls-sessions.db' });
const secret = process.env.TLS_SESSION_SECRET ? Buffer.from(process.env.TLS_SESSION_SECRET, 'hex') : undefined; // 32 bytes
attachSessionStore(server, { store, secret });
// Only /metrics, only on loopback: a scraper on this host (or a sidecar) reads it.
const metrics = createHttpServer((req, res) => {
  if (req.url !== '/metrics') return void res.writeHead(404).end();
  collector.metrics().then(
    (text) => res.setHeader('content-type', collector.contentType).end(text),
    () => res.writeHead(500).end(),
  );
});
new TicketKeyRing({ store, secret })
  .attach(server)
  .then(() => {
    server.listen(Number(process.env.PORT ?? 8443), () => console.log('https on', server.address()));
    metrics.listen(Number(process.env.METRICS_PORT ?? 9464), '127.0.0.1', () => console.log('metrics on', metrics.address()));
  })
  .catch((error: Error & { code?: string }) => {
    console.error(`cannot start: ${error.code} ${error.message}`);
    process.exit(1);
  });
