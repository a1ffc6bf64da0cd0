/**
 * README "Is resumption working?": the server block runs verbatim, real clients make full and
 * resumed handshakes (TLS 1.2 session ID, TLS 1.3 ticket), and its /metrics shows them. The
 * scrape excerpt printed in the README is what this very run scrapes (its counter lines).
 */
import { codeBlocks } from '../persist/helpers/readme-example';
import { makePki, Pki } from '../helpers/pki';
import { waitFor } from '../persist/helpers/rotation';
import { drive, MetricsApp, startMetricsApp } from './readme-app';

let pki: Pki;
let app: MetricsApp | undefined;

beforeAll(() => {
  pki = makePki();
});
afterAll(() => app?.app.remove());

/** The README's scrape excerpt: the bare ``` block right after the server block, as written. */
function readmeScrape(): string[] {
  const block = codeBlocks('README.md', '').find((text) => text.includes('tls_session_server_handshakes_total{'));
  if (!block) throw new Error('README: no scrape excerpt with tls_session_server_handshakes_total');
  return block.trimEnd().split('\n');
}

test('the README metrics server: 3 new and 2 returning clients per protocol show up in /metrics as the README says', async () => {
  app = await startMetricsApp(pki);
  await drive(pki, app.member.port, 3, 2);
  const scraped = async () => (await app!.scrape()).split('\n');
  // 'secureConnection' (which the counters follow) may come a moment after the client saw the close.
  await waitFor(
    async () =>
      (await scraped()).some(
        (line) =>
          line.startsWith('tls_session_server_handshakes_total') &&
          line.includes('TLSv1.3') &&
          line.includes('ticket') &&
          line.endsWith(' 2'),
      ),
    'the last handshake in /metrics',
    10_000,
  );
  const lines = await scraped();
  const excerpt = readmeScrape();
  expect(excerpt.length).toBeGreaterThan(5);
  for (const line of excerpt) expect({ line, scraped: lines.includes(line) }).toEqual({ line, scraped: true });
  expect(app.member.stderr()).toBe('');
});
