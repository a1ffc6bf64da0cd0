/** `tls-session inspect` against `openssl sess_id` for sessions from s_client, node:tls (both forms) and the engine. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session, TlsContext } from '../../lib';
import { buildNodeEnvelope } from '../../lib/node-session';
import { nodeClientSession, sClientSession, sessIdText, startNodeServer, startSServer } from '../helpers/peers';
import { makePki } from '../helpers/pki';
import { establish, destroyConnection } from '../tls/helpers/established';
import { runCli, textFields } from './cli';

/** The fields `openssl sess_id -text` prints that inspect must print with the same value. */
const SHARED_FIELDS = [
  'Protocol',
  'Cipher',
  'Session-ID',
  'Session-ID-ctx',
  'TLS session ticket lifetime hint',
  'Start Time',
  'Timeout',
  'Verify return code',
  'Extended master secret',
  'Max Early Data',
];

const dir = mkdtempSync(join(tmpdir(), 'tls-session-cli-inspect-'));
/** file path → the bytes Session.fromNodeSession reads (DER or Node's envelope) */
const inputs = new Map<string, Buffer>();
const ders = new Map<string, Buffer>();

beforeAll(async () => {
  const pki = makePki();
  const sServer = await startSServer(pki);
  try {
    for (const version of ['1.2', '1.3'] as const) {
      const { der } = await sClientSession(sServer.port, { tls: version, pki, servername: 'localhost' });
      const path = join(dir, `s_client-${version}.pem`);
      // As s_client -sess_out writes it: PEM.
      writeFileSync(path, execFileSync('openssl', ['sess_id', '-inform', 'DER', '-outform', 'PEM'], { input: der }));
      inputs.set(path, der);
      ders.set(path, der);
    }
  } finally {
    await sServer.stop();
  }
  const nodeServer = await startNodeServer({ pki });
  try {
    const { der } = await nodeClientSession(nodeServer.port, { pki, servername: 'localhost' });
    const plain = join(dir, 'node-plain.der');
    const wrapped = join(dir, 'node-wrapped.bin');
    const base64 = join(dir, 'node-wrapped.b64');
    const envelope = buildNodeEnvelope('localhost', der);
    writeFileSync(plain, der);
    writeFileSync(wrapped, envelope);
    writeFileSync(base64, `${envelope.toString('base64')}\n`);
    for (const [path, bytes] of [
      [plain, der],
      [wrapped, envelope],
      [base64, envelope],
    ] as const) {
      inputs.set(path, bytes);
      ders.set(path, der);
    }
  } finally {
    await nodeServer.close();
  }
  const serverCtx = new TlsContext({ role: 'server', cert: pki.serverCert.toString(), key: pki.serverKey.toString() });
  const clientCtx = new TlsContext({ role: 'client', ca: pki.ca.toString() });
  const { client, server, serverSession, clientSession } = await establish(serverCtx, clientCtx);
  const engine = join(dir, 'engine.der');
  const der = clientSession.toDER();
  writeFileSync(engine, der);
  inputs.set(engine, der);
  ders.set(engine, der);
  clientSession.free();
  serverSession?.free();
  await destroyConnection(client);
  await destroyConnection(server);
  serverCtx.close();
  clientCtx.close();
});

/** The key material `openssl sess_id -text` shows for this session (hex). */
function keyMaterialHex(fields: Record<string, string>): string {
  const hex = fields['Master-Key'] ?? fields['Resumption PSK'];
  if (!hex || !/^[0-9A-F]{64,}$/.test(hex)) throw new Error('openssl sess_id showed no key material');
  return hex;
}

