/** The typed errors of the TLS engine (lib/tls). All are TlsSessionError with a `code`. */
import { OpenSSLError, TlsSessionError } from '../errors';

/** OpenSSL refused the context's configuration: a certificate, key, CA, cipher list or version. */
export class TlsConfigError extends OpenSSLError {
  constructor(message: string, opensslReason?: string) {
    super(message, opensslReason, 'ERR_TLS_SESSION_CONFIG');
  }
}

/** The TLS protocol failed: handshake failure, a peer that sent garbage, a certificate that did not verify. */
export class TlsProtocolError extends OpenSSLError {
  /** X509_verify_cert_error_string of the failed certificate check, when that was the cause. */
  readonly verifyError?: string;

  constructor(message: string, opensslReason?: string, verifyError?: string) {
    super(message, opensslReason, 'ERR_TLS_SESSION_PROTOCOL');
    if (verifyError !== undefined) this.verifyError = verifyError;
  }
}

/** The transport ended before the handshake completed (code ECONNRESET, as node:tls reports it). */
export class TlsDisconnectError extends TlsSessionError {
  constructor(message = 'the peer disconnected before the TLS handshake completed') {
    super('ECONNRESET', message);
  }
}

/** An operation that the object's state does not allow (closed context, destroyed connection, re-entrant call). */
export class TlsStateError extends TlsSessionError {
  constructor(message: string) {
    super('ERR_TLS_SESSION_STATE', message);
  }
}
