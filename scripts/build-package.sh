#!/usr/bin/env bash
# `npm pack`'s prepack step: what the published tarball carries, built fresh (README, "npm pack").
#  1. lib/ alone to dist/lib: JavaScript and declarations, no source maps (the sources are not shipped);
#  2. the prebuilt addon, prebuilds/linux-x64/tls-session.glibc.node (prebuildify: Node-API, so one
#     binary for every Node line; stripped; tagged glibc so node-gyp-build never offers it on musl),
#     compiled against this Node's headers (nodedir, offline) — then copied back to build/Release,
#     which prebuildify empties, so the checkout keeps working;
#  3. the ES-module entries dist/esm/*.mjs.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf dist/lib dist/esm prebuilds
tsc -p tsconfig.build.json
prebuildify --napi --strip --tag-libc --target "$(node -p process.versions.node)"
mkdir -p build/Release
cp prebuilds/linux-x64/tls-session.glibc.node build/Release/tls_session.node
node scripts/esm-wrappers.js
