#!/usr/bin/env bash
# Usage: scripts/platform-pack.sh
# The package as it would be published (`npm pack`: scripts/build-package.sh, with
# TLS_SESSION_ARM64_PREBUILD=require so that it carries both prebuilt addons), made in a copy of
# this tree (packing rebuilds dist/, prebuilds/ and build/), for the platform lanes
# (scripts/platform-debian13.sh, scripts/platform-arm64.sh). Prints the tarball's path.
#
# Kept in ~/.cache/tls-session/pack/<key>.tgz, where the key hashes everything the tarball is made
# from (the tree but its tests, benchmarks, examples, CI and these lane scripts; this Node; the
# compilers; the OpenSSL headers; node_modules' lock file): the second lane of a CI run, or a run
# on an unchanged tree, reuses it. Two tarballs are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# The arm64 prebuild is required here: its cross toolchain first (installed when missing).
bash scripts/platform-arm64-toolchain.sh
cache=${TLS_SESSION_CACHE:-$HOME/.cache/tls-session}/pack
say() { printf 'platform-pack: %s\n' "$*" >&2; }

# The tree as the package test copies it (every file git knows or would add), and the part of
# it a tarball can depend on (all but the tests, benchmarks, examples, CI and the platform lanes'
# own scripts) for the key.
tree=$(git ls-files -co --exclude-standard | while read -r f; do if [ -f "$f" ]; then printf '%s\n' "$f"; fi; done)
files=$(grep -vE '^(test|bench|examples|\.ci)/|^scripts/platform-' <<<"$tree")
key=$( {
  # shellcheck disable=SC2086 # one file name per line, none with spaces
  sha256sum $files
  node --version
  g++ --version | head -1
  aarch64-linux-gnu-g++ --version 2>/dev/null | head -1
  dpkg-query -W -f '${Package}:${Architecture} ${Version}\n' libssl-dev libssl-dev:arm64 2>/dev/null
  sha256sum node_modules/.package-lock.json 2>/dev/null
} | sha256sum | cut -c1-16)
tarball=$cache/$key.tgz
if [ -f "$tarball" ]; then
  say "reusing $tarball (same sources and toolchain)"
  printf '%s\n' "$tarball"
  exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
# shellcheck disable=SC2086
tar -cf - $tree | tar -xf - -C "$work"
ln -s "$root/node_modules" "$work/node_modules"
started=$SECONDS
if ! (cd "$work" && TLS_SESSION_ARM64_PREBUILD=require npm pack --pack-destination "$work" >"$work/pack.log" 2>&1); then
  tail -40 "$work/pack.log" >&2
  say "npm pack FAILED after $((SECONDS - started)) s"
  exit 1
fi
made=$(ls "$work"/tls-session-*.tgz)
listing=$(tar tzf "$made")
for binary in linux-x64 linux-arm64; do
  grep -qx "package/prebuilds/$binary/tls-session.glibc.node" <<<"$listing" || {
    say "the tarball has no prebuilds/$binary/tls-session.glibc.node"
    exit 1
  }
done
mv -f "$made" "$tarball.tmp" && mv -f "$tarball.tmp" "$tarball"
# Keep the two newest.
ls -t "$cache"/*.tgz | tail -n +3 | xargs -r rm -f
say "packed in $((SECONDS - started)) s: $tarball (prebuilt addons: linux-x64, linux-arm64)"
printf '%s\n' "$tarball"
