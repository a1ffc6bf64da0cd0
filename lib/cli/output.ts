/**
 * What every tls-session subcommand shares: the typed error that ends a command with one line on
 * stderr and an exit code, JSON printing and aligned tables. Loads nothing heavy (no addon, no
 * Redis client, no SQLite), so `tls-session --help` stays fast.
 */

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

/** Exit codes: 1 a failure (unreadable file, unreachable host, bad record), 2 a usage error. */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Ends a command: main.ts prints `tls-session: <message>` on stderr and exits with `exitCode`. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number = EXIT_FAILURE) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

/** Throws a CliError: the one way a subcommand stops with a message (exit 1 by default, EXIT_USAGE for usage). */
export function fail(message: string, exitCode: number = EXIT_FAILURE): never {
  throw new CliError(message, exitCode);
}

/** One line on stderr, prefixed like every message of the command; for problems that do not stop it. */
export function warn(message: string): void {
  process.stderr.write(`tls-session: ${message}\n`);
}

/** Pretty JSON (two-space indent) and a newline on stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Columns padded to their widest cell, a header line first; the last column is not padded. */
export function renderTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** "in 1 h 59 min", "3 d ago": how far `when` is from `now`, to the two largest units. */
export function relativeTime(when: Date, now: Date = new Date()): string {
  const deltaSeconds = Math.round((when.getTime() - now.getTime()) / 1000);
  const units: [string, number][] = [
    ['d', 86_400],
    ['h', 3600],
    ['min', 60],
    ['s', 1],
  ];
  let rest = Math.abs(deltaSeconds);
  const parts: string[] = [];
  for (const [name, size] of units) {
    if (parts.length === 2) break;
    const count = Math.floor(rest / size);
    if (count > 0 || (parts.length === 0 && size === 1)) parts.push(`${count} ${name}`);
    if (parts.length > 0 && count === 0 && size !== 1) break;
    rest -= count * size;
  }
  const span = parts.join(' ');
  return deltaSeconds >= 0 ? `in ${span}` : `${span} ago`;
}

/** What a progress line writes to: a terminal when `isTTY`, else a log (a pipe, a CI file). */
export interface ProgressStream {
  isTTY?: boolean;
  write(text: string): unknown;
}

/**
 * A bounded progress line: on a terminal each update replaces the last (carriage return, then
 * erase to the end of the line); elsewhere `\r` does not rewind, so each update is a line of its own.
 */
export function progressLine(stream: ProgressStream): { update(text: string): void; done(): void } {
  let shown = false;
  return {
    update(text: string): void {
      stream.write(stream.isTTY ? `\r${text}\x1b[K` : `${text}\n`);
      shown = true;
    },
    done(): void {
      if (shown && stream.isTTY) stream.write('\n');
      shown = false;
    },
  };
}

/** What the command reads, at most: a session's input (PEM or base64 of a 64 KiB DER fits), a CA bundle, a secret file. */
export const INPUT_LIMITS = {
  session: 128 * 1024,
  ca: 4 * 1024 * 1024,
  secretFile: 64 * 1024,
} as const;

/**
 * Reads a file (or stdin, `source` 0) but never more than `limit` bytes: `/dev/zero` or an endless
 * pipe ends in a CliError naming `what` instead of growing until the process runs out of memory.
 * Synchronous, like the readFileSync it replaces; a non-blocking stdin is waited for.
 */
export function readBounded(source: string | 0, limit: number, what: string): Buffer {
  let fd: number;
  try {
    fd = source === 0 ? 0 : openSync(source, 'r');
  } catch (error) {
    return fail(`cannot read ${what} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    if (source !== 0) {
      const stat = fstatSync(fd);
      if (stat.isDirectory()) fail(`cannot read ${what} (EISDIR)`);
      if (stat.isFile() && stat.size > limit) fail(`${what} is larger than ${limit} bytes`);
    }
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(64 * 1024, limit + 1 - total));
      let n: number;
      try {
        n = readSync(fd, chunk, 0, chunk.length, null);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5); // a non-blocking pipe: nothing yet
          continue;
        }
        return fail(`cannot read ${what} (${code ?? 'error'})`);
      }
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      total += n;
      if (total > limit) fail(`${what} is larger than ${limit} bytes`);
    }
    return Buffer.concat(chunks, total);
  } finally {
    if (source !== 0) closeSync(fd);
  }
}
