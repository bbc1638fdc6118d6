#!/usr/bin/env bash
# One-step set-up on Debian 12, idempotent and fast when nothing is missing:
# system packages (as root), npm dependencies, the native addon, the TypeScript build.
set -euo pipefail
cd "$(dirname "$0")/.."
quiet=0; [ "${1:-}" = "--quiet" ] && quiet=1
say() { [ "$quiet" = 1 ] || echo "setup: $*"; }

# Build the forwarding plane; run the lab (iproute2, nftables, iperf3, curl); compare against peers (openvpn,
# wireguard-go); test the web UI in a real browser (chromium, driven by playwright-core).
pkgs=(build-essential python3 pkg-config libngtcp2-dev libngtcp2-crypto-gnutls-dev libgnutls28-dev
      iproute2 iputils-ping nftables iperf3 mptcpize procps openssl openvpn wireguard-go wireguard-tools
      curl chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing system packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm ci when node_modules is missing or older than the lockfile.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
fi

# The native addon: rebuild when any native source is newer than the built module.
if [ -f binding.gyp ]; then
  addon=build/Release/quicether_native.node
  if [ ! -f "$addon" ] || [ -n "$(find native binding.gyp -newer "$addon" -print -quit 2>/dev/null)" ]; then
    say "building the native forwarding plane"
    npx --no-install node-gyp rebuild --loglevel=error >/dev/null
  fi
fi

# The lab's delay line (a small standalone program); after node-gyp, which empties build/.
if [ -f native/lab/Makefile ]; then
  make -s -C native/lab >/dev/null
fi

say "compiling TypeScript"
npx --no-install tsc -p tsconfig.build.json
say "ready"
