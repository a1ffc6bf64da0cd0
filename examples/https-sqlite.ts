/**
 * An HTTPS server whose TLS sessions survive restarts (SQLite on local disk).
 *   npm run build:ts && TLS_SESSION_SECRET=$(openssl rand -hex 32) node dist/examples/https-sqlite.js
 * Then, with a restart of the server (same secret) in between:
 *   openssl s_client -connect 127.0.0.1:8443 -tls1_2 -no_ticket -sess_out s.pem </dev/null   # "New"
 *   openssl s_client -connect 127.0.0.1:8443 -tls1_2 -no_ticket -sess_in s.pem </dev/null    # "Reused"
 * TLS_KEY_FILE / TLS_CERT_FILE select a certificate (default: a self-signed one kept in ./example-cert).
 */
import { createServer } from 'node:https';
import { attachSessionStore, SqliteStore, TicketKeyRing } from '../lib';
import { devCertificate } from './dev-cert';

const server = createServer(devCertificate(), (req, res) => res.end('hello\n'));
const store = new SqliteStore({ path: process.env.TLS_SESSION_DB ?? 'tls-sessions.db' });
const secret = process.env.TLS_SESSION_SECRET ? Buffer.from(process.env.TLS_SESSION_SECRET, 'hex') : undefined; // 32 bytes
attachSessionStore(server, { store, secret }); // TLS 1.2 session IDs
new TicketKeyRing({ store, secret })
  .attach(server) // TLS 1.3 (and 1.2) tickets
  .then(() => server.listen(Number(process.env.PORT ?? 8443), () => console.log('listening on', server.address())))
  .catch((error: Error & { code?: string }) => {
    console.error(`cannot start: ${error.code} ${error.message}`);
    process.exit(1);
  });
