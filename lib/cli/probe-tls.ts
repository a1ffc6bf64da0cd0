/**
 * The connections behind `tls-session probe`: node:tls (Node's OpenSSL) as the client, two
 * handshakes per check — a full one that collects the session, then one offering it back.
 * Sessions stay the opaque objects Node handed out (plain DER on older Node, Node's host-bound
 * wrapper on 22.23+/24.17+/26.3.1+): they are only given back to tls.connect, never printed.
 */
import { TICKET_KEY_PART_BYTES } from '../ticket-key-layout';
import { constants } from 'node:crypto';
import * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import * as tls from 'node:tls';
import { CliError, EXIT_USAGE, fail } from './output';

export interface Endpoint {
  host: string;
  port: number;
}

export type Protocol = 'TLSv1.3' | 'TLSv1.2';
export type Mechanism = 'ticket' | 'session-id';

export interface Check {
  protocol: Protocol;
  mechanism: Mechanism;
}

/** What probe checks, in the order it reports them. */
export const CHECKS: readonly Check[] = [
  { protocol: 'TLSv1.3', mechanism: 'ticket' },
  { protocol: 'TLSv1.2', mechanism: 'ticket' },
  { protocol: 'TLSv1.2', mechanism: 'session-id' },
];

export interface ProbeResult {
  protocol: Protocol;
  mechanism: Mechanism;
  /** Set only on --across rows: the other target the first target's session was offered to. */
  across?: string;
  resumed: boolean;
  /** TLS handshake time (TCP connect excluded); null where that handshake did not happen or failed. */
  handshakeMs: { full: number | null; resumed: number | null };
  /** Set only when no session could be offered or a handshake failed: why. */
  reason?: string;
  /** --policy, ticket rows with a ticket: what the client sees of the server's ticket policy. */
  policy?: TicketPolicy;
}

/**
 * What a client can see of a server's ticket policy: the lifetime it announces, and whether the
 * key sealing its tickets changed between two connections (the ticket's first 16 bytes name the
 * key, in the format OpenSSL and Node's servers use). The key name itself is never shown.
 */
export interface TicketPolicy {
  /** The ticket lifetime hint in seconds (TLS 1.3 ticket_lifetime, TLS 1.2 ticket_lifetime_hint); null if the session did not say. */
  ticketLifetimeHintSeconds: number | null;
  /** Whether the second connection's ticket names another key than the first's; null when the second connection got no ticket. */
  ticketKeyChanged: boolean | null;
  /** Seconds between the two connections compared. */
  intervalSeconds: number;
}

export interface ProbeOptions {
  target: Endpoint;
  across: readonly Endpoint[];
  servername?: string;
  ca?: Buffer;
  insecure: boolean;
  /** Longest wait for a TCP connect or a TLS handshake. */
  timeoutMs: number;
  /** Report the ticket policy (a second full handshake per ticket check, `policyIntervalMs` after the first). */
  policy?: boolean;
  policyIntervalMs?: number;
}

/** After the full handshake, how long to wait for a session when the server neither sends one nor closes. */
const SESSION_WAIT_MS = 1000;
/** After a session arrives, how long to wait for more (TLS 1.3 servers send several tickets; the last one is kept). */
const TICKET_GRACE_MS = 50;
/** After our close_notify, how long the server has to close before the socket is destroyed. */
const CLOSE_WAIT_MS = 1000;

/** `HOST:PORT`, `[v6]:PORT`; anything else is a usage error. */
export function parseEndpoint(text: string): Endpoint {
  const match = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:[\]\s]+):(\d+)$/.exec(text);
  const port = match ? Number(match[2]) : NaN;
  if (!match || !Number.isInteger(port) || port < 1 || port > 65535) {
    fail(`bad target ${JSON.stringify(text)}: expected HOST:PORT (e.g. example.com:443, [::1]:8443), port 1-65535`, EXIT_USAGE);
  }
  return { host: match[1]!, port };
}

export function formatEndpoint({ host, port }: Endpoint): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The server refused this protocol or mechanism during a handshake: a result row, not the end of the probe. */
class HandshakeRefused extends Error {}

