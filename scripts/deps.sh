#!/usr/bin/env bash
# Installs the Debian packages evident needs, only those missing (apt-get update runs
# at most once, and only when something is missing). Uses sudo when not root.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config
  libcaf-dev liblmdb-dev lmdb-utils libmsgpack-cxx-dev
  libboost-dev libboost-test-dev nlohmann-json3-dev libcli11-dev libcpp-httplib-dev
  libjemalloc-dev
  python3 python3-lmdb python3-msgpack wrk
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update
$sudo apt-get install -y --no-install-recommends "${missing[@]}"
