#!/usr/bin/env bash
# Usage: scripts/platform-arm64-toolchain.sh
# Installs, when missing, what cross-compiling and running the linux-arm64 prebuild needs on this
# x64 Debian machine (docs/PLATFORMS.md): multiarch arm64 (dpkg --add-architecture arm64), Debian's
# g++-aarch64-linux-gnu, libssl-dev:arm64 (the headers; its libssl3:arm64 is what the addon binds
# under emulation), libstdc++6:arm64, libatomic1:arm64 and qemu-user-static. apt keeps them, so a
# later run installs nothing. Used by scripts/platform-pack.sh and scripts/platform-arm64.sh.
# Exits 1, saying so, when apt cannot install them (Debian's mirror unreachable, a package gone).
set -euo pipefail
cache=${TLS_SESSION_CACHE:-$HOME/.cache/tls-session}
packages=(g++-aarch64-linux-gnu libssl-dev:arm64 libstdc++6:arm64 libatomic1:arm64 qemu-user-static)
say() { printf 'arm64-toolchain: %s\n' "$*" >&2; }
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f '${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
say "installing ${missing[*]}"
started=$SECONDS
mkdir -p "$cache"
dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
  >"$cache/arm64-apt.log" 2>&1; then
  tail -15 "$cache/arm64-apt.log" >&2
  say "FAILED: apt-get could not install ${missing[*]} (Debian's mirror unreachable?): log in $cache/arm64-apt.log"
  exit 1
fi
say "installed in $((SECONDS - started)) s"