interface Handshake {
  ms: number;
  reused: boolean;
  /** The last session Node handed out on this connection. */
  session: Buffer | undefined;
  /** Whether that session carries a ticket (vs. a bare session ID). */
  ticket: boolean;
  /** The first 16 bytes of that ticket: the name of the server's key that sealed it. */
  ticketKeyName: Buffer | undefined;
}

const NET_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ECONNRESET: 'connection reset',
};

function describe(error: NodeJS.ErrnoException): string {
  const code = error.code ?? 'unknown error';
  return NET_ERRORS[code] ? `${NET_ERRORS[code]} (${code})` : `${error.message} (${code})`;
}

function connectTcp(endpoint: Endpoint, timeoutMs: number): Promise<net.Socket> {
  const where = formatEndpoint(endpoint);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: endpoint.host, port: endpoint.port });
    socket.setTimeout(timeoutMs, () => {
      socket.destroy();
      reject(new CliError(`cannot connect to ${where}: no answer within ${timeoutMs} ms`));
    });
    socket.once('error', (error) => reject(new CliError(`cannot connect to ${where}: ${describe(error)}`)));
    socket.once('connect', () => {
      socket.setTimeout(0);
      socket.removeAllListeners('error');
      resolve(socket);
    });
  });
}

/**
 * One connection to `endpoint` for `check`, under the probe's identity (the first target's host
 * and servername: a fleet serves one name, and newer Node resumes a session only for the host it
 * was made for). With `offered`, a resumption attempt that closes right after the handshake;
 * without, a full handshake that waits for the session (TLS 1.3 tickets come after it).
 */
async function handshake(endpoint: Endpoint, check: Check, options: ProbeOptions, offered?: Buffer): Promise<Handshake> {
  const where = formatEndpoint(endpoint);
  const tcp = await connectTcp(endpoint, options.timeoutMs);
  return new Promise<Handshake>((resolve, reject) => {
    const started = performance.now();
    const socket = tls.connect({
      socket: tcp,
      host: options.target.host,
      servername: options.servername,
      ca: options.ca,
      rejectUnauthorized: !options.insecure,
      minVersion: check.protocol,
      maxVersion: check.protocol,
      // A client without the ticket extension: the server can only hand out a session ID.
      secureOptions: check.mechanism === 'session-id' ? constants.SSL_OP_NO_TICKET : 0,
      session: offered,
    });
    let ms: number | undefined;
    let reused = false;
    let session: Buffer | undefined;
    let finished = false;
    let timer: NodeJS.Timeout | undefined;
    const wait = (delay: number) => {
      clearTimeout(timer);
      timer = setTimeout(finish, delay);
    };
    // Ends with close_notify and lets the server close too, so both sides shut down cleanly
    // (OpenSSL drops a session from its cache when a connection ends without one).
    function finish(): void {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      const ticket = socket.getTLSTicket();
      // A ticket starts with the name of the key that sealed it (OpenSSL's ticket format).
      const ticketKeyName =
        ticket && ticket.length >= TICKET_KEY_PART_BYTES ? Buffer.from(ticket.subarray(0, TICKET_KEY_PART_BYTES)) : undefined;
      const result: Handshake = { ms: ms!, reused, session, ticket: ticket !== undefined, ticketKeyName };
      const kill = setTimeout(() => socket.destroy(), CLOSE_WAIT_MS);
      socket.once('close', () => {
        clearTimeout(kill);
        resolve(result);
      });
      socket.end();
    }
    socket.setTimeout(options.timeoutMs, () => {
      if (ms !== undefined) return;
      socket.destroy();
      reject(new CliError(`${where}: no TLS handshake within ${options.timeoutMs} ms`));
    });
    socket.on('session', (next: Buffer) => {
      session = next;
      if (ms !== undefined && offered === undefined) wait(TICKET_GRACE_MS);
    });
    socket.once('secureConnect', () => {
      ms = performance.now() - started;
      reused = socket.isSessionReused();
      socket.setTimeout(0);
      if (offered !== undefined) finish();
      else wait(session === undefined ? SESSION_WAIT_MS : TICKET_GRACE_MS);
    });
    // Whatever the server says is read and dropped; its close means every ticket is in.
    socket.on('data', () => {});
    socket.once('end', () => {
      if (ms !== undefined) finish();
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (ms !== undefined) return; // after the handshake (e.g. a reset while closing) nothing is left to learn
      socket.destroy();
      const code = error.code ?? '';
      // OpenSSL's reason ("tlsv1 alert protocol version"), not its multi-line error-queue dump.
      const reason = (error as { reason?: string }).reason ?? error.message;
      if (code.startsWith('ERR_SSL_') || code === 'ECONNRESET') reject(new HandshakeRefused(`${reason} (${code})`));
      else if (/CERT|SIGNATURE|ISSUER/.test(code))
        reject(new CliError(`${where}: certificate not accepted: ${error.message} (${code}); pass --ca FILE or --insecure`));
      else reject(new CliError(`${where}: TLS failed: ${describe(error)}`));
    });
  });
}

