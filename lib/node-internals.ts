/**
 * Every Node.js internal this library relies on, in one place, each with how it is checked on
 * the running Node. Any of them can move in a patch release (two did in 2026), so none is taken
 * on trust:
 *
 * | internal                                   | used by                        | checked by                              |
 * |--------------------------------------------|--------------------------------|-----------------------------------------|
 * | server._sharedCreds.context (native        | attachSessionStore (session ID | missingServerInternals(): a typed       |
 * |   SecureContext: setSessionIdContext,      |   context, scope), TicketKey-  |   NodeInternalsError at attach          |
 * |   getCertificate), server._contexts (SNI), |   Ring (ticket keys)           |                                         |
 * |   setSecureContext / addContext            |                                |                                         |
 * | context.enableTicketKeyCallback() +        | TicketKeyRing                  | ticketKeyCallbackGap(): one warning,    |
 * |   context.onticketkeycallback              |                                |   then setTicketKeys (one key)          |
 * | the session ID context Node writes into    | attachSessionStore (which      | sessionBinding(): a handshake probe,    |
 * |   server sessions (the SNI binding)        |   records this Node resumes)   |   else the version rule and one warning |
 * | the client session envelope (codec in      | Session, ClientSessionCache    | nodeSessionFormat(): a probe on an      |
 * |   node-session.ts)                         |                                |   unconnected socket, else the version  |
 * | socket._handle.onread (the stream reader)  | ClientSessionCache (the wait   | muteSocketReads(): false, and the wait  |
 * |                                            |   for late TLS 1.3 tickets)    |   is skipped                            |
 *
 * test/node-internals.test.ts checks each against real handshakes on every CI Node line.
 */
