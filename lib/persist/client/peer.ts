/**
 * Which peer and trust policy a client session belongs to. A resumed connection is not verified
 * again (Node takes the verify result and the peer certificate from the session and skips
 * checkServerIdentity), so the key must hold everything that decides whether a full handshake
 * would have been accepted: host, port (or socket path), the name Node checks and binds sessions
 * to, ALPN list, TLS versions and protocol options, cipher lists, whether the server must verify
 * (NODE_TLS_REJECT_UNAUTHORIZED included), the CA set (or, without `ca`, a digest of this
 * process's default trust store: trust-store.ts), CRLs, partial-chain trust, the client's own
 * certificate and a custom checkServerIdentity. Certificates, keys and CAs enter only as SHA-256
 * digests: the store never sees the material, and the key reveals nothing but "another peer".
 *
 * A function cannot be compared across processes, so checkServerIdentity enters by its source
 * text (two closures of one pin factory share a key); the cache runs the caller's function on
 * the stored certificate before it offers a session, which is what keeps a pin a pin.
 */
import { connectedSocketHost } from '../../node-internals';
import { createHash, type Hash } from 'node:crypto';
import * as tls from 'node:tls';
import { invalidArgType } from '../../errors';
import { defaultTrustDigest } from './trust-store';

/** What a cached client session is keyed by (digest of PeerIdentity's fields), plus what the cache needs at hand. */
export interface ClientPeer {
  /** SHA-256 (hex) over every field that defines the peer and the security context. */
  readonly digest: string;
  /** The host Node binds the session to: servername, else host, else 'localhost' (Node's rule). */
  readonly identity: string;
  /** Why this connection cannot use the cache (a `session`, `secureContext` or `pskCallback` was given), if so. */
  readonly bypass: string | undefined;
  /** The host name Node gives checkServerIdentity: servername, else host, else the socket's host, else 'localhost'. */
  readonly checkHost: string;
  /** The caller's checkServerIdentity, or Node's own. */
  readonly checkServerIdentity: (hostname: string, cert: tls.PeerCertificate) => Error | undefined;
  /** Whether Node rejects this connection when the server does not verify (rejectUnauthorized, or NODE_TLS_REJECT_UNAUTHORIZED). */
  readonly verifies: boolean;
}

/** Array-valued options that are copied (not shared) by snapshotOptions. */
const ARRAY_OPTIONS = ['ca', 'cert', 'key', 'pfx', 'crl', 'ALPNProtocols'] as const;

/**
 * The options as they are at the call: the cache awaits the store before it connects, and code
 * that reuses one options object (`base.port = p; cache.connect(base)`) must not send a
 * connection elsewhere than the session was looked up for. A shallow copy (own enumerable
 * properties, as tls.connect itself spreads them) whose arrays are copied too.
 */
export function snapshotOptions<T extends tls.ConnectionOptions>(options: T): T {
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'an object (tls.connect options)', options);
  const copy = { ...options };
  for (const name of ARRAY_OPTIONS) {
    const value = copy[name];
    if (Array.isArray(value)) (copy as Record<string, unknown>)[name] = [...(value as unknown[])];
  }
  return copy;
}

/** Node's default for rejectUnauthorized, read per connection as tls.connect does. */
function rejectsByDefault(): boolean {
  return process.env.NODE_TLS_REJECT_UNAUTHORIZED !== '0';
}

type Material = string | Buffer | Uint8Array | ReadonlyArray<string | Buffer | Uint8Array | { pem?: unknown; buf?: unknown }>;

/** Lower-cases ASCII only, as host names compare; Node keeps servername as given. */
const asciiLower = (text: string): string => text.replace(/[A-Z]+/g, (upper) => upper.toLowerCase());

/** Adds a length-prefixed field, so that no two different option sets hash alike. */
function field(hash: Hash, name: string, value: string | Buffer): void {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  hash.update(`${name}:${bytes.length}:`);
  hash.update(bytes);
  hash.update('\n');
}

/** SHA-256 of certificate/CA/key material in any form tls.connect takes (string, Buffer, arrays, pfx objects). */
function materialDigest(material: Material | undefined): string {
  if (material === undefined || material === null) return 'none';
  const hash = createHash('sha256');
  const items = Array.isArray(material) ? material : [material];
  for (const item of items as unknown[]) {
    if (typeof item === 'string') field(hash, 's', item);
    else if (item instanceof Uint8Array) field(hash, 'b', Buffer.from(item.buffer, item.byteOffset, item.byteLength));
    else if (item !== null && typeof item === 'object') {
      const { pem, buf } = item as { pem?: unknown; buf?: unknown };
      const inner = pem ?? buf;
      if (typeof inner === 'string') field(hash, 'o', inner);
      else if (inner instanceof Uint8Array) field(hash, 'o', Buffer.from(inner.buffer, inner.byteOffset, inner.byteLength));
      else field(hash, 'u', '');
    } else field(hash, 'u', '');
  }
  return hash.digest('hex');
}

