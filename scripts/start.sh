#!/usr/bin/env bash
# The main job: installs what is missing, builds, and starts the evident-bank daemon on
# an embedded LMDB data directory (./data by default, or $EVIDENT_DATA), serving HTTP on
# 127.0.0.1:8080. Extra arguments go to evident-bank (e.g. --listen 127.0.0.1:9000,
# --token T, --config FILE). Ctrl-C (SIGINT) or SIGTERM stops it gracefully.
# The older CLI tour of a journal is samples/cli_demo.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"
"$root/scripts/build.sh"
exec "$root/build/samples/evident-bank" --data "${EVIDENT_DATA:-$root/data}" "$@"
