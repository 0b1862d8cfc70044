#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs the sample on an embedded
# LMDB data directory (./data by default, or $EVIDENT_DATA).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"
"$root/scripts/build.sh"
exec "$root/samples/cli_demo.sh" "${EVIDENT_DATA:-$root/data}"
