#!/usr/bin/env bash
# Configures and builds evident into ./build (Release with debug info). CI=true turns
# warnings into errors.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
werror=OFF
if [ "${CI:-}" = "true" ]; then
  werror=ON
fi
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DEVIDENT_WERROR="$werror" >/dev/null
cmake --build "$root/build" -j "$jobs" "$@"
