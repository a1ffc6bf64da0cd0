#!/usr/bin/env bash
# Usage: scripts/platform-debian13.sh [jest arguments]
# The fast test lane (`npm test`) on Debian 13 "trixie" (its OpenSSL 3.5, openssl CLI, sqlite3),
# with the prebuilt addon from `npm pack` — what a new user on Debian 13 gets (docs/PLATFORMS.md).
#
#  1. A `debootstrap --variant=minbase trixie` root made from Debian's packages, with what the
#     tests use (openssl, sqlite3, binutils, libatomic1 for Node 26, ca-certificates, iproute2
#     for `ss`, and gcc, libc6-dev, libssl-dev for the coexistence fixture, which links -lssl: it
#     then runs on 3.5 too; openssl-provider-fips for step 5), installed when missing. Kept in
#     ~/.cache/tls-session/debian13/root and reused; brought up to date (apt-get upgrade) when a
#     week old. Unreachable mirror or package: the lane FAILS, saying so.
#  2. The newest Node 26 (scripts/install-node.sh 26; DEBIAN13_NODE=24 for 24), bound in.
#  3. The tarball `npm pack` makes (scripts/platform-pack.sh, both prebuilds); a copy of this
#     tree's tests, sources and node_modules, with the tarball's prebuilds/ and dist/, and as
#     build/Release/tls_session.node (which some tests name) the packed linux-x64 prebuild, byte
#     for byte: nothing built against this machine is in the copy (checked before jest starts).
#     better-sqlite3 is rebuilt for that Node (cached, as scripts/node-lines.sh does).
#  4. `npm test`'s command inside the root (chroot, in a private mount namespace: /proc and /dev are
#     mounted for the run only and vanish with it).
#  5. FIPS: with Debian's openssl-provider-fips active (OPENSSL_CONF, fips=yes), the load proof,
#     the engine, a DER round trip and sealing (scripts/platform-debian13-fips.js).
#  The verdict line names the OpenSSL and counts both.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
cache=${TLS_SESSION_CACHE:-$HOME/.cache/tls-session}
base=$cache/debian13
rootfs=$base/root
suite=trixie
packages=(openssl sqlite3 binutils libatomic1 ca-certificates iproute2 gcc libc6-dev libssl-dev openssl-provider-fips)
node_spec=${DEBIAN13_NODE:-26}
export DEBIAN_FRONTEND=noninteractive
say() { printf 'debian13: %s\n' "$*"; }
fail() {
  say "FAILED: $*"
  say "verdict: FAILED after $((SECONDS - started)) s"
  exit 1
}

# Fails unless nothing is mounted under $1 (a root is only ever deleted with nothing in it).
nothing_mounted_under() {
  ! awk '{ print $2 }' /proc/mounts | grep -q "^$1\(/\|$\)"
}

# Runs "$@" in the root $1 (chroot) inside a private mount namespace with /proc, /dev (and
# /dev/pts, /dev/shm) and, if $2 is a directory, the Node package at /opt/node.
in_root() {
  local root=$1 node_dir=$2
  shift 2
  unshare --mount --propagation private -- bash -euc '
    root=$1 node_dir=$2; shift 2
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    if [ -d "$node_dir" ]; then mkdir -p "$root/opt/node" && mount --bind -o ro "$node_dir" "$root/opt/node"; fi
    exec chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
      PATH=/opt/node/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
  ' in_root "$root" "$node_dir" "$@"
}

# --- 1. the root ---------------------------------------------------------------------------
command -v debootstrap >/dev/null && command -v unshare >/dev/null || {
  say "installing debootstrap"
  apt-get update -qq && apt-get install -y -qq debootstrap util-linux >/dev/null || fail "apt-get could not install debootstrap on this machine"
}
mkdir -p "$base"
stamp=$rootfs/.tls-session-root
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$suite" ]; then
  say "making the $suite root (debootstrap --variant=minbase): once"
  new=$base/root.new
  nothing_mounted_under "$new" || fail "$new has mounts under it; unmount them first"
  rm -rf "$new"
  t=$SECONDS
  if ! debootstrap --variant=minbase "$suite" "$new" >"$base/debootstrap.log" 2>&1; then
    tail -15 "$base/debootstrap.log"
    fail "debootstrap $suite failed (Debian's mirror unreachable?): log in $base/debootstrap.log"
  fi
  say "debootstrap: $((SECONDS - t)) s"
  echo "$suite" >"$new/.tls-session-root"
  nothing_mounted_under "$new" && nothing_mounted_under "$rootfs" || fail "mounts left under $base"
  rm -rf "$rootfs"
  mv "$new" "$rootfs"
