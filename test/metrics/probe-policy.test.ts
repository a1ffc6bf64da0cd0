/**
 * `tls-session probe --policy`: what a client sees of a server's ticket policy, against real
 * servers: node:tls with a TicketKeyRing that rotates every second (the key changes between two
 * connections 1.2 s apart; the ring still resumes both), one that does not rotate, and
 * openssl s_server. The probe runs as the real command in a child process (asynchronously, so
 * the servers in this process keep answering).
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { MemoryStore, TicketKeyRing } from '../../lib';
import { startSServer } from '../helpers/peers';
import { makePki, type Pki } from '../helpers/pki';
import { close, listen, tls13Server } from '../persist/helpers/tls-peers';

const root = join(__dirname, '..', '..');
let pki: Pki;

beforeAll(() => {
  pki = makePki();
});

interface Row {
  protocol: string;
  mechanism: string;
  resumed: boolean;
  policy?: { ticketLifetimeHintSeconds: number | null; ticketKeyChanged: boolean | null; intervalSeconds: number };
}

function probe(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['-r', join(root, 'test', 'persist', 'fixtures', 'register-ts.js'), join(root, 'lib', 'cli', 'main.ts'), 'probe', ...args],
      { cwd: root, timeout: 60_000 },
      (error, out, err) => resolve({ code: error ? Number(error.code ?? 1) : 0, out, err }),
    );
  });
}

async function ringServer(rotationSeconds: number) {
  const server = tls13Server(pki, { sessionTimeout: 600 });
  const ring = new TicketKeyRing({ store: new MemoryStore(), rotationSeconds, retentionSeconds: 600 });
  await ring.attach(server);
  const port = await listen(server);
  return {
    port,
    stop: async () => {
      ring.close();
      await close(server);
    },
  };
}

const policies = (rows: Row[]) =>
  rows.filter((row) => row.mechanism === 'ticket').map((row) => ({ protocol: row.protocol, resumed: row.resumed, policy: row.policy }));

test('a TicketKeyRing rotating every second: the key changed between connections 1.2 s apart; the lifetime hint is sessionTimeout', async () => {
  const server = await ringServer(1);
  try {
    const result = await probe([
      `127.0.0.1:${server.port}`,
      '--servername',
      'localhost',
      '--ca',
      pki.caCertPath,
      '--policy',
      '--policy-interval',
      '1.2',
      '--json',
    ]);
    expect(result.err).toBe('');
    // Nothing that could be a ticket or key name.
    expect(result.out).not.toMatch(/[A-Za-z0-9+/=]{32,}/);
    const rows = (JSON.parse(result.out) as { results: Row[] }).results;
    expect(policies(rows)).toEqual([
      { protocol: 'TLSv1.3', resumed: true, policy: { ticketLifetimeHintSeconds: 600, ticketKeyChanged: true, intervalSeconds: 1.2 } },
      { protocol: 'TLSv1.2', resumed: true, policy: { ticketLifetimeHintSeconds: 600, ticketKeyChanged: true, intervalSeconds: 1.2 } },
    ]);
    // Session IDs have no ticket policy.
    expect(rows.find((row) => row.mechanism === 'session-id')!.policy).toBeUndefined();
  } finally {
    await server.stop();
  }
});

test('a TicketKeyRing that does not rotate in between: same key; the table prints the policy lines', async () => {
  // An epoch of ~3 years: no boundary falls between two connections.
  const server = await ringServer(100_000_000);
  try {
    const result = await probe([`127.0.0.1:${server.port}`, '--servername', 'localhost', '--ca', pki.caCertPath, '--policy']);
    expect(result.err).toBe('');
    expect(result.out).toContain('ticket policy\n');
    expect(result.out).toContain('TLSv1.3 ticket: lifetime hint 600 s; key changed between connections 0 s apart: no\n');
    expect(result.out).toContain('TLSv1.2 ticket: lifetime hint 600 s; key changed between connections 0 s apart: no\n');
  } finally {
    await server.stop();
  }
});

test('openssl s_server: its one ticket key stays; it announces its own lifetime hint', async () => {
  const server = await startSServer(pki);
  try {
    const result = await probe([`127.0.0.1:${server.port}`, '--servername', 'localhost', '--ca', pki.caCertPath, '--policy', '--json']);
    expect(result.err).toBe('');
    const rows = (JSON.parse(result.out) as { results: Row[] }).results;
    expect(policies(rows)).toEqual([
      { protocol: 'TLSv1.3', resumed: true, policy: { ticketLifetimeHintSeconds: 7200, ticketKeyChanged: false, intervalSeconds: 0 } },
      { protocol: 'TLSv1.2', resumed: true, policy: { ticketLifetimeHintSeconds: 7200, ticketKeyChanged: false, intervalSeconds: 0 } },
    ]);
  } finally {
    await server.stop();
  }
});

test('without --policy the output has no policy; a bad --policy-interval is a usage error (exit 2)', async () => {
  const server = await ringServer(100_000_000);
  try {
    const plain = await probe([`127.0.0.1:${server.port}`, '--servername', 'localhost', '--ca', pki.caCertPath, '--json']);
    expect((JSON.parse(plain.out) as { results: Row[] }).results.every((row) => !('policy' in row))).toBe(true);
    const bad = await probe([`127.0.0.1:${server.port}`, '--policy', '--policy-interval', 'soon']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('bad --policy-interval "soon"');
  } finally {
    await server.stop();
  }
});
