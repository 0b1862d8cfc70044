#!/usr/bin/env bash
# HTTP load on evident-bank (issue 6): deposits spread over 1,000 accounts, the daemon on
# durable storage (fsync per group commit, the default), driven by Debian's wrk.
#
#   bench/bank_load.sh [--duration 15s] [--no-sync-duration 5s] [--connections 64]
#                      [--threads 2] [--accounts 1000]
#                      [--http-threads N] [--config FILE]   (passed on to evident-bank)
#
# Builds nothing: uses $EVIDENT_BANK or build/samples/evident-bank. Starts the daemon on
# a temporary data directory and a free loopback port, opens the accounts, measures a
# short GET /healthz baseline (the HTTP layer alone) and then the deposit load, stops the
# daemon (SIGTERM); then runs the same deposits briefly on a second daemon under
# durability no_sync (what the flushes cost in this window) and removes the directory.
# Targets: >= 20,000 deposits/s, p99 <= 25 ms, no non-2xx answers. The last line is one
# JSON object.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bank=${EVIDENT_BANK:-$root/build/samples/evident-bank}
duration=15s nosync_duration=5s connections=64 threads=2 accounts=1000
bank_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --no-sync-duration) nosync_duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --accounts) accounts=$2; shift 2 ;;
    --http-threads) bank_args+=(--http-threads "$2"); shift 2 ;;
    --config) bank_args+=(--config "$2"); shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x "$bank" ] || { echo "no evident-bank at $bank (build first, or set EVIDENT_BANK)" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is not installed (scripts/deps.sh)" >&2; exit 2; }

work=$(mktemp -d)
pid="" log=""
# SIGTERM, then wait for the graceful stop (SIGKILL after 20 s); the daemon's last words.
stop_bank() {
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  tail -1 "$log"
  pid=""
}
cleanup() {
  stop_bank >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# start_bank DURABILITY: the daemon on a fresh data directory; sets pid and url.
start_bank() {
  log="$work/bank-$1.log"
  "$bank" --listen 127.0.0.1:0 --data "$work/data-$1" --durability "$1" \
    ${bank_args[@]+"${bank_args[@]}"} >"$log" 2>&1 &
  pid=$!
  url=""
  for _ in $(seq 100); do
    url=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$log" || true)
    [ -n "$url" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$url" ] || { echo "evident-bank did not start" >&2; cat "$log" >&2; exit 1; }
  echo "evident-bank at $url (pid $pid, data $work/data-$1, durability $1)"
}

# Opens the accounts over one keep-alive connection.
open_accounts() {
  python3 - "$url" "$accounts" <<'PY'
import http.client, json, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port)
for i in range(int(sys.argv[2])):
    c.request("POST", "/accounts", json.dumps({"id": f"acc-{i}", "owner": f"owner {i}"}),
              {"Content-Type": "application/json"})
    r = c.getresponse(); r.read()
    if r.status not in (201, 409):
        sys.exit(f"opening acc-{i}: HTTP {r.status}")
PY
  echo "opened $accounts accounts"
}

start_bank fsync
open_accounts

# wrk prints "Requests/sec:", "99%" (with --latency) and "Non-2xx or 3xx responses".
run_wrk() { wrk -t"$threads" -c"$connections" -d"$1" --latency "${@:2}" "$url${path:-}"; }
# run_deposits DURATION: POST /accounts/acc-N/deposits over the accounts.
run_deposits() {
  path="" ACCOUNTS=$accounts run_wrk "$1" -s "$root/bench/bank_load/deposits.lua"
}
# ratio A B: A / B with two decimals (0 when B is 0).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }
field_rps() { awk '/^Requests\/sec:/ {print $2}' "$1"; }
# wrk prints a duration as 812.00us, 2.41ms or 1.02s; ms() turns it into milliseconds.
ms_awk='function ms(v) {
  if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
  if (v ~ /ms$/) { sub(/ms$/, "", v); return v }
  if (v ~ /s$/) { sub(/s$/, "", v); return v * 1000 }
  return v
}'
field_p99_ms() { awk "$ms_awk"' $1 == "99%" { print ms($2) }' "$1"; }
# The "Latency <avg> <stdev> <max> <+/- stdev>" line: the mean.
field_mean_ms() { awk "$ms_awk"' $1 == "Latency" { print ms($2); exit }' "$1"; }
field_non2xx() {
  local n e
  n=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$1"); n=${n:-0}
  e=$(awk '/Socket errors:/ { s = 0; for (i = 3; i <= NF; i += 2) s += $(i + 1); print s }' "$1" | tr -d ','); e=${e:-0}
  echo $((n + e))
}

# The journal's counters: appends, commits, seconds spent committing (fsync included),
# flushes; then the seconds and count of the appends' answers (commit start to durable)
# and of the HTTP answers (request read to answer written).
scrape() {
  python3 - "$url" <<'PY'
import http.client, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port)
c.request("GET", "/metrics"); text = c.getresponse().read().decode()
v = {}
for line in text.splitlines():
    if line and not line.startswith("#"):
        name, _, value = line.rpartition(" ")
        v[name] = value
print(v.get("evident_journal_appends_total", 0), v.get("evident_journal_commits_total", 0),
      v.get("evident_journal_commit_duration_seconds_sum", 0),
      v.get("evident_journal_flushes_total", 0),
      v.get("evident_journal_append_duration_seconds_sum", 0),
      v.get("evident_journal_append_duration_seconds_count", 0),
      v.get("evident_bank_http_request_duration_seconds_sum", 0),
      v.get("evident_bank_http_request_duration_seconds_count", 0))
PY
}

