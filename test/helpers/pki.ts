import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A throwaway CA, server and client certificate made with the real openssl CLI (EC P-256: fast). */
export interface Pki {
  dir: string;
  caCertPath: string;
  serverCertPath: string;
  serverKeyPath: string;
  clientCertPath: string;
  clientKeyPath: string;
  ca: Buffer;
  serverCert: Buffer;
  serverKey: Buffer;
  clientCert: Buffer;
  clientKey: Buffer;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A new P-256 key `<name>.key` and a certificate request `<name>.csr` for `subject`, in `dir`. */
function keyAndRequest(dir: string, name: string, subject: string): void {
  openssl(
    [
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      subject,
    ],
    dir,
  );
}

function issue(dir: string, name: string, subject: string, ext: string): void {
  keyAndRequest(dir, name, subject);
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-out',
      `${name}.crt`,
      '-extfile',
      `${name}.ext`,
    ],
    dir,
  );
}

/** Makes a fresh PKI in a temporary directory: server cert for `localhost`, 127.0.0.1 and `*.test`. */
export function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'tls-session-pki-'));
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '2',
      '-subj',
      '/CN=tls-session test CA',
    ],
    dir,
  );
  issue(dir, 'server', '/CN=localhost', 'subjectAltName=DNS:localhost,DNS:*.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  issue(dir, 'client', '/CN=tls-session test client', 'extendedKeyUsage=clientAuth\n');
  const p = (f: string) => join(dir, f);
  return {
    dir,
    caCertPath: p('ca.crt'),
    serverCertPath: p('server.crt'),
    serverKeyPath: p('server.key'),
    clientCertPath: p('client.crt'),
    clientKeyPath: p('client.key'),
    ca: readFileSync(p('ca.crt')),
    serverCert: readFileSync(p('server.crt')),
    serverKey: readFileSync(p('server.key')),
    clientCert: readFileSync(p('client.crt')),
    clientKey: readFileSync(p('client.key')),
  };
}

/**
 * A server certificate from the PKI's CA for 127.0.0.1 and `dnsNames` that expires at `notAfter`
 * (`openssl ca -enddate`: `req`/`x509` count validity in whole days only).
 */
export function serverCertificateUntil(pki: Pki, notAfter: Date, dnsNames: string[] = ['localhost']): { cert: Buffer; key: Buffer } {
  const dir = mkdtempSync(join(pki.dir, 'until-'));
  const stamp = notAfter.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z'; // YYMMDDHHMMSSZ
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'serial'), '01\n');
  writeFileSync(
    join(dir, 'ca.cnf'),
    '[ca]\ndefault_ca=ca\n[ca]\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\ndefault_md=sha256\npolicy=policy\n' +
      'x509_extensions=ext\n[policy]\ncommonName=supplied\n[ext]\n' +
      `subjectAltName=${dnsNames.map((name) => `DNS:${name},`).join('')}IP:127.0.0.1\nextendedKeyUsage=serverAuth\n`,
  );
  keyAndRequest(dir, 's', '/CN=localhost');
  openssl(
    [
      'ca',
      '-batch',
      '-config',
      'ca.cnf',
      '-cert',
      pki.caCertPath,
      '-keyfile',
      join(pki.dir, 'ca.key'),
      '-in',
      's.csr',
      '-out',
      's.crt',
      '-enddate',
      stamp,
      '-notext',
    ],
    dir,
  );
  return { cert: readFileSync(join(dir, 's.crt')), key: readFileSync(join(dir, 's.key')) };
}