fi
# Only 127.0.0.1 for localhost, as on the CI machine: with Debian's usual "::1 localhost" too,
# clients of servers listening on 127.0.0.1 try ::1 first (docs/PLATFORMS.md).
printf '127.0.0.1 localhost\n' >"$rootfs/etc/hosts"
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
installed=$(in_root "$rootfs" - dpkg-query -W -f '${Package} ${Status}\n' "${packages[@]}" 2>/dev/null | awk '$NF == "installed" { print $1 }' || true)
missing=()
for p in "${packages[@]}"; do grep -qx "$p" <<<"$installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing in the root: ${missing[*]}"
  t=$SECONDS
  if ! in_root "$rootfs" - bash -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends ${missing[*]} && apt-get clean" >"$base/apt.log" 2>&1; then
    tail -15 "$base/apt.log"
    fail "installing ${missing[*]} in the $suite root failed (Debian's mirror unreachable?): log in $base/apt.log"
  fi
  touch "$stamp"
  say "installed in $((SECONDS - t)) s"
elif [ -n "$(find "$stamp" -mtime +7)" ]; then
  say "the cached $suite root is a week old: apt-get upgrade"
  if ! in_root "$rootfs" - bash -c 'apt-get update -qq && apt-get upgrade -y -qq && apt-get clean' >"$base/apt.log" 2>&1; then
    tail -15 "$base/apt.log"
    fail "apt-get upgrade in the cached $suite root failed (Debian's mirror unreachable?): log in $base/apt.log"
  fi
  touch "$stamp"
else
  say "reusing the cached $suite root ($rootfs)"
fi
cli_version=$(in_root "$rootfs" - openssl version) || fail "openssl does not run in the root"
say "root: Debian $(cat "$rootfs/etc/debian_version"), $cli_version"

# --- 2. Node -------------------------------------------------------------------------------
node_pkg=$(bash scripts/install-node.sh "$node_spec") || fail "no Node $node_spec (scripts/install-node.sh, output above)"
node_version=$("$node_pkg/bin/node" --version)

# --- 3. the packed package and the test tree -------------------------------------------------
tarball=$(bash scripts/platform-pack.sh) || fail "npm pack failed (output above)"
tree=$rootfs/work/tls-session
rm -rf "$tree"
mkdir -p "$tree"
git ls-files -co --exclude-standard -z | while IFS= read -r -d "" f; do if [ -f "$f" ]; then printf "%s\0" "$f"; fi; done |
  tar --null -T - -cf - | tar -xf - -C "$tree"
