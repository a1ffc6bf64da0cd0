/**
 * Every error this package throws is a TlsSessionError with a machine-readable `code`.
 * The native binding builds them through the constructors registered in binding.ts, so an
 * OpenSSL failure arrives in JavaScript already typed; no message carries key material.
 */
export class TlsSessionError extends Error {
  readonly code: string;
  /** OpenSSL's own reason string (from its error queue), when OpenSSL reported one. */
  readonly opensslReason?: string;

  constructor(code: string, message: string, opensslReason?: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    if (opensslReason !== undefined) this.opensslReason = opensslReason;
  }
}

/** Bytes that are not one well-formed DER SSL_SESSION (empty, oversized, trailing data, or rejected by d2i_SSL_SESSION). */
export class SessionDecodeError extends TlsSessionError {
  constructor(message: string, opensslReason?: string) {
    super('ERR_TLS_SESSION_DECODE', message, opensslReason);
  }
}

/** A Session was used after free(): its reference is gone, so nothing can be read from it. */
export class SessionFreedError extends TlsSessionError {
  constructor(message = 'the session was freed; this Session no longer owns an SSL_SESSION reference') {
    super('ERR_TLS_SESSION_FREED', message);
  }
}

/** A borrowed SessionView was used after the scope that lent it ended. */
export class SessionViewExpiredError extends TlsSessionError {
  constructor(message = 'the borrowed session view is no longer valid: its lending scope has ended') {
    super('ERR_TLS_SESSION_VIEW_EXPIRED', message);
  }
}

/** The system OpenSSL could not be loaded or proven to be the one the binding calls. */
export class OpenSSLLoadError extends TlsSessionError {
  constructor(message: string) {
    super('ERR_TLS_SESSION_LIBSSL', message);
  }
}

/** OpenSSL refused an operation; `opensslReason` holds its reason. */
export class OpenSSLError extends TlsSessionError {
  constructor(message: string, opensslReason?: string, code = 'ERR_TLS_SESSION_OPENSSL') {
    super(code, message, opensslReason);
  }
}

/**
 * session.toNodeSession() refused to bind a session to a host: `ERR_TLS_SESSION_HOST_MISMATCH`
 * when `servername` differs from the host the session was authenticated for (pass
 * `rebindToServername: true` to do it anyway), `ERR_TLS_SESSION_HOST_REQUIRED` when the running
 * Node wraps sessions and neither `servername` nor a known authenticated host says for which host.
 */
export class SessionHostError extends TlsSessionError {
  /** The host the session was authenticated for (from Node's envelope), if known. */
  readonly authenticatedHost: string | undefined;
  /** The servername the caller asked for, if any. */
  readonly servername: string | undefined;

  constructor(
    code: 'ERR_TLS_SESSION_HOST_MISMATCH' | 'ERR_TLS_SESSION_HOST_REQUIRED',
    message: string,
    hosts: { authenticatedHost?: string; servername?: string } = {},
  ) {
    super(code, message);
    this.authenticatedHost = hosts.authenticatedHost;
    this.servername = hosts.servername;
  }
}

/** The optional peer dependency a collector needs is not installed. */
export class MetricsPeerMissingError extends TlsSessionError {
  readonly peer: string;
  constructor(peer: string, cause?: unknown) {
    super('ERR_TLS_SESSION_METRICS_PEER_MISSING', `this collector needs the optional peer dependency ${peer}: npm install ${peer}`);
    this.peer = peer;
    if (cause !== undefined) (this as { cause?: unknown }).cause = cause;
  }
}

/** Throws a TypeError with Node's ERR_INVALID_ARG_TYPE code, naming the argument. */
export function invalidArgType(name: string, expected: string, actual: unknown): TypeError & { code: string } {
  const got = actual === null ? 'null' : Array.isArray(actual) ? 'an array' : typeof actual;
  const err = new TypeError(`The "${name}" argument must be ${expected}. Received ${got}`) as TypeError & { code: string };
  err.code = 'ERR_INVALID_ARG_TYPE';
  return err;
}

/** A RangeError with Node's ERR_OUT_OF_RANGE code, naming the argument. */
export function outOfRange(name: string, expected: string, actual: unknown): RangeError & { code: string } {
  const err = new RangeError(`The value of "${name}" is out of range. It must be ${expected}. Received ${String(actual)}`) as RangeError & {
    code: string;
  };
  err.code = 'ERR_OUT_OF_RANGE';
  return err;
}

/**
 * A TypeError with Node's ERR_INVALID_ARG_VALUE code: the argument has the right type but not an
 * accepted value (not one of its choices, or excluded by another option). `received` describes
 * the value; it is never the value of a secret.
 */
export function invalidArgValue(name: string, expected: string, received: string): TypeError & { code: string } {
  const err = new TypeError(`The "${name}" argument must be ${expected}. Received ${received}`) as TypeError & { code: string };
  err.code = 'ERR_INVALID_ARG_VALUE';
  return err;
}
