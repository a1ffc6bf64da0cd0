/**
 * `tls-session probe` against real loopback servers: node:tls with and without attachSessionStore,
 * openssl s_server -no_ticket, and two-member fleets that share sessions or do not.
 */
import { join } from 'node:path';
import { freePort } from '../helpers/free-port';
import { startSServer } from '../helpers/peers';
import { makePki, type Pki } from '../helpers/pki';
import { runCli, type CliResult } from './cli';
import { startProbeServers, type ProbeServerPorts, type ProbeServers } from './probe-servers';

let pki: Pki;
let servers: ProbeServers;
let ports: ProbeServerPorts;

beforeAll(async () => {
  pki = makePki();
  servers = await startProbeServers(pki);
  ports = servers.ports;
});

afterAll(() => servers.stop());

const at = (port: number) => `127.0.0.1:${port}`;

function probe(...args: string[]): CliResult {
  return runCli(['probe', ...args]);
}

/** The JSON output, checked to have exactly the documented keys and types. */
function parseJson(result: CliResult): { target: string; results: Record<string, unknown>[] } {
  // Nothing that could be a session, ticket or key: no long hex or base64 run.
  expect(result.out).not.toMatch(/[A-Za-z0-9+/=]{32,}/);
  const output = JSON.parse(result.out) as { target: string; results: Record<string, unknown>[] };
  expect(Object.keys(output)).toEqual(['target', 'results']);
  expect(typeof output.target).toBe('string');
  for (const row of output.results) {
    const keys = [
      'protocol',
      'mechanism',
      ...('across' in row ? ['across'] : []),
      'resumed',
      'handshakeMs',
      ...('reason' in row ? ['reason'] : []),
    ];
    expect(Object.keys(row)).toEqual(keys);
    expect(['TLSv1.3', 'TLSv1.2']).toContain(row.protocol);
    expect(['ticket', 'session-id']).toContain(row.mechanism);
    expect(typeof row.resumed).toBe('boolean');
    if ('across' in row) expect(typeof row.across).toBe('string');
    if ('reason' in row) expect(typeof row.reason).toBe('string');
    const ms = row.handshakeMs as Record<string, unknown>;
    expect(Object.keys(ms)).toEqual(['full', 'resumed']);
    for (const value of Object.values(ms)) if (value !== null) expect(value).toBeGreaterThan(0);
  }
  return output;
}

/** "protocol mechanism [@across] yes|no" for each row: what the assertions compare. */
const summary = (rows: Record<string, unknown>[]) =>
  rows.map((r) => [r.protocol, r.mechanism, ...('across' in r ? [`@${String(r.across)}`] : []), r.resumed ? 'yes' : 'no'].join(' '));

describe('against a node:tls server', () => {
  test('without a store: tickets resume, TLS 1.2 session IDs do not (Node keeps no session-ID cache); exit 1', () => {
    const result = probe(at(ports.plain), '--ca', pki.caCertPath, '--json');
    expect(result.err).toBe('');
    expect(result.status).toBe(1);
    const output = parseJson(result);
    expect(output.target).toBe(at(ports.plain));
    expect(summary(output.results)).toEqual(['TLSv1.3 ticket yes', 'TLSv1.2 ticket yes', 'TLSv1.2 session-id no']);
    // The session was offered and refused: both handshakes happened, no reason needed.
    expect(output.results[2]).not.toHaveProperty('reason');
    expect(typeof (output.results[2]!.handshakeMs as { resumed: unknown }).resumed).toBe('number');
  });

  test('with attachSessionStore(MemoryStore): all three resume; exit 0; aligned table without --json', () => {
    const result = probe(`localhost:${ports.stored}`, '--ca', pki.caCertPath);
    expect(result.err).toBe('');
    expect(result.status).toBe(0);
    const lines = result.out.trimEnd().split('\n');
    expect(lines[0]).toBe(`probe localhost:${ports.stored}`);
    expect(lines[1]).toMatch(/^PROTOCOL {2}MECHANISM {3}RESUMED {2}FULL MS {2}RESUMED MS$/);
    expect(lines.slice(2, 5).map((line) => line.split(/\s+/).slice(0, 3))).toEqual([
      ['TLSv1.3', 'ticket', 'yes'],
      ['TLSv1.2', 'ticket', 'yes'],
      ['TLSv1.2', 'session-id', 'yes'],
    ]);
    for (const line of lines.slice(2, 5)) expect(line).toMatch(/ \d+\.\d\d {2,}\d+\.\d\d$/);
    expect(lines[5]).toBe('3 of 3 resumed');
    expect(lines).toHaveLength(6);
  });

  test('a TLS 1.3-only server: the TLS 1.2 rows say why they did not resume', () => {
    const result = probe(at(ports.tls13only), '--ca', pki.caCertPath, '--json');
    expect(result.status).toBe(1);
    const rows = parseJson(result).results;
    expect(summary(rows)).toEqual(['TLSv1.3 ticket yes', 'TLSv1.2 ticket no', 'TLSv1.2 session-id no']);
    for (const row of rows.slice(1)) {
      expect(row.reason).toBe('full handshake failed: tlsv1 alert protocol version (ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION)');
      expect(row.handshakeMs).toEqual({ full: null, resumed: null });
    }
  });
});

