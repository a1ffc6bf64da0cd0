/**
 * The README's "Is resumption working?" server, run verbatim (helpers/readme-example.ts): the
 * SQLite server block followed by the metrics block, as the README says to put them, in a
 * temporary app directory (tls-session, and so prom-client, from this checkout).
 */
import { randomBytes } from 'node:crypto';
import { get } from 'node:http';
import { freePort } from '../helpers/free-port';
import type { Pki } from '../helpers/pki';
import { TLS12_SESSION_ID } from '../persist/helpers/readme-example';
import { ExampleApp, exampleApp, Member, readmeExample } from '../persist/helpers/readme-example';
import { handshake, HTTP_GET_CLOSE } from '../persist/helpers/tls-peers';

export interface MetricsApp {
  app: ExampleApp;
  member: Member;
  metricsPort: number;
  scrape(): Promise<string>;
}

export function readmeMetricsServer(): string {
  const sqlite = readmeExample((block) => block.includes('new SqliteStore(') && block.includes('TicketKeyRing'));
  return sqlite + readmeExample((block) => block.includes('collectPrometheusMetrics('));
}

export async function startMetricsApp(pki: Pki): Promise<MetricsApp> {
  const app = exampleApp('metrics', pki, { 'server.ts': readmeMetricsServer() });
  const metricsPort = await freePort();
  const member = await app.start('server.ts', { TLS_SESSION_SECRET: randomBytes(32).toString('hex'), METRICS_PORT: String(metricsPort) });
  await member.listening();
  const scrape = () =>
    new Promise<string>((resolve, reject) => {
      get({ host: '127.0.0.1', port: metricsPort, path: '/metrics' }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`/metrics: HTTP ${res.statusCode}`))));
      }).once('error', reject);
    });
  return { app, member, metricsPort, scrape };
}

/**
 * `full` new clients and `resumed` returning ones per kind: TLS 1.2 without tickets (session ID,
 * the store) and TLS 1.3 (ticket, the key ring). Each returning client offers a session from a
 * full handshake, so the full handshakes are max(full, resumed) per kind.
 */
export async function drive(pki: Pki, port: number, full: number, resumed: number): Promise<void> {
  for (const options of [TLS12_SESSION_ID, {}]) {
    const sessions: Buffer[] = [];
    for (let i = 0; i < full; i++) sessions.push((await handshake(pki, port, undefined, options, HTTP_GET_CLOSE)).session!);
    for (let i = 0; i < resumed; i++) {
      const again = await handshake(pki, port, sessions[i % sessions.length], options, HTTP_GET_CLOSE);
      if (!again.reused) throw new Error(`a ${JSON.stringify(options)} client did not resume`);
      // TLS 1.3 tickets are single-use on a stateful cache; the ring's are not, but keep the newest anyway.
      sessions[i % sessions.length] = again.session ?? sessions[i % sessions.length]!;
    }
  }
}
