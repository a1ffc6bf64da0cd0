'use strict';
/**
 * The linux-arm64 checks, run by scripts/platform-arm64.sh with the arm64 Node under qemu-user, in
 * an app that installed the packed tarball (its prebuilds/linux-arm64 addon, arm64 libssl3):
 *   1. load: the prebuilt arm64 addon is the one loaded, and it proves the system OpenSSL
 *      (dladdr origins, and the relocation proof over AArch64 relocation types);
 *   2. a session from a handshake round-trips through DER byte for byte;
 *   3. the TLS engine (tls-session/tls): a full handshake, then a resumed one;
 *   4. a node:tls server with attachSessionStore on a SqliteStore (node:sqlite) resumes a TLS 1.2
 *      session after a restart (a second server process, same file and secret).
 * Prints one line per check and a closing 'N passed, N failed'. Usage (from the app directory):
 *   QEMU=/usr/bin/qemu-aarch64-static WORK=<dir with key.pem cert.pem> <qemu> <arm64 node> check.js
 */
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const { constants } = require('node:crypto');
const { readFileSync } = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const tls = require('node:tls');

const work = process.env.WORK;
const key = readFileSync(path.join(work, 'key.pem'));
const cert = readFileSync(path.join(work, 'cert.pem'));
const secret = Buffer.alloc(32, 7);
const dbPath = path.join(work, 'sessions.db');

// A server process: node:tls + attachSessionStore over SQLite; TLS 1.2 session IDs only (no
// tickets: a ticket's key dies with the process, the store is what survives the restart).
if (process.argv[2] === 'server') {
  const { attachSessionStore, SqliteStore } = require('tls-session/persist');
  const store = new SqliteStore({ path: dbPath });
  const server = tls.createServer({ key, cert, maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET }, (socket) =>
    socket.end('hello\n'),
  );
  attachSessionStore(server, { store, secret });
  server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port, backend: store.backend })));
  process.stdin.on('end', () => server.close(() => store.close().then(() => process.exit(0))));
  process.stdin.resume();
  return;
}

const results = [];
async function check(name, fn) {
  const started = Date.now();
  try {
    const detail = await fn();
    results.push(true);
    console.log(`ok   ${name} (${Date.now() - started} ms)${detail ? `: ${detail}` : ''}`);
  } catch (error) {
    results.push(false);
    console.log(`FAIL ${name}: ${error.stack || error}`);
  }
}

/** The engine: one connection over loopback; resolves with the client's newest session and whether it resumed. */
function engineConnection(serverCtx, clientCtx, session) {
  const { TlsConnection } = require('tls-session/tls');
  return new Promise((resolve, reject) => {
    const listener = net.createServer((socket) => {
      const conn = TlsConnection.accept(serverCtx, socket);
      conn.on('secure', () => conn.end('hi\n'));
      conn.on('error', reject);
    });
    listener.listen(0, '127.0.0.1', () => {
      const conn = TlsConnection.connect(clientCtx, net.connect(listener.address().port, '127.0.0.1'), {
        servername: 'localhost',
        ...(session && { session }),
      });
      let latest = null;
      let reused = false;
      let protocol;
      conn.on('session', (s) => {
        latest?.free();
        latest = s;
      });
      conn.on('secureConnect', () => {
        reused = conn.isSessionReused();
        protocol = conn.getProtocol();
      });
      conn.on('error', reject);
      conn.on('data', () => {});
      conn.on('end', () => {
        listener.close();
        resolve({ session: latest, reused, protocol });
      });
    });
  });
}

function startServer() {
  const child = spawn(process.env.QEMU, [process.execPath, __filename, 'server'], { stdio: ['pipe', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      if (out.includes('\n')) resolve({ child, ...JSON.parse(out.split('\n')[0]) });
    });
    child.on('exit', (code) => reject(new Error(`the server exited (${code}) before listening`)));
  });
}

function stopServer(server) {
  return new Promise((resolve) => {
    server.child.removeAllListeners('exit');
    server.child.on('exit', resolve);
    server.child.stdin.end();
  });
}

function nodeClient(port, session) {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: cert, maxVersion: 'TLSv1.2', session });
    let saved;
    let reused;
    socket.on('session', (s) => (saved = s));
    socket.on('secureConnect', () => (reused = socket.isSessionReused()));
    socket.on('error', reject);
    socket.on('data', () => {});
    socket.on('end', () => resolve({ session: saved, reused }));
  });
}

(async () => {
  let ts;
  await check('the prebuilt linux-arm64 addon loads and proves the system OpenSSL', () => {
    assert.equal(process.arch, 'arm64');
    ts = require('tls-session');
    const addon = require('node-gyp-build').path(path.dirname(require.resolve('tls-session/package.json')));
    assert.match(addon, /prebuilds\/linux-arm64\/tls-session\.glibc\.node$/);
    const { openssl } = ts;
    assert.equal(openssl.loadedAs, 'isolated');
    assert.match(openssl.libssl, /aarch64-linux-gnu\/libssl\.so\.3$/);
    assert.ok(openssl.relocationsChecked > 1000, `relocationsChecked ${openssl.relocationsChecked}`);
    const origins = ts.proveOpenSSLBinding();
    assert.ok(origins.length > 50);
    const bad = origins.filter((o) => !o.ok || o.file !== (o.library === 'libssl' ? openssl.libssl : openssl.libcrypto));
    assert.deepEqual(bad, []);
    return `${openssl.version}, ${openssl.libssl}, ${openssl.relocationsChecked} relocations, ${origins.length} functions, Node ${process.version} (${process.arch})`;
  });
  if (!ts) process.exit(1);

  const { TlsContext } = require('tls-session/tls');
  const serverCtx = new TlsContext({ role: 'server', cert, key, sessionIdContext: Buffer.from('arm64') });
  const clientCtx = new TlsContext({ role: 'client', ca: cert });
  let first;
  await check('the TLS engine: a full handshake, then a resumed one', async () => {
    first = await engineConnection(serverCtx, clientCtx);
    assert.ok(first.session, 'no session');
    const again = await engineConnection(serverCtx, clientCtx, first.session);
    again.session?.free();
    assert.equal(again.reused, true);
    return `${first.protocol}, resumed`;
  });

  await check('a session round-trips through DER byte for byte', () => {
    assert.ok(first?.session, 'no session from the engine');
    const der = first.session.toDER();
    const back = ts.Session.fromDER(der);
    assert.ok(back.toDER().equals(der));
    assert.equal(back.protocol, first.session.protocol);
    assert.ok(back.expiresAt > new Date());
    back.free();
    first.session.free();
    return `${der.length} bytes, ${ts.Session.fromDER(der).protocol}`;
  });
  serverCtx.close();
  clientCtx.close();

  await check('attachSessionStore on SqliteStore: a TLS 1.2 session resumes after a server restart', async () => {
    let server = await startServer();
    const a = await nodeClient(server.port);
    assert.equal(a.reused, false);
    await stopServer(server);
    server = await startServer();
    const b = await nodeClient(server.port, a.session);
    await stopServer(server);
    assert.equal(b.reused, true, 'not resumed after the restart');
    return `SqliteStore on ${server.backend}`;
  });

  const passed = results.filter(Boolean).length;
  console.log(`arm64: ${passed} passed, ${results.length - passed} failed`);
  process.exit(passed === results.length ? 0 : 1);
})();
