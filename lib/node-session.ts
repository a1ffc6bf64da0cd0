/**
 * Node's client session format, and which one the running Node expects.
 *
 * Since the 2026-06-18 security release (22.23.0, 24.17.0, 26.3.1: "tls: bind reusable sessions
 * to authenticated host", CVE-2026-48934) a node:tls client hands out its sessions (the 'session'
 * event, getSession()) wrapped in an envelope naming the host the session was authenticated for:
 *
 *   "\0nodejs:tls:session:1\0" | host length (u16 BE) | host (UTF-8) | DER SSL_SESSION
 *
 * and `tls.connect({ session })` then resumes only such a wrapped session, and only when its host
 * equals the connection's identity (`servername`, else `host`, else 'localhost'); plain DER is
 * ignored unless `rejectUnauthorized: false`. Older Node (20.x, and 22/24/26 before those
 * releases) hands out and accepts plain DER only: a wrapped buffer does not resume there.
 * Server-side sessions (`newSession`, `resumeSession`) are plain DER everywhere.
 *
 * The format of given bytes is told by content: DER always starts with 0x30 (SEQUENCE), the
 * envelope with 0x00. What the running Node expects is probed once (node-internals.ts,
 * nodeSessionFormat()).
 */
import { SessionDecodeError } from './errors';

/** Node's envelope magic, version 1 (lib/internal/tls/wrap.js: kTLSSessionStatePrefix). Never handed out: a Buffer is mutable. */
const NODE_SESSION_PREFIX = Buffer.from('\0nodejs:tls:session:1\0', 'latin1');
/** The part of the magic that is the same for every envelope version. */
const MAGIC_STEM = Buffer.from('\0nodejs:tls:session:', 'latin1');
const HEADER_BYTES = NODE_SESSION_PREFIX.length + 2;
/** The u16 length field bounds the host. */
export const MAX_NODE_SESSION_HOST_BYTES = 0xffff;

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** True when `bytes` starts with the magic of Node's envelope ("\0nodejs:tls:session:", any version). */
export function hasNodeEnvelopeMagic(bytes: Uint8Array): boolean {
  if (bytes.byteLength < MAGIC_STEM.length || bytes[0] !== 0) return false;
  for (let i = 1; i < MAGIC_STEM.length; i++) if (bytes[i] !== MAGIC_STEM[i]) return false;
  return true;
}

/**
 * Splits Node's envelope into host and DER, strictly: the magic and version, the length field,
 * a non-empty host that is valid UTF-8 and within bounds, and a non-empty DER after it (whose
 * own exactness — no trailing bytes — is checked by the DER decoder). Throws SessionDecodeError.
 */
export function parseNodeEnvelope(bytes: Uint8Array): { host: string; der: Uint8Array } {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.length < NODE_SESSION_PREFIX.length && view.equals(NODE_SESSION_PREFIX.subarray(0, view.length))) {
    throw new SessionDecodeError(`truncated Node session envelope: ${view.length} bytes, shorter than its magic`);
  }
  if (!hasNodeEnvelopeMagic(view)) {
    throw new SessionDecodeError('neither a Node session envelope (no "\\0nodejs:tls:session:" magic) nor DER (which starts with 0x30)');
  }
  if (!view.subarray(0, NODE_SESSION_PREFIX.length).equals(NODE_SESSION_PREFIX)) {
    const end = view.indexOf(0, MAGIC_STEM.length);
    const version = view.toString('latin1', MAGIC_STEM.length, Math.min(end < 0 ? view.length : end, MAGIC_STEM.length + 8));
    throw new SessionDecodeError(`unsupported Node session envelope version ${JSON.stringify(version)} (this library reads version 1)`);
  }
  if (view.length < HEADER_BYTES) {
    throw new SessionDecodeError(`truncated Node session envelope: ${view.length} bytes, no room for the host length`);
  }
  const hostLength = view.readUInt16BE(NODE_SESSION_PREFIX.length);
  if (hostLength === 0) throw new SessionDecodeError('malformed Node session envelope: empty host');
  const hostEnd = HEADER_BYTES + hostLength;
  if (hostEnd > view.length) {
    throw new SessionDecodeError(
      `malformed Node session envelope: host length ${hostLength} runs past the end of the ${view.length}-byte input`,
    );
  }
  let host: string;
  try {
    host = strictUtf8.decode(view.subarray(HEADER_BYTES, hostEnd));
  } catch {
    throw new SessionDecodeError('malformed Node session envelope: the host is not valid UTF-8');
  }
  if (hostEnd === view.length) throw new SessionDecodeError('malformed Node session envelope: no session after the host');
  return { host, der: view.subarray(hostEnd) };
}

/** Node's envelope around `der` for `host` (what Node itself builds in wrapSessionState). */
export function buildNodeEnvelope(host: string, der: Buffer): Buffer {
  const hostBytes = Buffer.from(host, 'utf8');
  const header = Buffer.allocUnsafe(HEADER_BYTES);
  NODE_SESSION_PREFIX.copy(header, 0);
  header.writeUInt16BE(hostBytes.length, NODE_SESSION_PREFIX.length);
  return Buffer.concat([header, hostBytes, der]);
}