/** One row: a full handshake with the first target, then its session offered to `resumeAt`. */
async function runCheck(check: Check, resumeAt: Endpoint, options: ProbeOptions): Promise<ProbeResult> {
  const row = (resumed: boolean, full: number | null, again: number | null, reason?: string): ProbeResult => ({
    protocol: check.protocol,
    mechanism: check.mechanism,
    ...(resumeAt === options.target ? {} : { across: formatEndpoint(resumeAt) }),
    resumed,
    handshakeMs: { full: roundMs(full), resumed: roundMs(again) },
    ...(reason === undefined ? {} : { reason }),
  });
  let full: Handshake;
  try {
    full = await handshake(options.target, check, options);
  } catch (error) {
    if (error instanceof HandshakeRefused) return row(false, null, null, `full handshake failed: ${error.message}`);
    throw error;
  }
  if (full.session === undefined) return row(false, full.ms, null, 'the server issued no session');
  if (check.mechanism === 'ticket' && !full.ticket) return row(false, full.ms, null, 'the server issued no ticket');
  try {
    const again = await handshake(resumeAt, check, options, full.session);
    const result = row(again.reused, full.ms, again.ms);
    if (options.policy && check.mechanism === 'ticket' && resumeAt === options.target)
      result.policy = await ticketPolicy(check, options, full);
    return result;
  } catch (error) {
    if (error instanceof HandshakeRefused) return row(false, full.ms, null, `resuming handshake failed: ${error.message}`);
    throw error;
  }
}

/** A second full handshake, `policyIntervalMs` after the first: did the ticket key change? And the lifetime the first ticket announced. */
async function ticketPolicy(check: Check, options: ProbeOptions, first: Handshake): Promise<TicketPolicy> {
  const intervalMs = options.policyIntervalMs ?? 0;
  if (intervalMs > 0) await new Promise((resolve) => setTimeout(resolve, intervalMs));
  const second = await handshake(options.target, check, options);
  return {
    ticketLifetimeHintSeconds: lifetimeHint(first.session!),
    ticketKeyChanged: first.ticketKeyName && second.ticketKeyName ? !first.ticketKeyName.equals(second.ticketKeyName) : null,
    intervalSeconds: intervalMs / 1000,
  };
}

/** The ticket lifetime hint Node's client session holds (read through the addon, loaded only for --policy). */
function lifetimeHint(nodeSession: Buffer): number | null {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Session } = require('../session') as typeof import('../session');
  try {
    using session = Session.fromNodeSession(nodeSession);
    return session.hasTicket ? session.ticketLifetimeHint : null;
  } catch {
    return null;
  }
}

function roundMs(ms: number | null): number | null {
  return ms === null ? null : Math.round(ms * 100) / 100;
}

/**
 * Every check against the first target, each followed by the same check offered to every
 * --across target (a fresh full handshake each time: a TLS 1.3 stateful ticket is single-use).
 * One connection at a time, so the timings are not disturbed by each other.
 */
export async function runProbe(options: ProbeOptions): Promise<ProbeResult[]> {
  const results: ProbeResult[] = [];
  for (const check of CHECKS) {
    for (const resumeAt of [options.target, ...options.across]) results.push(await runCheck(check, resumeAt, options));
  }
  return results;
}
