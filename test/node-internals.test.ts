/**
 * One test per Node internal in lib/node-internals.ts, on whatever Node runs this file (CI: the
 * machine's and the newest 22.x, 24.x and 26.x, resolved at each run). A Node patch release that
 * moves one of them fails here by name. test/persist/node-internals.test.ts covers the typed
 * errors when the tls.Server internals are missing; test/node-session.test.ts the client envelope.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import * as net from 'node:net';
import * as tls from 'node:tls';
import {
  muteSocketReads,
  missingServerInternals,
  nodeInternals,
  nodeSessionFormat,
  probeSessionBinding,
  SESSION_BINDING_WARNING,
  sessionBinding,
  sessionBindingByVersion,
  sniCallbackSymbol,
  ticketKeyCallbackGap,
} from '../lib/node-internals';

test(`every internal is there on ${process.version}`, async () => {
  const report = await nodeInternals();
  expect(report).toMatchObject({
    nodeVersion: process.version,
    serverInternals: { present: true, missing: [] },
    ticketKeyCallback: { present: true },
    sessionBinding: { decidedBy: 'probe', nodeVersion: process.version },
    clientSessionFormat: { decidedBy: 'probe' },
  });
});

test('the tls.Server internals, with SNI contexts and an SNICallback', () => {
  const server = tls.createServer({ SNICallback: (_name, callback) => callback(null) });
  server.addContext('a.example', {});
  expect(missingServerInternals(server, { derivingScope: true })).toEqual([]);
  expect(ticketKeyCallbackGap(server)).toBeUndefined();
  expect(sniCallbackSymbol(server)).toBeDefined();
});

test(`the session binding: the probe decides on ${process.version}, and the version rule agrees for the releases it knows`, async () => {
  const probed = await probeSessionBinding();
  expect(probed === 'context' || probed === 'sni-sha256').toBe(true);
  expect((await sessionBinding()).binding).toBe(probed);
  // If this fails, a Node release changed how it binds server sessions: the probe already
  // follows it; update sessionBindingByVersion (the fallback) and README "Node versions".
  expect(sessionBindingByVersion()).toBe(probed);
});

test.each([
  ['20.20.2', 'context'],
  ['22.23.3', 'context'],
  ['22.23.5', 'sni-sha256'],
  ['24.21.0', 'context'],
  ['24.22.1', 'context'],
  ['24.22.3', 'sni-sha256'],
  ['v26.12.1', 'context'],
])('the version rule (fallback only): %s binds by %s (measured)', (version, binding) => {
  expect(sessionBindingByVersion(version)).toBe(binding);
});

test('an inconclusive probe falls back to the version rule with one warning naming the Node version', () => {
  // A process whose tls.connect throws: the probe's handshake cannot happen.
  const script = `
    require('node:tls').connect = () => { throw new Error('no TLS here'); };
    const warnings = [];
    process.on('warning', (w) => warnings.push({ code: w.code, message: w.message }));
    const { sessionBinding } = require(${JSON.stringify(join(__dirname, '..', 'lib', 'node-internals.ts'))});
    Promise.all([sessionBinding(), sessionBinding()]).then(([a, b]) =>
      setImmediate(() => console.log(JSON.stringify({ a, same: a === b, warnings }))));`;
  const out = execFileSync(process.execPath, ['-r', join(__dirname, 'persist', 'fixtures', 'register-ts.js'), '-e', script], {
    encoding: 'utf8',
  });
  const { a, same, warnings } = JSON.parse(out) as {
    a: { binding: string; decidedBy: string; nodeVersion: string };
    same: boolean;
    warnings: Array<{ code: string; message: string }>;
  };
  expect(a).toEqual({ binding: sessionBindingByVersion(), decidedBy: 'version', nodeVersion: process.version });
  expect(same).toBe(true);
  expect(warnings).toHaveLength(1);
  expect(warnings[0]!.code).toBe(SESSION_BINDING_WARNING);
  expect(warnings[0]!.message).toContain(`Node ${process.version}`);
});

test('the client session format is decided by its probe', () => {
  expect(nodeSessionFormat().decidedBy).toBe('probe');
});

test("a socket's stream reader can be replaced (ClientSessionCache's wait for TLS 1.3 tickets)", async () => {
  const server = net.createServer((peer) => peer.write('x'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  try {
    await new Promise((resolve) => socket.once('connect', resolve));
    expect(muteSocketReads(socket)).toBe(true);
    // What the server then writes is dropped before it reaches the stream.
    let received = 0;
    socket.on('data', () => (received += 1));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(received).toBe(0);
  } finally {
    socket.destroy();
    server.close();
  }
  expect(muteSocketReads(new net.Socket())).toBe(false); // no handle: nothing replaced
});
