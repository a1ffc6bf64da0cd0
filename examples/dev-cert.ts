/**
 * Certificate for the examples: the files named by TLS_KEY_FILE / TLS_CERT_FILE, or else a
 * self-signed certificate for localhost made once with the openssl CLI and kept in `dir`.
 * Kept, not remade per start: the default session scope is derived from the certificate, so a
 * new certificate on every start would (rightly) refuse the sessions of the previous one.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface DevCertificate {
  key: Buffer;
  cert: Buffer;
}

/** The key of a throwaway certificate: P-256 (the default) or RSA-2048. */
export type DevKeyType = 'p256' | 'rsa2048';

/**
 * `keyType` picks the throwaway certificate's key (default P-256; each type is kept in its own
 * files in `dir`). TLS_KEY_FILE / TLS_CERT_FILE, when set, win whatever the type.
 */
export function devCertificate(dir = 'example-cert', keyType: DevKeyType = 'p256'): DevCertificate {
  const keyFile = process.env.TLS_KEY_FILE;
  const certFile = process.env.TLS_CERT_FILE;
  if (keyFile && certFile) return { key: readFileSync(keyFile), cert: readFileSync(certFile) };
  const suffix = keyType === 'p256' ? '' : `-${keyType}`;
  const key = join(dir, `key${suffix}.pem`);
  const cert = join(dir, `cert${suffix}.pem`);
  const newKey = keyType === 'p256' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'] : ['-newkey', 'rsa:2048'];
  if (!existsSync(key) || !existsSync(cert)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        ...newKey,
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '30',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
  }
  return { key: readFileSync(key), cert: readFileSync(cert) };
}
