/**
 * A real Prometheus (Debian's `prometheus` package, 2.42) scrapes the README's metrics server
 * every second on loopback. 3 new and 2 returning clients per kind (TLS 1.2 session ID, TLS 1.3
 * ticket) connect; Prometheus's own query API, given the README's PromQL verbatim, then answers
 * a resumption rate of 4 / 10, 0.4 per protocol, and 'not-offered' as the only miss reason.
 */
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../helpers/free-port';
import { makePki, Pki } from '../helpers/pki';
import { codeBlocks } from '../persist/helpers/readme-example';
import { waitFor } from '../persist/helpers/rotation';
import { drive, MetricsApp, startMetricsApp } from './readme-app';

jest.setTimeout(120_000);

function prometheusBinary(): string {
  try {
    return execFileSync('sh', ['-c', 'command -v prometheus'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('this test needs a real Prometheus: install the Debian package `prometheus` (apt-get install -y prometheus)');
  }
}

let pki: Pki;
let app: MetricsApp | undefined;
let prometheus: ChildProcess | undefined;
let dir: string | undefined;
let prometheusStderr = '';

beforeAll(() => {
  pki = makePki();
});
afterAll(() => {
  prometheus?.kill('SIGKILL');
  app?.app.remove();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).once('error', reject);
  });
}

/** One instant query through Prometheus's HTTP API: the values of its result vector. */
async function query(port: number, promql: string): Promise<Array<{ metric: Record<string, string>; value: number }>> {
  const { status, body } = await httpGet(port, `/api/v1/query?query=${encodeURIComponent(promql)}`);
  if (status !== 200) throw new Error(`query ${promql}: HTTP ${status}: ${body}`);
  const parsed = JSON.parse(body) as { data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
  return parsed.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
}

async function scalar(port: number, promql: string): Promise<number | undefined> {
  const result = await query(port, promql);
  return result.length === 1 ? result[0]!.value : undefined;
}

test("Prometheus scrapes the README server and the README's PromQL gives the resumption rate", async () => {
  const binary = prometheusBinary();
  app = await startMetricsApp(pki);
  dir = mkdtempSync(join(tmpdir(), 'tls-session-prometheus-'));
  const port = await freePort();
  writeFileSync(
    join(dir, 'prometheus.yml'),
    [
      'global:',
      '  scrape_interval: 1s',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      '  - job_name: tls-session',
      '    static_configs:',
      `      - targets: ['127.0.0.1:${app.metricsPort}']`,
      '',
    ].join('\n'),
  );
  prometheus = spawn(
    binary,
    [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  prometheus.stderr!.setEncoding('utf8').on('data', (chunk: string) => (prometheusStderr = (prometheusStderr + chunk).slice(-4000)));
  await waitFor(
    async () => {
      if (prometheus!.exitCode !== null) throw new Error(`prometheus exited (${prometheus!.exitCode}): ${prometheusStderr}`);
      return (await httpGet(port, '/-/ready').catch(() => ({ status: 0 }))).status === 200;
    },
    'Prometheus to be ready',
    30_000,
  );
  const total = 'sum(tls_session_server_handshakes_total)';
  // The collector creates the series at 0: wait for a scrape that has them, then connect.
  await waitFor(async () => (await scalar(port, total)) === 0, 'a first scrape', 30_000);
  await drive(pki, app.member.port, 3, 2);
  await waitFor(async () => (await scalar(port, total)) === 10, 'a scrape with all 10 handshakes', 30_000);

  const [rate, byMechanism, byReason] = codeBlocks('README.md', 'promql').map((block) => block.trim());
  expect(await scalar(port, rate!)).toBeCloseTo(4 / 10, 9);
  const perKind = await query(port, byMechanism!);
  const rows = perKind.map(({ metric, value }) => ({
    protocol: metric.protocol,
    mechanism: metric.mechanism,
    value: Number(value.toFixed(9)),
  }));
  const order = (r: { protocol?: string; mechanism?: string }) => `${r.protocol} ${r.mechanism}`;
  expect(rows.sort((a, b) => order(a).localeCompare(order(b)))).toEqual([
    { protocol: 'TLSv1.2', mechanism: 'session-id', value: 0.4 },
    { protocol: 'TLSv1.2', mechanism: 'ticket', value: 0 },
    { protocol: 'TLSv1.3', mechanism: 'ticket', value: 0.4 },
  ]);
  const reasons = await query(port, byReason!);
  // Every full handshake brought nothing to resume; no other reason moved.
  expect(reasons.filter((r) => r.value > 0).map((r) => r.metric.reason)).toEqual(['not-offered']);
  expect(app.member.stderr()).toBe('');
});
