#!/usr/bin/env bash
# Installs everything the product and its tests need on a fresh Debian machine, idempotently:
# Debian packages that are missing, then the npm dependencies (native modules built by their
# install scripts), then the TypeScript build. Safe to run again; quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the test suite drives for real (each test names what it needs).
apt_packages=(openssl softhsm2 prometheus iproute2 etcd-server etcd-client systemd faketime rsyslog fuse python3-fusepy)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm dependencies: a clean install whenever the lock file is newer than what is installed.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
fi

echo "setup: building"
npm run --silent build