echo "--- baseline: GET /healthz, 5s (the HTTP layer without the runtime)"
path=/healthz run_wrk 5s | tee "$work/base.txt"
load_before=$(cut -d' ' -f1 /proc/loadavg)
read -r appends0 commits0 commit_s0 flushes0 answer_s0 answers0 http_s0 https0 < <(scrape)
echo "--- deposits: POST /accounts/acc-N/deposits over $accounts accounts, $duration (load $load_before)"
run_deposits "$duration" | tee "$work/load.txt"
read -r appends1 commits1 commit_s1 flushes1 answer_s1 answers1 http_s1 https1 < <(scrape)
load_after=$(cut -d' ' -f1 /proc/loadavg)

base_rps=$(field_rps "$work/base.txt")
rps=$(field_rps "$work/load.txt")
p99=$(field_p99_ms "$work/load.txt")
mean_lat=$(field_mean_ms "$work/load.txt")
non2xx=$(field_non2xx "$work/load.txt")
# Deposits per commit and the mean commit time: with 64 connections at most 64 deposits
# wait for one commit, so throughput <= 64 / commit time; a slow disk (fsync) caps it.
per_commit=$(awk -v a=$((appends1 - appends0)) -v c=$((commits1 - commits0)) \
  'BEGIN { printf "%.1f", (c > 0) ? a / c : 0 }')
# The mean in ms of what a counter pair (seconds, count) saw between two scrapes.
mean_ms() {
  awk -v s0="$1" -v s1="$2" -v n=$(($4 - $3)) \
    'BEGIN { printf "%.2f", (n > 0) ? (s1 - s0) * 1000 / n : 0 }'
}
commit_ms=$(mean_ms "$commit_s0" "$commit_s1" "$commits0" "$commits1")
# A commit is answered when the next commit's flush (or, when none follows, a flush of
# its own) has made it durable: flushes per commit near 0 means one flush per commit.
flushes_per_commit=$(ratio $((flushes1 - flushes0)) $((commits1 - commits0)))
# Where a deposit's time goes, as means over the load: inside the daemon (request read
# to answer written), and of that in the journal (its commit's start to durable). wrk's
# mean latency minus server_ms is the client's and the kernel's share.
journal_ms=$(mean_ms "$answer_s0" "$answer_s1" "$answers0" "$answers1")
server_ms=$(mean_ms "$http_s0" "$http_s1" "$https0" "$https1")
echo "daemon: a deposit spends $server_ms ms from read to answer, $journal_ms ms of it from" \
  "its commit's start to durable"
echo "daemon: $((appends1 - appends0)) deposits in $((commits1 - commits0)) commits" \
  "($per_commit per commit, $commit_ms ms per commit," \
  "$flushes_per_commit extra flushes per commit)"

# The daemon's own count of what it answered, as a cross-check of wrk's figures.
python3 - "$url" <<'PY' || true
import http.client, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port)
c.request("GET", "/metrics"); text = c.getresponse().read().decode()
for line in text.splitlines():
    if line.startswith("evident_bank_http_responses_total"):
        print("daemon:", line)
PY

stop_bank

# The same daemon and load without any flush: what durability costs in this window.
start_bank no_sync
open_accounts
echo "--- baseline: the same deposits under durability no_sync, $nosync_duration"
run_deposits "$nosync_duration" | tee "$work/nosync.txt"
stop_bank
nosync_rps=$(field_rps "$work/nosync.txt")

verdict() { if [ "$1" = 1 ]; then echo PASS; else echo MISS; fi; }
ok_rps=$(awk -v x="$rps" 'BEGIN { print (x >= 20000) ? 1 : 0 }')
ok_p99=$(awk -v x="$p99" 'BEGIN { print (x <= 25) ? 1 : 0 }')
ok_non=$([ "$non2xx" -eq 0 ] && echo 1 || echo 0)
healthz_ratio=$(ratio "$rps" "$base_rps")
echo "deposits/s      $rps (target >= 20000) $(verdict "$ok_rps")"
echo "p99             ${p99} ms (target <= 25) $(verdict "$ok_p99")"
echo "non-2xx         $non2xx (target 0) $(verdict "$ok_non")"
nosync_ratio=$(ratio "$rps" "$nosync_rps")
echo "vs /healthz     $healthz_ratio of $base_rps req/s (same run)"
echo "vs no_sync      $nosync_ratio of $nosync_rps deposits/s (same run, no flush at all)"
echo "machine load    $load_before before, $load_after after (2 cores; others' work counts)"
printf '{"deposits_per_s":%s,"p99_ms":%s,"non_2xx":%s,"healthz_per_s":%s,"ratio_to_healthz":%s,' \
  "$rps" "$p99" "$non2xx" "$base_rps" "$healthz_ratio"
printf '"deposits_per_commit":%s,"commit_ms":%s,"flushes_per_commit":%s,' \
  "$per_commit" "$commit_ms" "$flushes_per_commit"
printf '"mean_ms":%s,"server_ms":%s,"journal_ms":%s,' "$mean_lat" "$server_ms" "$journal_ms"
printf '"no_sync_per_s":%s,"ratio_to_no_sync":%s,' "$nosync_rps" "$nosync_ratio"
printf '"load_before":%s,"load_after":%s}\n' "$load_before" "$load_after"