/** ALPN in any form tls.connect takes (string[], Buffer[], Uint8Array[], or one wire-format buffer). */
function alpnText(alpn: unknown): string {
  if (alpn === undefined || alpn === null) return '';
  if (Array.isArray(alpn)) {
    return alpn
      .map((protocol: unknown) => (typeof protocol === 'string' ? protocol : Buffer.from(protocol as Uint8Array).toString('latin1')))
      .join(',');
  }
  if (alpn instanceof Uint8Array) return `wire:${Buffer.from(alpn).toString('hex')}`;
  return String(alpn);
}

/** Hex SHA-256 of a function's source text (see the file comment). */
const sourceDigests = new WeakMap<object, string>();
function functionDigest(fn: object): string {
  let digest = sourceDigests.get(fn);
  if (digest === undefined) {
    digest = createHash('sha256').update(Function.prototype.toString.call(fn)).digest('hex');
    sourceDigests.set(fn, digest);
  }
  return digest;
}

/**
 * The peer of a tls.connect options object (a snapshot: the object the cache passes on to Node).
 * Throws a TypeError (ERR_INVALID_ARG_TYPE) when `options` is not an object.
 */
export function clientPeerOf(options: tls.ConnectionOptions): ClientPeer {
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'an object (tls.connect options)', options);
  const host = typeof options.host === 'string' && options.host.length > 0 ? options.host : 'localhost';
  // The name Node binds the session to (its wrap rule: servername, else host, else 'localhost').
  const identity = options.servername || host;
  const checkHost =
    options.servername || (typeof options.host === 'string' && options.host) || connectedSocketHost(options.socket) || 'localhost';
  const verifies = options.rejectUnauthorized === undefined ? rejectsByDefault() : options.rejectUnauthorized !== false;
  const custom = typeof options.checkServerIdentity === 'function' ? options.checkServerIdentity : undefined;
  const bypass =
    options.session !== undefined
      ? 'a session was given'
      : options.secureContext !== undefined
        ? 'a secureContext was given (its CA and certificate cannot be read, so the peer cannot be told apart)'
        : options.pskCallback !== undefined
          ? 'a pskCallback was given'
          : undefined;

  const hash = createHash('sha256');
  field(hash, 'v', 'tls-session/client-peer/v2');
  field(hash, 'host', asciiLower(host));
  field(hash, 'port', String(options.port ?? ''));
  field(hash, 'path', typeof options.path === 'string' ? options.path : '');
  field(hash, 'servername', options.servername ?? '');
  field(hash, 'identity', identity);
  field(hash, 'alpn', alpnText(options.ALPNProtocols));
  field(hash, 'minVersion', options.minVersion ?? tls.DEFAULT_MIN_VERSION);
  field(hash, 'maxVersion', options.maxVersion ?? tls.DEFAULT_MAX_VERSION);
  field(hash, 'ciphers', options.ciphers ?? tls.DEFAULT_CIPHERS);
  field(hash, 'ecdhCurve', options.ecdhCurve ?? tls.DEFAULT_ECDH_CURVE);
  field(hash, 'sigalgs', options.sigalgs ?? '');
  field(hash, 'secureProtocol', options.secureProtocol ?? '');
  field(hash, 'secureOptions', String(options.secureOptions ?? ''));
  field(hash, 'minDHSize', String(options.minDHSize ?? ''));
  field(hash, 'checkHost', checkHost);
  field(hash, 'rejectUnauthorized', String(verifies));
  field(
    hash,
    'ca',
    options.ca === undefined || options.ca === null ? `default:${defaultTrustDigest()}` : materialDigest(options.ca as Material),
  );
  field(hash, 'allowPartialTrustChain', String((options as { allowPartialTrustChain?: unknown }).allowPartialTrustChain ?? ''));
  field(hash, 'cert', materialDigest(options.cert as Material | undefined));
  // The key and pfx are secrets: only a digest enters, and it only tells identities apart.
  field(hash, 'key', materialDigest(options.key as Material | undefined));
  field(hash, 'pfx', materialDigest(options.pfx as Material | undefined));
  field(hash, 'passphrase', materialDigest(options.passphrase));
  for (const name of ['privateKeyEngine', 'privateKeyIdentifier', 'clientCertEngine'] as const) {
    const value = (options as Record<string, unknown>)[name];
    field(hash, name, typeof value === 'string' ? value : '');
  }
  field(hash, 'crl', materialDigest(options.crl as Material | undefined));
  field(hash, 'checkServerIdentity', custom && custom !== tls.checkServerIdentity ? functionDigest(custom) : 'default');
  return { digest: hash.digest('hex'), identity, bypass, checkHost, checkServerIdentity: custom ?? tls.checkServerIdentity, verifies };
}
