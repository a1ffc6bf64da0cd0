'use strict';
/**
 * FIPS checks, run by scripts/platform-debian13.sh inside the Debian 13 root with Debian's
 * openssl-provider-fips installed and OPENSSL_CONF naming a configuration that activates the
 * FIPS provider (and base) and sets default_properties = fips=yes for the SYSTEM OpenSSL, the one
 * tls-session binds, which also seals stored records (the addon's AES-256-GCM, binding/record_cipher.h).
 * Node's bundled OpenSSL reads its own section of that file (nodejs_conf), which the configuration
 * does not have: Node's own TLS runs as usual. From the package root:
 *   OPENSSL_CONF=... node scripts/platform-debian13-fips.js <dir with ec-key.pem ec-cert.pem>
 * Prints one line per check and a closing 'N passed, N failed'.
 */
const assert = require('node:assert/strict');
const { readFileSync } = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const tls = require('node:tls');

const dir = process.argv[2];
const key = readFileSync(path.join(dir, 'ec-key.pem'));
const cert = readFileSync(path.join(dir, 'ec-cert.pem'));
const results = [];
async function check(name, fn) {
  try {
    const detail = await fn();
    results.push(true);
    console.log(`ok   ${name}${detail ? `: ${detail}` : ''}`);
  } catch (error) {
    results.push(false);
    console.log(`FAIL ${name}: ${error.stack || error}`);
  }
}

function engineConnection(serverCtx, clientCtx, session) {
  const { TlsConnection } = require('../dist/lib/tls');
  return new Promise((resolve, reject) => {
    const listener = net.createServer((socket) => {
      const conn = TlsConnection.accept(serverCtx, socket);
      conn.on('secure', () => conn.end('hi\n'));
      conn.on('error', () => {});
    });
    listener.listen(0, '127.0.0.1', () => {
      const conn = TlsConnection.connect(clientCtx, net.connect(listener.address().port, '127.0.0.1'), {
        servername: 'localhost',
        ...(session && { session }),
      });
      let latest = null;
      const done = (error) => {
        listener.close();
        if (error) reject(error);
        else resolve({ session: latest, reused: conn.isSessionReused(), protocol: conn.getProtocol(), cipher: conn.getCipher() });
      };
      conn.on('session', (s) => {
        latest?.free();
        latest = s;
      });
      conn.on('error', done);
      conn.on('data', () => {});
      conn.on('end', () => done());
    });
  });
}

(async () => {
  let lib;
  await check('the addon loads and proves the system OpenSSL with the FIPS provider active', () => {
    lib = require('../dist/lib');
    const { openssl } = lib;
    const bad = lib.proveOpenSSLBinding().filter((o) => !o.ok);
    assert.deepEqual(bad, []);
    assert.ok(openssl.relocationsChecked > 1000);
    return `${openssl.version}, ${openssl.loadedAs}, ${openssl.relocationsChecked} relocations`;
  });
  if (!lib) process.exit(1);
  const { TlsContext } = require('../dist/lib/tls');

  let first;
  await check('the engine: TLS 1.3 with a FIPS cipher suite (AES-GCM, P-256), then resumption', async () => {
    const serverCtx = new TlsContext({ role: 'server', cert, key, sessionIdContext: Buffer.from('fips') });
    const clientCtx = new TlsContext({ role: 'client', ca: cert });
    first = await engineConnection(serverCtx, clientCtx);
    const again = await engineConnection(serverCtx, clientCtx, first.session);
    again.session?.free();
    serverCtx.close();
    clientCtx.close();
    assert.equal(again.reused, true);
    return `${first.protocol} ${first.cipher?.name ?? JSON.stringify(first.cipher)}, resumed`;
  });

  await check('FIPS is really in force in the bound OpenSSL: ChaCha20-Poly1305 alone cannot handshake', async () => {
    let serverCtx;
    try {
      serverCtx = new TlsContext({ role: 'server', cert, key, ciphersuites: 'TLS_CHACHA20_POLY1305_SHA256', minVersion: 'TLSv1.3' });
    } catch (error) {
      return `refused at configuration: ${error.message}`;
    }
    const clientCtx = new TlsContext({ role: 'client', ca: cert, ciphersuites: 'TLS_CHACHA20_POLY1305_SHA256', minVersion: 'TLSv1.3' });
    try {
      await engineConnection(serverCtx, clientCtx);
    } catch (error) {
      return `handshake refused: ${error.opensslReason ?? error.message}`;
    } finally {
      serverCtx.close();
      clientCtx.close();
    }
    throw new Error('a ChaCha20-Poly1305 handshake succeeded: the FIPS provider is not in force');
  });

  await check('a session round-trips through DER byte for byte', () => {
    assert.ok(first?.session, 'no session');
    const der = first.session.toDER();
    const back = lib.Session.fromDER(der);
    assert.ok(back.toDER().equals(der));
    back.free();
    first.session.free();
    return `${der.length} bytes`;
  });

  await check(
    "sealing (the addon's AES-256-GCM, on the FIPS provider): attachSessionStore with a secret resumes a TLS 1.2 session",
    async () => {
      const { attachSessionStore, MemoryStore } = require('../dist/lib/persist');
      const { constants } = require('node:crypto');
      const store = new MemoryStore();
      const run = (session) =>
        new Promise((resolve, reject) => {
          const server = tls.createServer({ key, cert, maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET }, (s) =>
            s.end('x'),
          );
          attachSessionStore(server, { store, secret: Buffer.alloc(32, 3) });
          server.listen(0, '127.0.0.1', () => {
            const socket = tls.connect({
              port: server.address().port,
              host: '127.0.0.1',
              servername: 'localhost',
              ca: cert,
              maxVersion: 'TLSv1.2',
              session,
            });
            let saved;
            let reused;
            socket.on('session', (s) => (saved = s));
            socket.on('secureConnect', () => (reused = socket.isSessionReused()));
            socket.on('error', reject);
            socket.on('data', () => {});
            socket.on('end', () => server.close(() => resolve({ session: saved, reused })));
          });
        });
      const a = await run();
      const b = await run(a.session); // a new server over the same store: resumption came from the sealed record
      assert.equal(b.reused, true);
      return `sealed and opened by ${require('../dist/lib').openssl.version}; TLS by Node ${process.version} (its own OpenSSL ${process.versions.openssl})`;
    },
  );

  const passed = results.filter(Boolean).length;
  console.log(`fips: ${passed} passed, ${results.length - passed} failed`);
  process.exit(passed === results.length ? 0 : 1);
})();
