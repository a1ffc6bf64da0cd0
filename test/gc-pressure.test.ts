/**
 * Sessions dropped without free() under memory pressure (`npm run bench:gc` measures the peaks).
 *
 * V8 starts a full collection — the only kind that runs the FinalizationRegistry safety net —
 * once the external memory it has been told of grows by 64 MiB. So what the binding reports for
 * a session must be close to what the session really holds: reported at half its size, twice
 * as much native memory piles up behind dropped sessions before anything is collected.
 */
import { ledger, openssl, Session, setLeakDetection } from '../lib';
import { native } from '../lib/binding';
import { makePki } from './helpers/pki';
import { nodeClientSession, startNodeServer } from './helpers/peers';

const gc = (globalThis as { gc?: () => void }).gc;

/** A server-side TLS 1.2 session carrying the client's certificate (P-256, as the test PKI makes them). */
let withClientCertificate: Buffer;

beforeAll(async () => {
  const pki = makePki();
  const server = await startNodeServer({ pki, maxVersion: 'TLSv1.2', tickets: false, requestCert: true });
  try {
    await nodeClientSession(server.port, { pki, servername: 'localhost', cert: true });
    withClientCertificate = server.newSessions[0]!;
  } finally {
    await server.close();
  }
  using session = Session.fromDER(withClientCertificate);
  expect(session.peerCertificate).toBeDefined();
});

afterEach(() => setLeakDetection('count'));

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A plain function: nothing it made stays reachable from a suspended async frame. */
function dropSessions(der: Buffer, count: number): void {
  for (let i = 0; i < count; i++) Session.fromDER(der);
}

async function collectUntil(done: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !done(); i++) {
    gc!();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test('the native size reported to V8 for a session with a certificate is what it holds', () => {
  // d2i_SSL_SESSION allocates ~5.5 KiB for this session (582 B of DER with a P-256 certificate:
  // glibc mallinfo2, OpenSSL 3.0; `npm run bench:gc` sees the same per dropped session in RSS).
  // The former estimate (1 KiB + 3x the DER) said ~2.7 KiB. Resident-size deltas are no test
  // here: a shared jest worker reuses memory earlier tests freed.
  const count = 5000;
  const sessions: Session[] = [];
  // The table's own sum: V8's external total also moves with every Buffer the process allocates.
  const reportedBefore = native.ledger().nativeBytes;
  for (let i = 0; i < count; i++) sessions.push(Session.fromDER(withClientCertificate));
  const reportedPerSession = (native.ledger().nativeBytes - reportedBefore) / count;
  for (const session of sessions) session.free();
  expect(reportedPerSession).toBeGreaterThan(4.5 * 1024);
  expect(reportedPerSession).toBeLessThan(8 * 1024);
});

test('dropped sessions are reclaimed after about 64 MiB of them, while the event loop turns', async () => {
  if (!gc) throw new Error('run jest with node --expose-gc (npm test does)');
  setLeakDetection('off'); // dropping them is the point here
  gc(); // V8's external-memory limit counts from the last full collection
  await turn();
  const before = ledger();
  let maxLive = 0;
  // Follows the OpenSSL version. With 3.0 the peak is 12,500 in every run measured (Node 26). With
  // 3.5.9 (Debian 13, Node 26) it spreads from 13,500 to 22,000 in a jest worker (8,500 in a bare
  // node process, as with 3.0): the reported size is the same (the test above), but 3.5 decodes
  // this session ~4x faster (45 vs 185 us), and how many are made before V8's collection
  // completes is not fixed by the 64 MiB alone (pausing between batches did not narrow it). There
  // the bound only says that dropped sessions are collected long before they pile up unbounded.
  const fastDecode = openssl.versionNumber >= 0x30100000;
  const [total, bound] = fastDecode ? [40_000, 30_000] : [20_000, 16_000];
  for (let done = 0; done < total; done += 500) {
    dropSessions(withClientCertificate, 500);
    maxLive = Math.max(maxLive, ledger().live - before.live);
    await turn(); // FinalizationRegistry callbacks run between turns, never inside one
  }
  // ~5.6 KiB each: V8 collects after ~12,000 (with the former estimate of ~2.7 KiB, ~24,000).
  expect(maxLive).toBeLessThan(bound);
  expect(ledger().releasedBy.gc - before.releasedBy.gc).toBeGreaterThan(0);
  await collectUntil(() => ledger().live <= before.live);
  expect(ledger().live).toBe(before.live);
}, 120_000);
