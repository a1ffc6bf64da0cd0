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

export function devCertificate(dir = 'example-cert'): DevCertificate {
  const keyFile = process.env.TLS_KEY_FILE;
  const certFile = process.env.TLS_CERT_FILE;
  if (keyFile && certFile) return { key: readFileSync(keyFile), cert: readFileSync(certFile) };
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  if (!existsSync(key) || !existsSync(cert)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
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
