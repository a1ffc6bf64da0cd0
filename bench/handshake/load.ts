/**
 * A load-generator process: on { type: 'run', ... } it keeps `connections` TLS connections
 * going back to back against the port for `durationMs`, then reports how many handshakes
 * completed, how many were resumed, their latency, and the CPU this process used (so the runner
 * can tell whether the generator, not the server, was the bottleneck).
 */
import { constants } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import * as tls from 'node:tls';

export interface RunRequest {
  type: 'run';
  port: number;
  protocol: 'TLSv1.2' | 'TLSv1.3';
  /** TLS 1.2: offer tickets (resume by ticket) instead of refusing them (resume by session ID). */
  tickets?: boolean;
  resume: boolean;
  connections: number;
  durationMs: number;
  caFile: string;
}

export interface RunResult {
  type: 'result';
  handshakes: number;
  resumed: number;
  errors: number;
  cpuMicros: number;
  wallMs: number;
  latencyMs: { p50: number; p99: number };
}

function once(request: RunRequest, ca: Buffer, session: Buffer | undefined): Promise<{ ms: number; reused: boolean; session?: Buffer }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let ms = 0;
    let reused = false;
    let received: Buffer | undefined;
    const options: tls.ConnectionOptions & { noDelay: boolean } = {
      host: '127.0.0.1',
      port: request.port,
      servername: 'localhost',
      ca,
      session,
      noDelay: true,
    };
    if (request.protocol === 'TLSv1.2') {
      Object.assign(options, { maxVersion: 'TLSv1.2', secureOptions: request.tickets ? 0 : constants.SSL_OP_NO_TICKET });
    } else options.minVersion = 'TLSv1.3';
    const socket = tls.connect(options);
    // Close as soon as the handshake (and, for a full TLS 1.3 handshake with resumption, the first
    // ticket) is in: waiting for the server's close would measure TCP's delayed ACKs, not TLS. A
    // TLS 1.3 ticket comes after 'secureConnect' ('session'); a resumed TLS 1.3 handshake gets no
    // new ticket from a Node server unless its ticket-key callback renews (answers 2), so a resumed
    // connection does not wait for one (one that does come is still read: end() only half-closes)
    // and the client keeps offering the ticket it has.
    const wantsTicket = request.protocol === 'TLSv1.3' && request.resume;
    socket.once('secureConnect', () => {
      ms = performance.now() - started;
      reused = socket.isSessionReused();
      if (!wantsTicket || received || reused) socket.end();
    });
    socket.on('session', (s: Buffer) => {
      received = s;
      if (wantsTicket && ms > 0 && !reused) socket.end();
    });
    socket.on('data', () => undefined);
    socket.once('error', reject);
    socket.once('close', () => (ms > 0 ? resolve({ ms, reused, session: received }) : reject(new Error('closed before the handshake'))));
  });
}

/** { type: 'stop' } ends the current run early (its handshakes so far are reported). */
let stopRequested = false;

async function run(request: RunRequest): Promise<RunResult> {
  const ca = readFileSync(request.caFile);
  stopRequested = false;
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const deadline = started + request.durationMs;
  const latencies: number[] = [];
  let resumed = 0;
  let errors = 0;
  await Promise.all(
    Array.from({ length: request.connections }, async () => {
      let session: Buffer | undefined;
      while (performance.now() < deadline && !stopRequested) {
        try {
          const result = await once(request, ca, request.resume ? session : undefined);
          if (performance.now() > deadline || stopRequested) break; // finished after the window: not counted
          latencies.push(result.ms);
          if (result.reused) resumed += 1;
          if (result.session) session = result.session;
        } catch {
          errors += 1;
        }
      }
    }),
  );
  const wallMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  latencies.sort((a, b) => a - b);
  const at = (q: number): number => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]! : 0);
  return {
    type: 'result',
    handshakes: latencies.length,
    resumed,
    errors,
    cpuMicros: cpu.user + cpu.system,
    wallMs,
    latencyMs: { p50: at(0.5), p99: at(0.99) },
  };
}

process.on('message', (message: RunRequest | { type: 'stop' }) => {
  if (message?.type === 'stop') stopRequested = true;
  if (message?.type !== 'run') return;
  run(message).then(
    (result) => process.send?.(result),
    (error: Error) => process.send?.({ type: 'error', message: error.message }),
  );
});
process.on('disconnect', () => process.exit(0));
