/**
 * The default trust store of this process, as a digest for ClientSessionCache's key. A resumed
 * connection is not verified again (Node takes the verify result from the session), so a session
 * verified against one process's default CAs must not be offered by a process that trusts other
 * ones: NODE_EXTRA_CA_CERTS, --use-system-ca, --use-openssl-ca (and its SSL_CERT_FILE /
 * SSL_CERT_DIR) and tls.setDefaultCACertificates() all change what "no `ca`" means.
 *
 * Where Node has tls.getCACertificates() (22.15+, 23.10+), 'default' is the effective list. Node
 * returns one frozen array until setDefaultCACertificates() replaces it, so the digest is cached
 * per array: a replaced list is hashed again at the next connection. On older Nodes (20) the
 * digest covers what can change the list there: the bundled roots, NODE_EXTRA_CA_CERTS (path and
 * contents) and the CA flags with OpenSSL's certificate locations.
 */
import { createHash, type Hash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as tls from 'node:tls';

type GetCACertificates = (type?: 'default' | 'system' | 'bundled' | 'extra') => readonly string[];

const byList = new WeakMap<object, string>();
let legacy: string | undefined;

function add(hash: Hash, name: string, value: string | Buffer): void {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  hash.update(`${name}:${bytes.length}:`);
  hash.update(bytes);
  hash.update('\n');
}

/** The CA-store flags in effect, last one wins as in Node's option parser (NODE_OPTIONS first, then the command line). */
function caFlags(): string {
  const args = [...(process.env.NODE_OPTIONS ?? '').split(/\s+/), ...process.execArgv];
  const seen = args.filter((arg) => /^--use-(openssl|bundled|system)-ca$/.test(arg));
  return seen.join(' ');
}

/** OpenSSL's locations matter only where Node uses OpenSSL's store; they are read lazily by OpenSSL, so their names go in. */
function openSslLocations(hash: Hash, flags: string): void {
  const buildDefault = (process.config.variables as Record<string, unknown>).node_use_openssl_ca;
  if (!flags.includes('--use-openssl-ca') && !(buildDefault === true || buildDefault === 1 || buildDefault === 'true')) return;
  add(hash, 'SSL_CERT_FILE', process.env.SSL_CERT_FILE ?? '');
  add(hash, 'SSL_CERT_DIR', process.env.SSL_CERT_DIR ?? '');
}

function digestOfList(list: readonly string[]): string {
  const hash = createHash('sha256');
  add(hash, 'v', 'tls-session/default-trust/v1');
  for (const pem of list) add(hash, 'ca', pem);
  const flags = caFlags();
  add(hash, 'flags', flags);
  openSslLocations(hash, flags);
  return hash.digest('hex');
}

function legacyDigest(): string {
  const hash = createHash('sha256');
  add(hash, 'v', 'tls-session/default-trust/legacy/v1');
  for (const pem of tls.rootCertificates) add(hash, 'root', pem);
  const extra = process.env.NODE_EXTRA_CA_CERTS;
  add(hash, 'extra-path', extra ?? '');
  if (extra) {
    let contents: Buffer | string;
    try {
      // Node read this file at start-up; it is read here once, at the first connection without `ca`.
      contents = readFileSync(extra);
    } catch {
      contents = 'unreadable';
    }
    add(hash, 'extra', contents);
  }
  const flags = caFlags();
  add(hash, 'flags', flags);
  openSslLocations(hash, flags);
  return hash.digest('hex');
}

/** Hex SHA-256 of the CA list a connection without `ca` verifies against, in this process, now. */
export function defaultTrustDigest(): string {
  const get = (tls as unknown as { getCACertificates?: GetCACertificates }).getCACertificates;
  if (typeof get !== 'function') return (legacy ??= legacyDigest());
  const list = get('default');
  let digest = byList.get(list);
  if (digest === undefined) {
    digest = digestOfList(list);
    byList.set(list, digest);
  }
  return digest;
}