test('openssl s_server -no_ticket: no TLS 1.2 ticket; TLS 1.3 still resumes (stateful tickets from its cache); session IDs resume', async () => {
  const server = await startSServer(pki, ['-no_ticket']);
  try {
    const result = probe(at(server.port), '--ca', pki.caCertPath, '--json');
    expect(result.err).toBe('');
    expect(result.status).toBe(1);
    const rows = parseJson(result).results;
    expect(summary(rows)).toEqual(['TLSv1.3 ticket yes', 'TLSv1.2 ticket no', 'TLSv1.2 session-id yes']);
    expect(rows[1]!.reason).toBe('the server issued no ticket');
    expect((rows[1]!.handshakeMs as { resumed: unknown }).resumed).toBeNull();
  } finally {
    await server.stop();
  }
});

describe('--across', () => {
  test.each([
    ['sharing a MemoryStore and ticket keys: every session resumes on the other; exit 0', 'fleetA', 'fleetB', 'yes', 0],
    ['with their own stores and keys: nothing resumes across; exit 1', 'stored', 'storedOther', 'no', 1],
  ] as const)('two members %s', (_name, first, second, across, status) => {
    const other = at(ports[second]);
    const result = probe(at(ports[first]), '--ca', pki.caCertPath, '--json', '--across', other);
    expect(result.err).toBe('');
    expect(result.status).toBe(status);
    const output = parseJson(result);
    expect(output.target).toBe(at(ports[first]));
    expect(summary(output.results)).toEqual(
      ['TLSv1.3 ticket', 'TLSv1.2 ticket', 'TLSv1.2 session-id'].flatMap((check) => [`${check} yes`, `${check} @${other} ${across}`]),
    );
  });

  test('the table names where each session was offered', () => {
    const other = at(ports.storedOther);
    const table = probe(at(ports.stored), '--ca', pki.caCertPath, '--across', other);
    expect(table.status).toBe(1);
    const lines = table.out.trimEnd().split('\n');
    expect(lines[1]).toMatch(/^PROTOCOL {2}MECHANISM {3}OFFERED TO +RESUMED {2}FULL MS {2}RESUMED MS$/);
    expect(lines.slice(2, 4).map((line) => line.split(/\s+/).slice(0, 4))).toEqual([
      ['TLSv1.3', 'ticket', at(ports.stored), 'yes'],
      ['TLSv1.3', 'ticket', other, 'no'],
    ]);
    expect(lines.at(-1)).toBe('3 of 6 resumed');
  });
});

describe('errors: one line on stderr', () => {
  test.each([
    ['a target without a port', ['localhost']],
    ['a port out of range', ['127.0.0.1:70000']],
    ['a bad --across target', ['127.0.0.1:443', '--across', 'a:b']],
  ])('%s: exit 2', (_name, args) => {
    const result = probe(...args);
    expect(result.status).toBe(2);
    expect(result.out).toBe('');
    expect(result.err).toMatch(/^tls-session: bad target "[^"]+": expected HOST:PORT .*\n$/);
  });

  test('an unknown option: exit 2', () => {
    const result = probe('127.0.0.1:443', '--bogus');
    expect(result.status).toBe(2);
    expect(result.err.split('\n')[0]).toMatch(/^tls-session: unknown option '--bogus'/);
  });

  test('a closed port: exit 1, "connection refused"', async () => {
    const port = await freePort();
    const result = probe(at(port), '--json');
    expect(result.status).toBe(1);
    expect(result.out).toBe('');
    expect(result.err).toBe(`tls-session: cannot connect to ${at(port)}: connection refused (ECONNREFUSED)\n`);
  });

  test('an --across member that is down: exit 1, naming it', async () => {
    const port = await freePort();
    const result = probe(at(ports.plain), '--ca', pki.caCertPath, '--across', at(port));
    expect(result.status).toBe(1);
    expect(result.err).toBe(`tls-session: cannot connect to ${at(port)}: connection refused (ECONNREFUSED)\n`);
  });

  test('an untrusted certificate: exit 1, a hint; --insecure probes anyway', () => {
    const result = probe(at(ports.plain));
    expect(result.status).toBe(1);
    expect(result.err).toMatch(/^tls-session: 127\.0\.0\.1:\d+: certificate not accepted: .*; pass --ca FILE or --insecure\n$/);
    const insecure = probe(at(ports.plain), '--insecure', '--json');
    expect(summary(parseJson(insecure).results)).toEqual(['TLSv1.3 ticket yes', 'TLSv1.2 ticket yes', 'TLSv1.2 session-id no']);
  });

  test('an unreadable --ca file: exit 1', () => {
    const result = probe(at(ports.plain), '--ca', join(pki.dir, 'missing.pem'));
    expect(result.status).toBe(1);
    expect(result.err).toBe(`tls-session: cannot read --ca ${join(pki.dir, 'missing.pem')} (ENOENT)\n`);
  });
});
