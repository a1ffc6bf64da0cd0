#!/usr/bin/env node
'use strict';
/**
 * npm's install step for tls-session. Uses the prebuilt addon in prebuilds/ when one matches this
 * platform (node-gyp-build's lookup) and builds from source only when none does.
 *
 * Why not node-gyp-build's own install command: it compiles whenever the prebuilt binary fails
 * to load, but ours fails to load only when the system OpenSSL 3 (libssl.so.3) cannot be used,
 * which a compile cannot fix; and a missing compiler then shows up as pages of node-gyp output.
 * Here both cases end in one line that names the problem and the fix.
 */
const { execFileSync, spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.join(__dirname, '..');
const say = (line) => process.stderr.write(`tls-session: ${line}\n`);

function prebuilt() {
  if (process.env.npm_config_build_from_source === 'true') return undefined;
  process.env.PREBUILDS_ONLY = '1'; // a build/ left in the folder is not a prebuild
  try {
    return require('node-gyp-build').path(root);
  } catch {
    return undefined;
  } finally {
    delete process.env.PREBUILDS_ONLY;
  }
}

function has(command, args = ['--version']) {
  try {
    execFileSync(command, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const binary = prebuilt();
if (binary) {
  // Load it now, so a machine it cannot serve says why at install, not at the first require.
  try {
    require(binary);
  } catch (err) {
    say(err.code === 'ERR_TLS_SESSION_LIBSSL' ? err.message : `the prebuilt addon ${binary} does not load here: ${err.message}`);
    process.exit(1);
  }
  process.exit(0);
}

const why =
  process.env.npm_config_build_from_source === 'true'
    ? 'building from source was asked for (--build-from-source)'
    : `no prebuilt addon for ${process.platform}-${process.arch} in this package`;
const missing = [
  has(process.env.CXX || 'c++') || has('g++') ? null : 'a C++ compiler (g++)',
  has('make') ? null : 'make',
  has('python3') ? null : 'python3',
].filter(Boolean);
if (missing.length > 0) {
  say(
    `${why}, and building it from source needs ${missing.join(', ')} (plus the OpenSSL 3 headers: apt-get install g++ make python3 libssl-dev).`,
  );
  process.exit(1);
}
say(`${why}: building it from source with node-gyp`);
const nodeGyp = process.env.npm_config_node_gyp || require.resolve('node-gyp/bin/node-gyp.js');
const result = spawnSync(process.execPath, [nodeGyp, 'rebuild'], { cwd: root, stdio: 'inherit' });
process.exit(result.status ?? 1);