rm -rf "$tree/build" "$tree/build-cmake" "$tree/build-bench" "$tree/prebuilds" "$tree/dist"
mkdir -p "$tree/node_modules"
cp -a node_modules/. "$tree/node_modules/"
tar xzf "$tarball" -C "$tree" --strip-components=1 package/prebuilds package/dist
# Some tests name build/Release/tls_session.node itself (the addon file they copy, nm or load in a
# worker): it is the packed prebuild, byte for byte, as scripts/build-package.sh leaves a checkout.
mkdir -p "$tree/build/Release"
cp "$tree/prebuilds/linux-x64/tls-session.glibc.node" "$tree/build/Release/tls_session.node"
# better-sqlite3 for this Node (its ABI), built on this machine against the package's headers,
# cached per version as scripts/node-lines.sh keeps it.
# The headers are those scripts/node-lines.sh uses for that line (GC_SAFE_HEADERS: on 24.x, an
# earlier release's, whose ObjectWrap the GC can collect without aborting).
eval "$(grep '^declare -A GC_SAFE_HEADERS=' scripts/node-lines.sh)"
major=${node_version#v}
major=${major%%.*}
headers_version=${GC_SAFE_HEADERS[$major]:-${node_version#v}}
headers_pkg=$node_pkg
if [ "$headers_version" != "${node_version#v}" ]; then
  headers_pkg=$(bash scripts/install-node.sh "$headers_version") || fail "no Node $headers_version headers (scripts/install-node.sh)"
fi
sqlite_version=$(node -p 'require("./node_modules/better-sqlite3/package.json").version')
sqlite_cached=$cache/better-sqlite3/better-sqlite3-$sqlite_version-node-$node_version-headers-$headers_version/better_sqlite3.node
if [ ! -f "$sqlite_cached" ]; then
  say "building better-sqlite3 $sqlite_version for Node $node_version, headers $headers_version (once)"
  (cd "$tree" && PATH="$node_pkg/bin:$PATH" npm_config_nodedir="$headers_pkg" npm_config_build_from_source=true \
    npm rebuild better-sqlite3 >"$base/better-sqlite3.log" 2>&1) || { tail -20 "$base/better-sqlite3.log"; fail "better-sqlite3 did not build"; }
  mkdir -p "$(dirname "$sqlite_cached")"
  cp "$tree/node_modules/better-sqlite3/build/Release/better_sqlite3.node" "$sqlite_cached"
fi
cp "$sqlite_cached" "$tree/node_modules/better-sqlite3/build/Release/better_sqlite3.node"

# The addon the tests load is the packed prebuild, and it loads and proves this root's OpenSSL.
probe=$(in_root "$rootfs" "$node_pkg" bash -c 'cd /work/tls-session && node -e "
  const { openssl, proveOpenSSLBinding } = require(\"./dist/lib\");
  const gyp = require(\"node-gyp-build\").path(\".\");
  console.log(JSON.stringify({ addon: gyp, version: openssl.version, loadedAs: openssl.loadedAs, relocations: openssl.relocationsChecked, libssl: openssl.libssl }));
"' 2>&1) || fail "the packed addon does not load in the root: $probe"
say "probe: $probe"
grep -q '"addon":"/work/tls-session/build/Release/tls_session.node"' <<<"$probe" || fail "the tests would not load build/Release/tls_session.node"
cmp -s "$tree/build/Release/tls_session.node" <(tar xzf "$tarball" -O package/prebuilds/linux-x64/tls-session.glibc.node) ||
  fail "build/Release/tls_session.node is not the packed prebuild"
openssl_version=$(sed -E 's/.*"version":"([^"]*)".*/\1/' <<<"$probe")

# --- 4. the fast lane ----------------------------------------------------------------------
say "npm test on Node $node_version, $openssl_version (Debian $(cat "$rootfs/etc/debian_version"))"
log=$base/jest.log
status=0
# The Node package has no npm: the root runs package.json's "test" script itself, as npm would.
test_script=$(node -p 'require("./package.json").scripts.test')
in_root "$rootfs" "$node_pkg" bash -c 'cd /work/tls-session && export TLS_SESSION_NODE_HEADERS=/opt/node/include/node CI=true && eval "$0 \"\$@\""' \
  "$test_script" "$@" 2>&1 | tee "$log" || status=$?
totals=$(grep -E '^Tests: ' "$log" | tail -1 || true)
passed=$(grep -oE '[0-9]+ passed' <<<"$totals" | grep -oE '[0-9]+' || echo 0)
failed=$(grep -oE '[0-9]+ failed' <<<"$totals" | grep -oE '[0-9]+' || echo 0)
if [ "$status" = 0 ] && [ "$passed" = 0 ]; then status=1; fi

# --- 5. FIPS -------------------------------------------------------------------------------
# Debian 13's openssl-provider-fips, set up as OpenSSL documents it (fipsinstall writes the
# module's checksums; again at every run, as an upgrade changes them), and a configuration that
# activates it with fips=yes by default, named by OPENSSL_CONF for these checks only.
say "FIPS: scripts/platform-debian13-fips.js with the FIPS provider in force"
fips_status=0
in_root "$rootfs" "$node_pkg" bash -ec '
  module=$(ls /usr/lib/*-linux-gnu/ossl-modules/fips.so)
  openssl fipsinstall -out /etc/ssl/fipsmodule.cnf -module "$module" >/dev/null 2>&1
  printf "%s\n" "openssl_conf = openssl_init" ".include /etc/ssl/fipsmodule.cnf" "[openssl_init]" \
    "providers = provider_sect" "alg_section = algorithm_sect" "[provider_sect]" "fips = fips_sect" \
    "base = base_sect" "[base_sect]" "activate = 1" "[algorithm_sect]" "default_properties = fips=yes" \
    >/etc/ssl/openssl-fips-test.cnf
  export OPENSSL_CONF=/etc/ssl/openssl-fips-test.cnf
  openssl list -providers | grep -A3 "^  fips" | grep -q "status: active" || { echo "the FIPS provider is not active"; exit 1; }
  d=$(mktemp -d)
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost -keyout "$d/ec-key.pem" -out "$d/ec-cert.pem" 2>/dev/null
  cd /work/tls-session && node scripts/platform-debian13-fips.js "$d"
' 2>&1 | tee "$base/fips.log" || fips_status=$?
fips_totals=$(grep -E '^fips: [0-9]+ passed' "$base/fips.log" | tail -1 || echo "fips: did not run")
fips_provider=$(in_root "$rootfs" - dpkg-query -W -f '${Version}' openssl-provider-fips)
if [ "$status" = 0 ] && [ "$fips_status" != 0 ]; then status=$fips_status; fi

verdict=$([ "$status" = 0 ] && echo ok || echo FAILED)
say "verdict: $verdict: npm test $passed passed, $failed failed; FIPS checks ${fips_totals#fips: } (openssl-provider-fips $fips_provider); on $openssl_version, Node $node_version, Debian $(cat "$rootfs/etc/debian_version") ($((SECONDS - started)) s)"
exit "$status"
