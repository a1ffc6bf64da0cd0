#!/usr/bin/env node
'use strict';
/**
 * Prints a directory whose `openssl/` holds the SYSTEM OpenSSL headers, for `-I`.
 *
 * Why: node-gyp puts Node's own headers (which bundle `openssl/`) on the include path, and
 * `-I/usr/include` is ignored by gcc because it is a system directory, so `<openssl/ssl.h>`
 * would silently come from Node's bundled copy. On Debian the headers are also split between
 * /usr/include/openssl and /usr/include/<multiarch>/openssl. This merges both, by symlink, into
 * one private directory that the build names first. Used by binding.gyp and CMakeLists.txt.
 *
 * Usage: node scripts/openssl-include.js <output-dir>
 */
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

function run(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

const outDir = path.resolve(process.argv[2] || 'build/openssl-include');
const candidates = [];
const pkgInclude = run('pkg-config', ['--variable=includedir', 'openssl']);
const multiarch = run(process.env.CC || 'cc', ['-print-multiarch']);
if (process.env.TLS_SESSION_OPENSSL_INCLUDE) candidates.push(process.env.TLS_SESSION_OPENSSL_INCLUDE);
if (pkgInclude) candidates.push(pkgInclude);
for (const base of ['/usr/include', '/usr/local/include']) {
  if (multiarch) candidates.push(path.join(base, multiarch));
  candidates.push(base);
}

const target = path.join(outDir, 'openssl');
fs.rmSync(target, { recursive: true, force: true });
fs.mkdirSync(target, { recursive: true });
let linked = 0;
for (const dir of [...new Set(candidates)]) {
  const headers = path.join(dir, 'openssl');
  if (!fs.existsSync(path.join(headers, 'opensslv.h')) && !fs.existsSync(path.join(headers, 'opensslconf.h'))) continue;
  if (dir.split(path.sep).includes('node')) continue; // never Node's bundled headers
  for (const name of fs.readdirSync(headers)) {
    const link = path.join(target, name);
    if (fs.existsSync(link)) continue; // the first directory that has a header wins
    fs.symlinkSync(path.join(headers, name), link);
    linked++;
  }
}
if (!fs.existsSync(path.join(target, 'ssl.h')) || !fs.existsSync(path.join(target, 'opensslconf.h'))) {
  process.stderr.write(
    'tls-session: the system OpenSSL headers were not found (need openssl/ssl.h and openssl/opensslconf.h).\n' +
      'Install them: apt-get install libssl-dev (Debian/Ubuntu), or set TLS_SESSION_OPENSSL_INCLUDE to their include directory.\n',
  );
  process.exit(1);
}
process.stdout.write(outDir + '\n');
if (linked === 0) process.exit(1);
