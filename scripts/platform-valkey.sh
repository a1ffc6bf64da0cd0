#!/usr/bin/env bash
# Usage: scripts/platform-valkey.sh [jest arguments]
# The Redis-lane tests that exercise RedisStore's clients, the fleet and the `store` command,
# against Valkey instead of Redis: Debian 13's valkey-server, run inside the Debian 13 root that
# scripts/platform-debian13.sh makes and keeps (~/.cache/tls-session/debian13/root). The tests run on this machine's Node; only the server is Valkey. It listens on
# loopback like any redis-server the tests start (the root shares this machine's network).
#
# How: the tests start `redis-server` / `redis-cli` from TLS_SESSION_REDIS_SERVER
# (test/persist/helpers/redis-server.ts); here those are two small wrappers that exec Valkey in
# the root, in a private mount namespace with this machine's /tmp bound in (a Cluster node's
# --dir is a temporary directory made by the test). exec all the way: the test's pid is Valkey's,
# so its SIGKILL/SIGSTOP fault tests reach the server itself.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
cache=${TLS_SESSION_CACHE:-$HOME/.cache/tls-session}
rootfs=$cache/debian13/root
say() { printf 'valkey: %s\n' "$*"; }
fail() {
  say "FAILED: $*"
  say "verdict: FAILED after $((SECONDS - started)) s"
  exit 1
}

# The root is made by the Debian 13 lane, which .ci/run runs first.
[ -x "$rootfs/usr/bin/apt-get" ] || fail "no Debian 13 root in $rootfs: run scripts/platform-debian13.sh first (it makes it)"

in_root() {
  unshare --mount --propagation private -- bash -euc '
    root=$1; shift
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"
  ' in_root "$rootfs" "$@"
}
if [ ! -x "$rootfs/usr/bin/valkey-server" ]; then
  say "installing valkey-server in the Debian 13 root"
  in_root sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valkey-server valkey-tools >/dev/null' ||
    fail "apt-get could not install valkey-server in the Debian 13 root (mirror unreachable?)"
fi
version=$(in_root valkey-server --version) || fail "valkey-server does not run in the root"
say "$version"

wrappers=$(mktemp -d "${TMPDIR:-/tmp}/tls-session-valkey.XXXXXX")
trap 'rm -rf "$wrappers"' EXIT
for pair in redis-server:valkey-server redis-cli:valkey-cli; do
  cat >"$wrappers/${pair%%:*}" <<EOF
#!/bin/sh
exec unshare --mount --propagation private -- sh -c 'mount --bind /tmp "\$0/tmp" && exec chroot "\$0" /usr/bin/${pair##*:} "\$@"' "$rootfs" "\$@"
EOF
  chmod 755 "$wrappers/${pair%%:*}"
done

tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(test/persist/redis-clients test/persist/stores.redis test/persist/fleet.redis test/persist/cluster.redis test/persist/ticket-key-ring.redis test/cli/store.redis)
log=$(mktemp)
status=0
TLS_SESSION_REDIS_SERVER=$wrappers/redis-server TEST_LANE=redis node --expose-gc node_modules/jest/bin/jest.js "${tests[@]}" 2>&1 | tee "$log" || status=$?
totals=$(grep -E '^Tests: ' "$log" | tail -1 || true)
rm -f "$log"
if [ "$status" = 0 ] && [ -n "$totals" ]; then
  say "verdict: ok on $version: $totals, $((SECONDS - started)) s"
else
  say "verdict: FAILED on $version (jest exit $status): ${totals:-no totals}, $((SECONDS - started)) s"
  exit 1
fi
