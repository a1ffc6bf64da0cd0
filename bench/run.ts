/**
 * `npm run bench`: the cost of the JavaScript API against a plain C++ loop on the same library.
 *
 * For each sample session it times Session.fromDER + toDER + free, and a native loop (benchmark build only)
 * doing d2i_SSL_SESSION + i2d_SSL_SESSION (length, then bytes) + SSL_SESSION_free on the same
 * bytes with the same libssl, in alternating trials in this one process, and prints the best
 * trial of each and their ratio against the targets. Numbers, not assertions: the machines are small and noisy.
 */
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { constants } from 'node:crypto';
import { openssl, Session, setLeakDetection } from '../lib';
import { native } from '../lib/binding';
import { devCertificate } from '../examples/dev-cert';

interface Sample {
  name: string;
  der: Buffer;
  target: number;
  iterations: number;
}

/** One real TLS 1.2 handshake on loopback: the server's session (no ticket) and the client's (with the certificate). */
async function makeSamples(): Promise<{ server: Buffer; client: Buffer }> {
  const { key, cert } = devCertificate(mkdtempSync(join(tmpdir(), 'tls-session-bench-')));
  let serverSession: Buffer | undefined;
  const server = tls.createServer({ key, cert, maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET }, (s) => s.end('x'));
  server.on('newSession', (_id: Buffer, data: Buffer, done: () => void) => {
    serverSession = data;
    done();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const socket = tls.connect({ port: (server.address() as { port: number }).port, host: '127.0.0.1', rejectUnauthorized: false });
  let clientSession: Buffer | undefined;
  socket.on('session', (s: Buffer) => {
    clientSession = s;
  });
  socket.resume();
  await once(socket, 'close');
  server.close();
  if (!serverSession || !clientSession) throw new Error('the benchmark handshake produced no sessions');
  // The client's session as plain DER on every Node line (22.23+/24.17+/26.3.1+ hand it out in Node's host envelope).
  using client = Session.fromNodeSession(clientSession);
  return { server: serverSession, client: client.toDER() };
}

function timeJavaScript(der: Buffer, iterations: number): number {
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) {
    const session = Session.fromDER(der);
    session.toDER();
    session.free();
  }
  return Number(process.hrtime.bigint() - start) / iterations;
}

// The C++ baseline is only in the benchmark build of the addon (CMake option TLS_SESSION_BENCH),
// which `npm run bench` builds and selects with TLS_SESSION_ADDON: the shipped addon has no such function.
const benchNative = native as unknown as { benchNativeLoop?(bytes: Uint8Array, iterations: number): number };
if (typeof benchNative.benchNativeLoop !== 'function') {
  throw new Error('this addon has no benchmark loop: run `npm run bench` (it builds the benchmark variant into build-bench/)');
}

function timeNative(der: Buffer, iterations: number): number {
  return benchNative.benchNativeLoop!(der, iterations) / iterations;
}

/** Best of the trials: on a shared 2-core machine, noise only ever adds time. */
function best(values: number[]): number {
  return Math.min(...values);
}

async function main(): Promise<void> {
  setLeakDetection('off');
  const trials = Number(process.env.BENCH_TRIALS ?? 41);
  const { server, client } = await makeSamples();
  const samples: Sample[] = [
    { name: `server session, ${server.length} B`, der: server, target: 1.25, iterations: 5000 },
    { name: `client session with certificate, ${client.length} B`, der: client, target: 1.05, iterations: 300 },
  ];
  console.log(`tls-session bench: ${openssl.version} (${openssl.libssl}), Node ${process.version}, ${trials} alternating trials\n`);
  console.log('sample                                       | JS fromDER+toDER+free | C++ d2i+i2d+free | ratio | target');
  console.log('---------------------------------------------|-----------------------|------------------|-------|-------');
  let allMet = true;
  for (const sample of samples) {
    timeJavaScript(sample.der, sample.iterations); // warm-up: JIT and allocator
    timeNative(sample.der, sample.iterations);
    const js: number[] = [];
    const c: number[] = [];
    for (let t = 0; t < trials; t++) {
      // Alternate the order so drift on a noisy machine hits both sides alike.
      if (t % 2 === 0) {
        js.push(timeJavaScript(sample.der, sample.iterations));
        c.push(timeNative(sample.der, sample.iterations));
      } else {
        c.push(timeNative(sample.der, sample.iterations));
        js.push(timeJavaScript(sample.der, sample.iterations));
      }
      (globalThis as { gc?: () => void }).gc?.();
    }
    const ratio = best(js) / best(c);
    const met = ratio <= sample.target;
    allMet &&= met;
    console.log(
      `${sample.name.padEnd(44)} | ${(best(js) / 1000).toFixed(2).padStart(18)} µs | ${(best(c) / 1000).toFixed(2).padStart(13)} µs | ${ratio.toFixed(3)} | <= ${sample.target} ${met ? 'met' : 'MISSED'}`,
    );
  }
  console.log(`\n${allMet ? 'all targets met' : 'some targets missed (noisy machine? rerun, or raise BENCH_TRIALS)'}`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
