/**
 * Which peer and security context a client session belongs to. A session is offered only to a
 * connection whose identity matches the one it was stored under: host, port (or socket path),
 * the name Node binds client sessions to (servername, else host), ALPN list, TLS versions,
 * cipher lists, whether the server must verify, the CA set, the client's own certificate, and
 * a custom checkServerIdentity. Certificates, keys and CAs enter only as SHA-256 digests: the
 * store never sees the material, and the key reveals nothing but "another peer".
 */
import { createHash, type Hash } from 'node:crypto';
import * as tls from 'node:tls';
import { invalidArgType } from '../errors';

/** What a cached client session is keyed by (digest of PeerIdentity's fields), plus what the cache needs at hand. */
export interface ClientPeer {
  /** SHA-256 (hex) over every field that defines the peer and the security context. */
  readonly digest: string;
  /** The host Node binds the session to: servername, else host, else 'localhost' (Node's rule). */
  readonly identity: string;
  /** Why this connection cannot use the cache (a `session`, `secureContext` or `pskCallback` was given), if so. */
  readonly bypass: string | undefined;
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

/**
 * The peer of a tls.connect options object (the same object the cache passes on to Node).
 * Throws a TypeError (ERR_INVALID_ARG_TYPE) when `options` is not an object.
 */
export function clientPeerOf(options: tls.ConnectionOptions): ClientPeer {
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'an object (tls.connect options)', options);
  const host = typeof options.host === 'string' && options.host.length > 0 ? options.host : 'localhost';
  // The name Node binds the session to (its wrap rule: servername, else host, else 'localhost').
  const identity = options.servername || host;
  const bypass =
    options.session !== undefined
      ? 'a session was given'
      : options.secureContext !== undefined
        ? 'a secureContext was given (its CA and certificate cannot be read, so the peer cannot be told apart)'
        : options.pskCallback !== undefined
          ? 'a pskCallback was given'
          : undefined;

  const hash = createHash('sha256');
  field(hash, 'v', 'tls-session/client-peer/v1');
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
  field(hash, 'rejectUnauthorized', String(options.rejectUnauthorized !== false));
  field(hash, 'ca', options.ca === undefined ? 'default' : materialDigest(options.ca as Material));
  field(hash, 'cert', materialDigest(options.cert as Material | undefined));
  // The key and pfx are secrets: only a digest enters, and it only tells identities apart.
  field(hash, 'key', materialDigest(options.key as Material | undefined));
  field(hash, 'pfx', materialDigest(options.pfx as Material | undefined));
  field(hash, 'crl', materialDigest(options.crl as Material | undefined));
  field(
    hash,
    'checkServerIdentity',
    typeof options.checkServerIdentity === 'function'
      ? createHash('sha256').update(String(options.checkServerIdentity)).digest('hex')
      : 'default',
  );
  return { digest: hash.digest('hex'), identity, bypass };
}
