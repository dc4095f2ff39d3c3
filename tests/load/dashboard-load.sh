#!/usr/bin/env bash
# Dashboard load run: `dashboard load` plays G gateways × D devices publishing
# telemetry every second into a Mosquitto of its own; `dashboard serve` reads
# them and keeps one /events client (the load tool's latency probe). Prints
# the dashboard's CPU % of one core over the measured window, its peak and
# final RSS, and the MQTT publish → server-sent event latency.
#
#   tests/load/dashboard-load.sh [gateways=10] [devices=50] [seconds=60]
#   PROFILE=debug tests/load/dashboard-load.sh …   # the debug binary
#
# Needs mosquitto. Uses the release binary (cargo build --release -p dashboard).
set -euo pipefail
gateways=${1:-10}
devices=${2:-50}
seconds=${3:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
bin=$target/${PROFILE:-release}/dashboard
[ -x "$bin" ] || { echo "build first: cargo build --release -p dashboard" >&2; exit 1; }
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mport=$(free_port); hport=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n' "$mport" > "$work/m.conf"
mosquitto -c "$work/m.conf" > "$work/m.log" 2>&1 & pids+=($!)
sleep 0.5
printf 'data_dir = "%s/data"\n[mqtt]\nurl = "mqtt://127.0.0.1:%s"\n[http]\nlisten = "127.0.0.1:%s"\n' "$work" "$mport" "$hport" > "$work/d.toml"
"$bin" serve --config "$work/d.toml" > "$work/d.log" 2>&1 & dpid=$!; pids+=($dpid)
sleep 1
cpu() { awk '{print $14 + $15}' "/proc/$dpid/stat"; }
hz=$(getconf CLK_TCK)
"$bin" load --broker "mqtt://127.0.0.1:$mport" --dashboard "127.0.0.1:$hport" \
  --gateways "$gateways" --devices "$devices" --seconds "$((seconds + 10))" > "$work/load.out" 2>&1 & lpid=$!; pids+=($lpid)
sleep 10   # settle: retained states, first snapshots
c0=$(cpu); t0=$(date +%s.%N)
left=$seconds
while [ "$left" -gt 0 ]; do   # RSS every minute: growth shows here
  step=$(( left < 60 ? left : 60 )); sleep "$step"; left=$(( left - step ))
  echo "t+$(( seconds - left )) s: RSS $(awk '/VmRSS/{printf "%.1f MiB", $2/1024}' "/proc/$dpid/status")"
done
c1=$(cpu); t1=$(date +%s.%N)
rss_now=$(awk '/VmRSS/{print $2}' "/proc/$dpid/status")
wait "$lpid" || true
hwm=$(awk '/VmHWM/{print $2}' "/proc/$dpid/status")
cat "$work/load.out"
curl -s "127.0.0.1:$hport/api/health"; echo
awk -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v hz="$hz" -v rss="$rss_now" -v hwm="$hwm" 'BEGIN {
  printf "dashboard CPU: %.1f %% of one core over %.0f s; RSS at the end %.1f MiB, peak %.1f MiB\n",
    100 * (c1 - c0) / hz / (t1 - t0), t1 - t0, rss / 1024, hwm / 1024 }'
