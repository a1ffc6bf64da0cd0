#!/usr/bin/env node
'use strict';
/**
 * `npm pack`'s prepack/postpack step for package.json's `prepare` script: `strip` takes it out
 * just before npm reads the files into the tarball, `restore` puts it back after. Why: in a clone
 * (and a git dependency) `prepare` builds dist/, but the published package ships dist/ and must
 * not carry it, or npm 11 lists it among the install scripts to approve (allowScripts). Edits the
 * one line, not the whole file, so concurrent edits to package.json survive; restore is idempotent.
 */
const fs = require('node:fs');
const path = require('node:path');

const file = path.join(__dirname, '..', 'package.json');
const LINE = '    "prepare": "tsc -p tsconfig.json",\n';
const ANCHOR = '    "install": "node scripts/install.js",\n';

const text = fs.readFileSync(file, 'utf8');
const command = process.argv[2];
if (command === 'strip') {
  if (!text.includes(LINE)) process.exit(0);
  fs.writeFileSync(file, text.replace(LINE, ''));
} else if (command === 'restore') {
  if (text.includes(LINE)) process.exit(0);
  if (!text.includes(ANCHOR)) {
    process.stderr.write(`pack-manifest: cannot restore "prepare": no install script line in ${file}\n`);
    process.exit(1);
  }
  fs.writeFileSync(file, text.replace(ANCHOR, ANCHOR + LINE));
} else {
  process.stderr.write('usage: node scripts/pack-manifest.js strip|restore\n');
  process.exit(2);
}
