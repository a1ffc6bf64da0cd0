/**
 * `tls-session inspect [FILE…|-]`: reads sessions in every form they are kept in (DER, PEM as
 * `openssl sess_id` writes it, base64, Node's client envelope), prints what `openssl sess_id
 * -text` prints except key material, or converts to DER/PEM.
 */
import type { Command } from 'commander';
import type { Session } from '../session';
import { DEFAULT_MAX_DER_BYTES } from '../session-header';
import { CliError, EXIT_FAILURE, EXIT_USAGE, fail, INPUT_LIMITS, readBounded, relativeTime, warn } from './output';

const PEM_LABEL = 'SSL SESSION PARAMETERS';
const PEM_PATTERN = new RegExp(`-----BEGIN ${PEM_LABEL}-----([A-Za-z0-9+/=\\s]+)-----END ${PEM_LABEL}-----`);
const BASE64_PATTERN = /^[A-Za-z0-9+/=\s]+$/;

export interface InspectOptions {
  json?: boolean;
  outform?: 'der' | 'pem';
}

export function registerInspectCommand(program: Command): void {
  program
    .command('inspect')
    .description("show a TLS session's metadata (never its key material), or convert it")
    .argument('[files...]', 'session files (DER, PEM, base64 or Node\'s client session); "-" or none: stdin')
    .option('--json', 'one JSON object per session, with the field names of Session#toJSON()')
    .option('--outform <format>', 'write the session as "der" or "pem" (openssl sess_id reads both) instead of describing it')
    .addHelpText(
      'after',
      `
A Node client session converted to DER loses the host Node bound it to (see README).
"SNI hostname" is what the session records: OpenSSL keeps a client's SNI name in its session only
when the server acknowledged it (openssl s_server without -servername does not), so "none" there.
TLS 1.3 sends its session tickets after the handshake: keep s_client connected a moment (sleep 1)
or -sess_out writes nothing.

Examples:
  $ sleep 1 | openssl s_client -connect example.com:443 -servername example.com -sess_out session.pem
  $ tls-session inspect session.pem
  $ tls-session inspect --json session.pem node-session.bin
  $ tls-session inspect --outform der session.pem > session.der`,
    )
    .action(async (files: string[], options: InspectOptions) => {
      process.exitCode = await inspect(files, options);
    });
}

/** Runs the command; resolves with the exit code (1 when some input could not be read). */
export async function inspect(files: string[], options: InspectOptions): Promise<number> {
  const outform = options.outform;
  if (outform !== undefined && outform !== 'der' && outform !== 'pem') {
    fail(`--outform must be "der" or "pem", not ${JSON.stringify(outform)}`, EXIT_USAGE);
  }
  const inputs = files.length === 0 ? ['-'] : files;
  if (outform !== undefined && inputs.length !== 1) fail('--outform converts one session: give exactly one input', EXIT_USAGE);
  // Loaded here, not at the top: --help must not load the native addon.
  const { Session } = await import('../session');
  let exitCode = 0;
  for (const [index, name] of inputs.entries()) {
    let session: Session;
    try {
      session = Session.fromNodeSession(decodeInput(name, readInput(name)));
    } catch (error) {
      warn(`${name}: ${(error as Error).message}`);
      exitCode = EXIT_FAILURE;
      continue;
    }
    try {
      if (outform === 'der') process.stdout.write(session.toDER());
      else if (outform === 'pem') process.stdout.write(toPem(session.toDER()));
      else if (options.json) process.stdout.write(`${JSON.stringify(session.toJSON())}\n`);
      else process.stdout.write(`${index > 0 ? '\n' : ''}${inputs.length > 1 ? `${name}:\n` : ''}${describe(session)}`);
    } finally {
      session.free();
    }
  }
  return exitCode;
}

function readInput(name: string): Buffer {
  return readBounded(name === '-' ? 0 : name, INPUT_LIMITS.session, name === '-' ? 'stdin' : 'the file');
}

/** The bytes for Session.fromNodeSession (DER or Node's envelope), whatever form they came in. */
export function decodeInput(name: string, bytes: Buffer): Buffer {
  const decoded = decodeForm(bytes);
  if (decoded.length > MAX_SESSION_BYTES)
    throw new CliError(`a session of ${decoded.length} bytes: more than the ${MAX_SESSION_BYTES} any TLS session takes`);
  return decoded;
}

/** What is decoded at most: Session.fromDER's own default cap. */
const MAX_SESSION_BYTES = DEFAULT_MAX_DER_BYTES;

function decodeForm(bytes: Buffer): Buffer {
  if (bytes.length === 0) throw new CliError('empty input');
  // DER starts with a SEQUENCE (0x30), Node's envelope with 0x00; both are binary, never text.
  if (bytes[0] === 0x30 || bytes[0] === 0x00) return bytes;
  const text = bytes.toString('latin1');
  const pem = PEM_PATTERN.exec(text);
  if (pem) return Buffer.from(pem[1]!, 'base64');
  if (BASE64_PATTERN.test(text)) {
    const decoded = Buffer.from(text, 'base64');
    if (decoded[0] === 0x30 || decoded[0] === 0x00) return decoded;
  }
  throw new CliError(`not a TLS session: neither DER, PEM (${PEM_LABEL}), base64 nor a Node client session`);
}