import { constants, createHash } from 'node:crypto';
import { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import type { Socket } from 'node:net';
import { buildNodeEnvelope, hasNodeEnvelopeMagic, parseNodeEnvelope } from './node-session';
import { readSessionHeader } from './session-header';

// ---------------------------------------------------------------------------------------------
// tls.Server internals: the native SecureContext of the default and each SNI context.

type TicketKeyCallback = (name: Buffer, iv: Buffer, encrypt: boolean) => readonly unknown[];

/** The parts of Node's (undocumented) native SecureContext the library uses. */
export interface NativeSecureContext {
  setSessionIdContext(context: string): void;
  getCertificate(): Buffer | null | undefined;
  setTicketKeys(keys: Buffer): void;
  getTicketKeys(): Buffer;
  enableTicketKeyCallback?: () => void;
  onticketkeycallback?: TicketKeyCallback;
}

/** tls.Server internals; present on https and http2 secure servers too. */
export interface ServerInternals {
  _sharedCreds?: { context?: NativeSecureContext };
  /** [pattern, SecureContext or its native context] per addContext() call. */
  _contexts?: Array<[RegExp, NativeSecureContext | { context: NativeSecureContext }]>;
  sessionIdContext?: string;
  setSecureContext(options: tls.SecureContextOptions): void;
  addContext(hostname: string, context: tls.SecureContextOptions): void;
}

export function serverInternals(server: tls.Server): ServerInternals {
  return server as unknown as ServerInternals;
}

/** The native context of a SecureContext (or the native context itself); undefined for anything else. */
export function nativeContextOf(context: unknown): NativeSecureContext | undefined {
  if (context === null || typeof context !== 'object') return undefined;
  const isNative = (value: object): boolean =>
    typeof (value as NativeSecureContext).setSessionIdContext === 'function' ||
    typeof (value as NativeSecureContext).setTicketKeys === 'function';
  if (isNative(context)) return context as NativeSecureContext;
  const inner = (context as { context?: unknown }).context;
  return inner !== null && typeof inner === 'object' && isNative(inner) ? (inner as NativeSecureContext) : undefined;
}

/** The server's default native context, then each SNI context's (as configured when called). */
export function serverNativeContexts(server: tls.Server): NativeSecureContext[] {
  const target = serverInternals(server);
  const contexts: NativeSecureContext[] = [];
  const main = target._sharedCreds?.context;
  if (main) contexts.push(main);
  for (const entry of target._contexts ?? []) {
    const native = nativeContextOf(entry[1]);
    if (native) contexts.push(native);
  }
  return contexts;
}

/**
 * The pieces of tls.Server internals that setting the session ID context (and, when the scope
 * is to be derived, reading the certificates) needs and this server lacks, each named as
 * `server.…`; empty when all are there. Present on Node 20, 22, 24 and 26 (measured).
 */
export function missingServerInternals(server: tls.Server, { derivingScope }: { derivingScope: boolean }): string[] {
  const target = serverInternals(server);
  const missing: string[] = [];
  const creds = target._sharedCreds;
  if (creds === null || typeof creds !== 'object') {
    missing.push('server._sharedCreds');
  } else if (creds.context === null || typeof creds.context !== 'object') {
    missing.push('server._sharedCreds.context');
  } else {
    if (typeof creds.context.setSessionIdContext !== 'function') missing.push('server._sharedCreds.context.setSessionIdContext()');
    if (derivingScope && typeof creds.context.getCertificate !== 'function') missing.push('server._sharedCreds.context.getCertificate()');
  }
  if (!Array.isArray(target._contexts)) {
    missing.push('server._contexts (the SNI context list)');
  } else {
    for (const entry of target._contexts as unknown[]) {
      const pair = Array.isArray(entry) ? entry : [];
      const source = (pair[0] as { source?: unknown } | undefined)?.source; // a RegExp (of Node's realm: no instanceof)
      const label = `server._contexts entry ${typeof source === 'string' ? source : '?'}`;
      const native = nativeContextOf(pair[1]);
      if (typeof native?.setSessionIdContext !== 'function') missing.push(`${label}: setSessionIdContext()`);
      else if (derivingScope && typeof native.getCertificate !== 'function') missing.push(`${label}: getCertificate()`);
    }
  }
  if (typeof target.setSecureContext !== 'function') missing.push('server.setSecureContext()');
  if (typeof target.addContext !== 'function') missing.push('server.addContext()');
  return missing;
}

/**
 * What the ticket-key callback (enableTicketKeyCallback + onticketkeycallback, Node 20-26) lacks
 * on this server, named as `server.…`; undefined when it is there.
 */
export function ticketKeyCallbackGap(server: tls.Server): string | undefined {
  const creds = serverInternals(server)._sharedCreds;
  const context = creds?.context;
  if (typeof context?.enableTicketKeyCallback === 'function') return undefined;
  if (!creds) return 'server._sharedCreds';
  if (!context) return 'server._sharedCreds.context';
  return 'server._sharedCreds.context.enableTicketKeyCallback()';
}

/** The symbol under which Node keeps a server's SNICallback (private; undefined when not found). */
export function sniCallbackSymbol(server: tls.Server): symbol | undefined {
  return Object.getOwnPropertySymbols(server).find((s) => s.description === 'snicallback');
}

/** A Node version's major, and whether it is at least `minor.patch` of that major. */
function release(version: string): { major: number; atLeast(minor: number, patch: number): boolean } {
  const [major = 0, minor = 0, patch = 0] = version
    .replace(/^v/, '')
    .split('.')
    .map((part) => Number.parseInt(part, 10) || 0);
  return { major, atLeast: (m, p) => minor > m || (minor === m && patch >= p) };
}

// ---------------------------------------------------------------------------------------------
// The session ID context Node writes into server sessions.

/**
 * How the running Node binds a server session, as seen in the session ID context it writes:
 * - 'context': the context's own session ID context (Node 20.x, 22 up to 22.23.3, 24 up to
 *   24.22.1, 26 up to at least 26.12.1): one value for every SNI name of a server;
 * - 'sni-sha256': SHA-256(session ID context ‖ 0x00 ‖ SNI name), 32 bytes, and the name in the
 *   session (22.23.5+, 24.22.3+): a session resumes only under the name it was issued for.
 * OpenSSL compares the value on every resumption (session IDs and tickets), so two releases
 * that bind differently never resume each other's sessions.
 */
export type SessionBinding = 'context' | 'sni-sha256';

export interface SessionBindingInfo {
  binding: SessionBinding;
  /** 'probe': seen in a handshake on this Node; 'version': the probe was inconclusive and the version rule decided. */
  decidedBy: 'probe' | 'version';
  nodeVersion: string;
}

/** The code of the single warning emitted when the probe is inconclusive. */
export const SESSION_BINDING_WARNING = 'TLS_SESSION_BINDING_UNPROBED';

/**
 * The version rule, used only when the probe is inconclusive: 22.23.5 and 24.22.3 are the first
 * published releases seen binding by SNI (22.23.4 and 24.22.2 were never published on npm);
 * 22.23.3, 24.22.1 and 26.12.1 are the last seen binding by context. A release after these on 26
 * or later lines is unknown here, hence the probe.
 */
export function sessionBindingByVersion(version: string = process.versions.node): SessionBinding {
  const { major, atLeast } = release(version);
  if (major === 24) return atLeast(22, 2) ? 'sni-sha256' : 'context';
  if (major === 22) return atLeast(23, 4) ? 'sni-sha256' : 'context';
  return 'context';
}

/**
 * The session ID context a session carries when a Node that binds by `binding` issued it under
 * `sessionIdContext` (the bytes set on the context) for `hostname` (the SNI name in the
 * session's DER; none: the empty name, as Node hashes it).
 */
export function boundSessionIdContext(binding: SessionBinding, sessionIdContext: Buffer, hostname: Buffer | undefined): Buffer {
  if (binding === 'context') return sessionIdContext;
  return createHash('sha256')
    .update(sessionIdContext)
    .update(SEPARATOR)
    .update(hostname ?? EMPTY)
    .digest();
}
const SEPARATOR = Buffer.from([0]);
const EMPTY = Buffer.alloc(0);

const PROBE_NAME = 'probe.invalid';
const PROBE_CONTEXT = 'tls-session-probe-sid-ctx-000001';
const PROBE_CIPHER = 'PSK-AES128-GCM-SHA256';
const PROBE_TIMEOUT_MS = 2000;

/** Two in-memory streams wired to each other: the probe's handshake never touches a network. */
function duplexPair(): [Duplex, Duplex] {
  const ends: Duplex[] = [];
  const make = (peer: () => Duplex): Duplex =>
    new Duplex({
      read() {},
      write(chunk, _encoding, callback) {
        peer().push(chunk);
        callback();
      },
      final(callback) {
        peer().push(null);
        callback();
      },
    });
  ends.push(
    make(() => ends[1]!),
    make(() => ends[0]!),
  );
  return [ends[0]!, ends[1]!];
}

/**
 * The probe: one TLS 1.2 PSK handshake over an in-memory stream pair (no certificate, no
 * network), the server with a known session ID context and the client sending a known SNI name;
 * the session ID context of the session Node's server hands to 'newSession' says how this Node
 * binds. Resolves undefined when the handshake fails or the value matches no known binding.
 */
export function probeSessionBinding(): Promise<SessionBinding | undefined> {
  return new Promise((resolve) => {
    const psk = Buffer.alloc(32, 0x5a);
    const common = { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: PROBE_CIPHER } as const;
    let server: tls.Server | undefined;
    let client: tls.TLSSocket | undefined;
    const [serverEnd, clientEnd] = duplexPair();
    let settled = false;
    const finish = (binding: SessionBinding | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client?.destroy();
      serverEnd.destroy();
      clientEnd.destroy();
      resolve(binding);
    };
    const timer = setTimeout(() => finish(undefined), PROBE_TIMEOUT_MS);
    timer.unref();
    try {
      server = new tls.Server({
        ...common,
        pskCallback: () => psk,
        sessionIdContext: PROBE_CONTEXT,
        // No tickets: the session must come to 'newSession' with a session ID.
        secureOptions: constants.SSL_OP_NO_TICKET,
      });
      server.on('tlsClientError', () => finish(undefined));
      server.on('newSession', (_id: Buffer, der: Buffer, done: () => void) => {
        done();
        finish(classify(der));
      });
      server.emit('connection', serverEnd);
      client = tls.connect({
        ...common,
        socket: clientEnd,
        servername: PROBE_NAME,
        pskCallback: () => ({ psk, identity: 'tls-session-probe' }),
        checkServerIdentity: () => undefined,
      });
      client.on('error', () => finish(undefined));
    } catch {
      finish(undefined);
    }
  });
}

function classify(der: Buffer): SessionBinding | undefined {
  const header = readSessionHeader(der);
  if (!header) return undefined;
  const context = Buffer.from(PROBE_CONTEXT, 'latin1');
  if (header.sessionIdContext.equals(context)) return 'context';
  const name = Buffer.from(PROBE_NAME, 'latin1');
  if (header.hostname?.equals(name) && header.sessionIdContext.equals(boundSessionIdContext('sni-sha256', context, name))) {
    return 'sni-sha256';
  }
  return undefined;
}

let bindingPromise: Promise<SessionBindingInfo> | undefined;
let bindingDecided: SessionBindingInfo | undefined;

/**
 * How the running Node binds server sessions, decided once per process: by the probe (about
 * 15 ms, once, asynchronous), or by the version rule with one warning when the probe is
 * inconclusive. Never rejects.
 */
export function sessionBinding(): Promise<SessionBindingInfo> {
  bindingPromise ??= probeSessionBinding().then((probed) => {
    if (probed === undefined) {
      process.emitWarning(
        `tls-session: could not probe how Node ${process.version} binds server sessions (a TLS 1.2 PSK handshake in memory failed); ` +
          `assuming '${sessionBindingByVersion()}' from the version. Sessions stored by another binding get full handshakes.`,
        { type: 'TlsSessionWarning', code: SESSION_BINDING_WARNING },
      );
    }
    bindingDecided = Object.freeze({
      binding: probed ?? sessionBindingByVersion(),
      decidedBy: probed !== undefined ? 'probe' : 'version',
      nodeVersion: process.version,
    } as const);
    return bindingDecided;
  });
  return bindingPromise;
}

/** The binding once sessionBinding() has settled; undefined before. */
export function sessionBindingIfDecided(): SessionBindingInfo | undefined {
  return bindingDecided;
}

// ---------------------------------------------------------------------------------------------
// The client session envelope (lib/node-session.ts holds its codec): which form this Node uses.

/** 'wrapped': Node's envelope with the host (Node ≥ 22.23.0 / 24.17.0 / 26.3.1). 'der': plain DER (Node 20 and older releases). */
export type NodeSessionFormat = 'wrapped' | 'der';

export interface NodeSessionFormatInfo {
  /** What the running Node's client hands out and what its tls.connect({ session }) resumes. */
  format: NodeSessionFormat;
  /** 'probe': measured on this Node; 'version': the probe was inconclusive and the version rule decided. */
  decidedBy: 'probe' | 'version';
  /** process.version when decided. */
  nodeVersion: string;
}

/**
 * The version rule: the releases that bind client sessions to their host (CVE-2026-48934) are
 * 22.23.0+, 24.17.0+, 26.3.1+, and every line from 27 on. 23.x and 25.x were out of support by
 * then and never got it; 20.x (end of life in April 2026) neither. A distribution that backports
 * the fix to another version makes this rule wrong, which is why the probe decides first.
 */
export function nodeSessionFormatByVersion(version: string = process.versions.node): NodeSessionFormat {
  const { major, atLeast } = release(version);
  if (major >= 27) return 'wrapped';
  if (major === 26) return atLeast(3, 1) ? 'wrapped' : 'der';
  if (major === 24) return atLeast(17, 0) ? 'wrapped' : 'der';
  if (major === 22) return atLeast(23, 0) ? 'wrapped' : 'der';
  return 'der';
}

/**
 * A syntactically valid SSL_SESSION that never saw a network: version 1, TLS 1.2, cipher 0xC02F,
 * empty session ID, an all-zero 48-byte master key. Only used by the probe, on a TLSSocket that is
 * never connected.
 */
const PROBE_DER = Buffer.concat([Buffer.from('303f020101020203030402c02f04000430', 'hex'), Buffer.alloc(48)]);
const PROBE_HOST = 'localhost'; // Node's identity for a socket given neither servername nor host

/** What a client TLSSocket that was never connected hands back after setSession(session). */
function handedBack(secureContext: tls.SecureContext, session: Buffer): Buffer | undefined {
  const socket = new tls.TLSSocket(undefined as unknown as Socket, { secureContext });
  try {
    socket.on('error', () => {
      /* never connected: nothing to report */
    });
    // setSession runs the same check as tls.connect({ session }) (getSessionForReuse in Node's
    // lib/internal/tls/wrap.js); @types/node does not declare it.
    (socket as tls.TLSSocket & { setSession(session: Buffer): void }).setSession(session);
    const out = socket.getSession();
    return Buffer.isBuffer(out) ? out : undefined;
  } finally {
    socket.destroy();
  }
}

/**
 * The probe: on an unconnected client TLSSocket (default options: a verifying client, no
 * servername, so Node's identity is 'localhost'), give it PROBE_DER plain and then wrapped for
 * 'localhost', and look at what getSession() hands back. A Node that accepts plain DER and hands
 * it back plain expects 'der'; one that ignores plain DER, accepts the envelope and hands it back
 * wrapped expects 'wrapped'. Anything else is inconclusive (undefined).
 */
export function probeNodeSessionFormat(): NodeSessionFormat | undefined {
  try {
    // An empty CA list: the socket is never connected, and Node's root store (9.5 ms to load on
    // Node 24, measured) is not worth loading for that.
    const secureContext = tls.createSecureContext({ ca: [] });
    const plain = handedBack(secureContext, PROBE_DER);
    if (plain !== undefined && plain[0] === 0x30) return 'der';
    const wrapped = handedBack(secureContext, buildNodeEnvelope(PROBE_HOST, PROBE_DER));
    if (plain === undefined && wrapped !== undefined && hasNodeEnvelopeMagic(wrapped)) {
      return parseNodeEnvelope(wrapped).host === PROBE_HOST ? 'wrapped' : undefined;
    }
    return undefined;
  } catch {
    return undefined;
  }
}

let decided: NodeSessionFormatInfo | undefined;

/**
 * Which client session format the running Node uses, decided once per process: by the probe
 * (probeNodeSessionFormat: real behaviour of this Node's TLSSocket, a few milliseconds), or by
 * the version rule (nodeSessionFormatByVersion) if the probe is inconclusive.
 * `test/node-session.test.ts` proves the answer against a real handshake on every CI line.
 */
export function nodeSessionFormat(): NodeSessionFormatInfo {
  if (decided === undefined) {
    const probed = probeNodeSessionFormat();
    decided = Object.freeze({
      format: probed ?? nodeSessionFormatByVersion(),
      decidedBy: probed !== undefined ? 'probe' : 'version',
      nodeVersion: process.version,
    } as const);
  }
  return decided;
}

// ---------------------------------------------------------------------------------------------
// A socket's stream reader (lib/internal/stream_base_commons.js: onStreamRead, as
// `socket._handle.onread`): ClientSessionCache keeps a TLS 1.3 connection reading its tickets
// for a moment after the caller destroyed the socket, and data read meanwhile must not reach the
// destroyed stream (Node would throw ERR_OUT_OF_RANGE).

/**
 * The host a net.Socket was connected to (`socket._host`, net internals): what Node's
 * tls.connect checks the certificate against when a connected socket is passed without `host`
 * or `servername`. Undefined when the socket has none (or Node renamed it: then the caller falls
 * back as Node would, to 'localhost').
 */
export function connectedSocketHost(socket: unknown): string | undefined {
  const host = (socket as { _host?: unknown } | null | undefined)?._host;
  return typeof host === 'string' && host.length > 0 ? host : undefined;
}

/** Drops what the socket's handle reads from now on; false when the handle has no reader to replace (nothing done). */
export function muteSocketReads(socket: Socket): boolean {
  const handle = (socket as unknown as { _handle?: { onread?: unknown } | null })._handle;
  if (!handle || typeof handle.onread !== 'function') return false;
  handle.onread = () => {};
  return true;
}

// ---------------------------------------------------------------------------------------------

export interface NodeInternalsReport {
  nodeVersion: string;
  /** Whether a plain tls.Server on this Node has the internals attachSessionStore needs (names of what lacks). */
  serverInternals: { present: boolean; missing: string[] };
  ticketKeyCallback: { present: boolean; missing: string | undefined };
  sessionBinding: SessionBindingInfo;
  clientSessionFormat: NodeSessionFormatInfo;
}

/** Every internal, checked on a throwaway tls.Server (not listening): for diagnostics and the CLI. */
export async function nodeInternals(): Promise<NodeInternalsReport> {
  const server = new tls.Server({});
  const missing = missingServerInternals(server, { derivingScope: false });
  const gap = ticketKeyCallbackGap(server);
  return {
    nodeVersion: process.version,
    serverInternals: { present: missing.length === 0, missing },
    ticketKeyCallback: { present: gap === undefined, missing: gap },
    sessionBinding: await sessionBinding(),
    clientSessionFormat: nodeSessionFormat(),
  };
}