test('text output shows the values openssl sess_id -text shows, never key material; a bad file is one line and exit 1', async () => {
  const files = [...inputs.keys()];
  const bad = join(dir, 'not-a-session.txt');
  writeFileSync(bad, 'hello, not a session\n');
  const result = runCli(['inspect', files[0]!, bad, ...files.slice(1)]);
  expect(result.status).toBe(1);
  expect(result.err.trimEnd().split('\n')).toEqual([
    `tls-session: ${bad}: not a TLS session: neither DER, PEM (SSL SESSION PARAMETERS), base64 nor a Node client session`,
  ]);
  const sections = result.out.split(/^(\/.+):$/m).slice(1);
  expect(sections.filter((_, i) => i % 2 === 0)).toEqual(files);
  for (let i = 0; i < sections.length; i += 2) {
    const file = sections[i]!;
    const ours = textFields(sections[i + 1]!);
    const theirs = await sessIdText(ders.get(file)!);
    for (const field of SHARED_FIELDS) {
      if (theirs[field] !== undefined) expect([file, field, ours[field]]).toEqual([file, field, theirs[field]]);
    }
    expect(ours['Expires']).toMatch(/\((expires in|expired) .+\)$/);
    const secret = keyMaterialHex(theirs);
    expect(result.out.toUpperCase()).not.toContain(secret);
    expect(result.err.toUpperCase()).not.toContain(secret);
  }
  const wrapped = textFields(sections[sections.indexOf(join(dir, 'node-wrapped.bin')) + 1]!);
  expect(wrapped['Node authenticated host']).toBe('localhost');
});

test('--json prints Session#toJSON() for every form, and no key material', async () => {
  for (const [file, bytes] of inputs) {
    const result = runCli(['inspect', '--json', file]);
    expect([file, result.status, result.err]).toEqual([file, 0, '']);
    using session = Session.fromNodeSession(bytes);
    expect(JSON.parse(result.out)).toEqual(JSON.parse(JSON.stringify(session.toJSON())));
    expect(result.out.toUpperCase()).not.toContain(keyMaterialHex(await sessIdText(ders.get(file)!)));
  }
});

test('--outform pem (from stdin, Node envelope) is read back by openssl sess_id; --outform der round-trips', () => {
  const wrapped = join(dir, 'node-wrapped.bin');
  const pem = runCli(['inspect', '--outform', 'pem', '-'], inputs.get(wrapped));
  expect(pem.status).toBe(0);
  expect(pem.out).toMatch(/^-----BEGIN SSL SESSION PARAMETERS-----\n[\s\S]+\n-----END SSL SESSION PARAMETERS-----\n$/);
  const pemPath = join(dir, 'converted.pem');
  writeFileSync(pemPath, pem.out);
  execFileSync('openssl', ['sess_id', '-in', pemPath, '-noout']);
  expect(execFileSync('openssl', ['sess_id', '-in', pemPath, '-outform', 'DER'])).toEqual(ders.get(wrapped));
  const der = runCli(['inspect', '--outform', 'der', pemPath]);
  expect(der.stdout).toEqual(ders.get(wrapped));
});

test('usage errors exit 2 with one line; an unreadable file exits 1 with one line', () => {
  const unknown = runCli(['inspect', '--no-such-option']);
  expect(unknown.status).toBe(2);
  expect(unknown.err).toBe("tls-session: unknown option '--no-such-option' (see --help)\n");
  expect(unknown.out).toBe('');
  const badForm = runCli(['inspect', '--outform', 'txt', join(dir, 'engine.der')]);
  expect([badForm.status, badForm.err]).toEqual([2, 'tls-session: --outform must be "der" or "pem", not "txt"\n']);
  const missing = runCli(['inspect', join(dir, 'missing.der')]);
  expect([missing.status, missing.err, missing.out]).toEqual([
    1,
    `tls-session: ${join(dir, 'missing.der')}: cannot read the file (ENOENT)\n`,
    '',
  ]);
  const directory = runCli(['inspect', dir]);
  expect([directory.status, directory.err]).toEqual([1, `tls-session: ${dir}: cannot read the file (EISDIR)\n`]);
});

test('--help of each command ends with an example', () => {
  for (const args of [['--help'], ['inspect', '--help'], ['store', '--help'], ['store', 'verify', '--help']]) {
    const result = runCli(args);
    expect([args, result.status]).toEqual([args, 0]);
    expect(result.out).toMatch(/Examples?:\n[\s\S]*\$ tls-session /);
  }
});
