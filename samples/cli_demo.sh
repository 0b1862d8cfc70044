#!/usr/bin/env bash
# The main job until the bank daemon lands: a short tour of a journal on an embedded
# LMDB data directory, driven through the `evident` CLI. Safe to run repeatedly: each
# run appends one more deposit to the same account and shows it survived the last run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data=${1:-$root/data}
evident="$root/build/tools/evident"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step evident init "$data"
"$evident" init "$data"

if ! "$evident" head "$data" account-1 | grep -q '"version":0'; then
  echo "(account-1 exists from an earlier run: appending with its current version)"
fi
version=$("$evident" head "$data" account-1 | sed -E 's/.*"version":([0-9]+).*/\1/')

if [ "$version" = "0" ]; then
  step "evident append $data account-1 --expected no-stream < opened"
  echo '{"type":"bank.opened","data":{"owner":"ada"}}' |
    "$evident" append "$data" account-1 --expected no-stream
  version=1
fi

step "evident append $data account-1 --expected $version --command-id deposit-$version < deposited"
echo '{"type":"bank.deposited","data":{"amount":100},"metadata":{"user":"ada"}}' |
  "$evident" append "$data" account-1 --expected "$version" --command-id "deposit-$version"

step "the same command id again: answered from the command-id record, nothing written"
echo '{"type":"bank.deposited","data":{"amount":100}}' |
  "$evident" append "$data" account-1 --expected "$version" --command-id "deposit-$version"

step "a stale expected version is refused with a typed error (exit code $((10 + 1)))"
echo '{"type":"bank.deposited","data":{"amount":1}}' |
  "$evident" append "$data" account-1 --expected 0 || echo "(exit code $?)"

step evident read "$data" account-1 --backward --max 3
"$evident" read "$data" account-1 --backward --max 3

step evident streams "$data"
"$evident" streams "$data"

step evident verify "$data"
"$evident" verify "$data"

step evident stats "$data"
"$evident" stats "$data"