/** PEM as `openssl sess_id -outform PEM` writes it: 64 base64 characters a line. */
export function toPem(der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${PEM_LABEL}-----\n${lines.join('\n')}\n-----END ${PEM_LABEL}-----\n`;
}

/** The fields of `openssl sess_id -text` (same labels and values), key material replaced, then what it lacks. */
function describe(session: Session): string {
  const der = session.toDER();
  const extra = readVerifyAndFlags(der);
  const json = session.toJSON() as Exclude<ReturnType<Session['toJSON']>, { freed: true }>;
  const hex = (value: string): string => value.toUpperCase();
  const lines = [
    'SSL-Session:',
    `    Protocol  : ${json.protocol}`,
    `    Cipher    : ${json.cipher ?? '(unknown)'}`,
    `    Session-ID: ${hex(json.id)}`,
    `    Session-ID-ctx: ${hex(json.idContext)}`,
    // Key material: never printed, not even in part.
    `    ${json.protocol === 'TLSv1.3' ? 'Resumption PSK' : 'Master-Key'}: (not shown: key material)`,
    `    TLS session ticket lifetime hint: ${json.ticketLifetimeHint} (seconds)`,
    `    TLS session ticket: ${json.hasTicket ? 'present (not shown)' : 'none'}`,
    `    Start Time: ${Math.floor(session.startTime.getTime() / 1000)}`,
    `    Timeout   : ${json.timeout} (sec)`,
    `    Verify return code: ${verifyText(extra.verifyResult)}`,
    `    Extended master secret: ${extra.extendedMasterSecret ? 'yes' : 'no'}`,
  ];
  if (json.protocol === 'TLSv1.3') lines.push(`    Max Early Data: ${json.maxEarlyData}`);
  const now = new Date();
  const expiry = session.isExpired(now)
    ? `expired ${relativeTime(session.expiresAt, now)}`
    : `expires ${relativeTime(session.expiresAt, now)}`;
  lines.push(
    '',
    `    Started   : ${json.startTime}`,
    `    Expires   : ${json.expiresAt} (${expiry})`,
    `    Resumable : ${json.isResumable ? 'yes' : 'no'}`,
    `    SNI hostname: ${json.hostname ?? 'none'}`,
    `    ALPN protocol: ${json.alpnProtocol ?? 'none'}`,
    `    Peer certificate: ${json.peerCertificate ? `${json.peerCertificate.subject.replace(/\n/g, ', ')} (SHA-256 ${json.peerCertificate.fingerprint256})` : 'none'}`,
  );
  if (json.authenticatedHost !== undefined) lines.push(`    Node authenticated host: ${json.authenticatedHost}`);
  return `${lines.join('\n')}\n`;
}

/** X509_verify_cert_error_string for the codes sessions carry in practice; others as a number. */
const VERIFY_RESULTS: Record<number, string> = {
  0: 'ok',
  2: 'unable to get issuer certificate',
  10: 'certificate has expired',
  18: 'self-signed certificate',
  19: 'self-signed certificate in certificate chain',
  20: 'unable to get local issuer certificate',
  21: 'unable to verify the first certificate',
  62: 'hostname mismatch',
};

function verifyText(code: number): string {
  const text = VERIFY_RESULTS[code];
  return text === undefined ? String(code) : `${code} (${text})`;
}

const SSL_SESS_FLAG_EXTMS = 0x1n;

/**
 * Two fields the library's metadata does not carry, read from the DER (OpenSSL's
 * SSL_SESSION_ASN1): verify_result [5] and flags [13]. Absent fields are OpenSSL's defaults
 * (X509_V_OK, no flags). The DER was just produced by i2d_SSL_SESSION, so it is well formed.
 */
function readVerifyAndFlags(der: Buffer): { verifyResult: number; extendedMasterSecret: boolean } {
  const length = (at: number): [length: number, next: number] => {
    const first = der[at]!;
    if (first < 0x80) return [first, at + 1];
    let value = 0;
    for (let i = 1; i <= (first & 0x7f); i++) value = value * 256 + der[at + i]!;
    return [value, at + 1 + (first & 0x7f)];
  };
  const integer = (at: number): bigint => {
    // [n] EXPLICIT INTEGER: the context tag wraps an INTEGER TLV.
    const [size, start] = length(at + 1);
    let value = 0n;
    for (let i = 0; i < size; i++) value = (value << 8n) | BigInt(der[start + i]!);
    return value;
  };
  let verifyResult = 0;
  let flags = 0n;
  const [sequenceLength, first] = length(1);
  for (let at = first; at < first + sequenceLength;) {
    const tag = der[at]!;
    const [size, body] = length(at + 1);
    if (tag === 0xa5) verifyResult = Number(integer(body));
    if (tag === 0xad) flags = integer(body);
    at = body + size;
  }
  return { verifyResult, extendedMasterSecret: (flags & SSL_SESS_FLAG_EXTMS) !== 0n };
}
