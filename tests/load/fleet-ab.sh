#!/usr/bin/env bash
# Dashboard intake A/B: `dashboard load --points 30` plays the traffic of
# the fleet run's gateways with `heartbeat = "1s"` (G gateways × D devices,
# one telemetry message of 30 integer registers per device per second, QoS 1,
# states every minute) into a Mosquitto of its own, without the gateway and
# simulator processes; one `dashboard serve` per binary given (configuration
# of tests/load/fleet-dashboard.sh, history on) reads it, one binary after
# the other, ROUNDS times, so that the machine's load falls on each alike.
# Prints, per run, the dashboard's CPU % of one core over the measured window,
# its peak RSS, the load average at the start, and after a clean stop what
# the history kept (raw rows, values counted in the minute rollup) against
# what was sent.
#
#   tests/load/fleet-ab.sh [gateways=20] [devices=50] [seconds=60] BIN...
#   ROUNDS=2 tests/load/fleet-ab.sh 20 50 60 /tmp/dashboard-old target/release/dashboard
#
# The load tool is the first BIN's `dashboard load` (LOAD_BIN to change; it
# needs `--points`). Needs mosquitto and the sqlite3 command.
set -euo pipefail
gateways=${1:-20}
devices=${2:-50}
seconds=${3:-60}
shift 3 || true
[ $# -gt 0 ] || { echo "usage: $0 GATEWAYS DEVICES SECONDS BIN..." >&2; exit 2; }
root=$(cd "$(dirname "$0")/../.." && pwd)
load_bin=${LOAD_BIN:-$1}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; sleep 1; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
ticks=$(getconf CLK_TCK)
cat > "$work/health.py" <<'PY'
import json, sys
h = json.load(sys.stdin)
c = h.get("counters", {})
print(" ".join(f"{k}={c.get(k)}" for k in ("messages", "gaps", "missing", "duplicates", "malformed")),
      f"history_dropped={h.get('history_dropped')}")
PY
for round in $(seq "${ROUNDS:-1}"); do
  for bin in "$@"; do
    mport=$(free_port); hport=$(free_port)
    rm -rf "$work/dash-data"; mkdir -p "$work/dash-data"
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n' "$mport" > "$work/m.conf"
    mosquitto -c "$work/m.conf" > "$work/m.log" 2>&1 & mosq=$!
    for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$mport) 2>/dev/null && break; sleep 0.1; done
    "$root/tests/load/fleet-dashboard.sh" "$work" "$mport" "$hport" > "$work/dash.toml"
    "$bin" serve --config "$work/dash.toml" > "$work/dash.log" 2>&1 & dpid=$!
    # Subscribed before the first message: every one sent is received.
    for _ in $(seq 100); do
      curl -s "127.0.0.1:$hport/api/health" 2>/dev/null | grep -q '"broker_connected":true' && break
      sleep 0.1
    done
    sleep 1
    "$load_bin" load --broker "mqtt://127.0.0.1:$mport" --gateways "$gateways" --devices "$devices" \
      --points 30 --seconds "$((seconds + 12))" > "$work/load.out" 2>&1 & lpid=$!
    sleep 10   # settle: retained states, first series
    la=$(cut -d' ' -f1 /proc/loadavg)
    c0=$(awk '{print $14+$15}' "/proc/$dpid/stat"); t0=$(date +%s.%N)
    sleep "$seconds"
    c1=$(awk '{print $14+$15}' "/proc/$dpid/stat"); t1=$(date +%s.%N)
    hwm=$(awk '/VmHWM/{print $2}' "/proc/$dpid/status")
    wait "$lpid" || true
    health=$(curl -s "127.0.0.1:$hport/api/health" | python3 "$work/health.py" 2>/dev/null || echo "none")
    python3 -c "
import sys
c0,c1,t0,t1,tk,hwm=map(float,sys.argv[1:7])
print(f'round {sys.argv[7]} {sys.argv[8]}: dashboard CPU {(c1-c0)/tk/(t1-t0)*100:.2f} % of one core, peak RSS {hwm/1024:.1f} MiB, load average {sys.argv[9]}; {sys.argv[10]}')
" "$c0" "$c1" "$t0" "$t1" "$ticks" "$hwm" "$round" "$bin" "$la" "$(head -1 "$work/load.out")"
    # A clean stop writes what the history holds; then every value sent
    # must be in the raw table once and counted once in the minutes.
    kill -INT "$dpid"; wait "$dpid" 2>/dev/null || true
    kept=$(sqlite3 "$work/dash-data/history.db" "SELECT (SELECT COUNT(*) FROM raw), (SELECT SUM(n) FROM minute), (SELECT COUNT(*) FROM states)")
    echo "  /api/health: $health"
    echo "  history after the stop: raw rows|values in the minutes|states = $kept (telemetry sent × 30 = $(( $(head -1 "$work/load.out" | awk '{print $2}') * 30 )))"
    kill "$dpid" "$mosq" 2>/dev/null || true
    wait "$dpid" "$mosq" 2>/dev/null || true
  done
done
