/**
 * Everything the command reads is bounded: a session (inspect, a file or stdin), a --ca bundle, a
 * --secret-file. Regression: `inspect /dev/zero` (or an endless stdin) read without bound (1.4 GB
 * in 6 s; SIGSEGV under a 1 GiB limit), and --ca and --secret-file read the same way.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { root } from './cli';

const dir = mkdtempSync(join(tmpdir(), 'tls-session-cli-bounded-'));

/** The command with `stdin` as its standard input; a 20 s limit stands for "never ends". */
function runWithStdin(args: string[], stdin: number | 'ignore'): { status: number | null; signal: NodeJS.Signals | null; err: string } {
  const result = spawnSync(
    process.execPath,
    ['-r', join(root, 'test', 'persist', 'fixtures', 'register-ts.js'), join(root, 'lib', 'cli', 'main.ts'), ...args],
    { cwd: root, stdio: [stdin, 'pipe', 'pipe'], timeout: 20_000 },
  );
  return { status: result.status, signal: result.signal, err: result.stderr.toString('utf8') };
}

function withZeroStdin<T>(run: (fd: number) => T): T {
  const fd = openSync('/dev/zero', 'r');
  try {
    return run(fd);
  } finally {
    closeSync(fd);
  }
}

test('inspect stops at 128 KiB of input, from a file or an endless stdin', () => {
  expect(runWithStdin(['inspect', '/dev/zero'], 'ignore')).toEqual({
    status: 1,
    signal: null,
    err: 'tls-session: /dev/zero: the file is larger than 131072 bytes\n',
  });
  expect(withZeroStdin((fd) => runWithStdin(['inspect', '-'], fd))).toEqual({
    status: 1,
    signal: null,
    err: 'tls-session: -: stdin is larger than 131072 bytes\n',
  });
  const big = join(dir, 'big.der');
  writeFileSync(big, Buffer.alloc(200 * 1024, 0x30));
  expect(runWithStdin(['inspect', big], 'ignore')).toEqual({
    status: 1,
    signal: null,
    err: `tls-session: ${big}: the file is larger than 131072 bytes\n`,
  });
});

test('inspect refuses a decoded session over 64 KiB', () => {
  // 70 KiB of DER in PEM armour: under the input bound, over the session bound.
  const pem = join(dir, 'large.pem');
  const der = Buffer.alloc(70 * 1024, 0x30);
  writeFileSync(
    pem,
    `-----BEGIN SSL SESSION PARAMETERS-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END SSL SESSION PARAMETERS-----\n`,
  );
  expect(runWithStdin(['inspect', pem], 'ignore')).toEqual({
    status: 1,
    signal: null,
    err: `tls-session: ${pem}: a session of ${der.length} bytes: more than the 65536 any TLS session takes\n`,
  });
});

test('--ca and --secret-file are bounded too', () => {
  expect(runWithStdin(['probe', '127.0.0.1:9', '--ca', '/dev/zero'], 'ignore')).toEqual({
    status: 1,
    signal: null,
    err: 'tls-session: --ca /dev/zero is larger than 4194304 bytes\n',
  });
  const store = join(dir, 'none.db');
  writeFileSync(store, '');
  expect(runWithStdin(['store', 'stats', '--sqlite', store, '--secret-file', '/dev/zero'], 'ignore')).toEqual({
    status: 1,
    signal: null,
    err: 'tls-session: the secret file /dev/zero is larger than 65536 bytes\n',
  });
});
