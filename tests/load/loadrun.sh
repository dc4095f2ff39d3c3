#!/usr/bin/env bash
# Load run: N simulated Modbus TCP devices × 30 registers polled every second
# by `gateway run --stdout > /dev/null`; prints points per second, the
# gateway's CPU % of one core and its peak RSS.
#
#   tests/load/loadrun.sh [devices=500] [seconds=60] [interval=1s]
#   SINK=none tests/load/loadrun.sh …   # poll only: no --stdout
#   SINK=mqtt tests/load/loadrun.sh …   # into a Mosquitto of its own (the brief's comparison)
#   CHURN=1 …                           # every register changes at every poll (`simulate --churn`),
#                                       # so report by exception publishes every value
#
# With SINK=mqtt a subscriber (QoS 1) records everything the broker passes
# on, and after the gateway's clean stop tests/load/check_delivery.py checks
# that every seq the gateway handed out arrived (delivered %), and with
# CHURN=1 that each device's values of every poll are there.
#
# The simulator serves the devices from a few listeners (up to 250 unit ids
# each); the gateway sees every device as its own TCP endpoint (one bus, one
# connection per device), like the peers measured in the brief.
# Uses the release binary (cargo build --release -p gateway), or GATEWAY_BIN.
set -euo pipefail
devices=${1:-500}
seconds=${2:-60}
interval=${3:-1s}
root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
bin=${GATEWAY_BIN:-$target/release/gateway}
[ -x "$bin" ] || { echo "build first: cargo build --release -p gateway" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/profiles"

# A 30-register profile: 30 consecutive holding registers, mixed types.
{
  echo 'description = "Load-run device: 30 holding registers"'
  for i in $(seq 0 29); do
    printf '[[point]]\nname = "r%02d"\narea = "holding"\naddress = %d\ntype = "u16"\n' "$i" "$i"
  done
} > "$work/profiles/load-30.toml"

per=250
listeners=$(( (devices + per - 1) / per ))
# One free port per listener (held together while chosen, so that none is
# handed out twice; consecutive ports may be taken by other sockets).
read -r -a ports < <(python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$listeners")
{
  echo 'site = "load"'; echo 'gateway = "sim"'; echo "profiles_dir = \"$work/profiles\""
  for l in $(seq 0 $((listeners - 1))); do
    printf '[[bus]]\nid = "l%d"\nkind = "tcp"\naddress = "127.0.0.1:%d"\n' "$l" "${ports[$l]}"
  done
  for d in $(seq 0 $((devices - 1))); do
    l=$((d / per)); u=$((d % per + 1))
    printf '[[device]]\nid = "d%d"\nname_zh = "设备%d"\nclass = "other"\nbus = "l%d"\nunit = %d\nprofile = "load-30"\n' "$d" "$d" "$l" "$u"
  done
} > "$work/sim.toml"
{
  echo 'site = "load"'; echo 'gateway = "gw"'; echo "profiles_dir = \"$work/profiles\""; echo "data_dir = \"$work/data\""
  for d in $(seq 0 $((devices - 1))); do
    l=$((d / per)); u=$((d % per + 1))
    printf '[[bus]]\nid = "b%d"\nkind = "tcp"\naddress = "127.0.0.1:%d"\n' "$d" "${ports[$l]}"
    printf '[[device]]\nid = "d%d"\nname_zh = "设备%d"\nclass = "other"\nbus = "b%d"\nunit = %d\nprofile = "load-30"\npoll_interval = "%s"\n' "$d" "$d" "$d" "$u" "$interval"
  done
} > "$work/gw.toml"

churn_flag=
[ "${CHURN:-0}" = 1 ] && churn_flag=--churn
"$bin" --log warn simulate --config "$work/sim.toml" $churn_flag > "$work/sim.log" 2>&1 &
sim=$!
for _ in $(seq 100); do grep -q 'simulator: ready' "$work/sim.log" && break; sleep 0.1; done
# ("Address already in use" contains "ready": match the whole line.)
grep -q 'simulator: ready' "$work/sim.log" && kill -0 "$sim" 2>/dev/null || { cat "$work/sim.log"; exit 1; }

start=$(date +%s.%N)
sink_flag=--stdout
[ "${SINK:-stdout}" = none ] && sink_flag=
if [ "${SINK:-stdout}" = mqtt ]; then
  mport=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  # No queue limit for the subscriber: a message the broker drops for a
  # slow subscriber would look like a loss of the gateway's.
  printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\nmax_queued_messages 0\n' "$mport" > "$work/m.conf"
  mosquitto -c "$work/m.conf" > "$work/m.log" 2>&1 &
  for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$mport) 2>/dev/null && break; sleep 0.1; done
  timeout $((seconds + 60)) mosquitto_sub -p "$mport" -t 'bms/#' -q 1 -v > "$work/sub.out" 2>&1 &
  subpid=$!
  sleep 0.5
  sink_flag="--mqtt-url mqtt://127.0.0.1:$mport"
fi
"$bin" --log warn run --config "$work/gw.toml" $sink_flag 2> "$work/gw.err" | wc -l > "$work/lines" &
pipeline=$!
sleep 5   # connect and settle: not measured
gw=$(pgrep -f "run --config $work/gw.toml" | head -1)
ticks=$(getconf CLK_TCK)
cpu0=$(awk '{print $14+$15}' /proc/$gw/stat); t0=$(date +%s.%N)
sleep "$seconds"
cpu1=$(awk '{print $14+$15}' /proc/$gw/stat); t1=$(date +%s.%N)
hwm=$(awk '/VmHWM/{print $2}' /proc/$gw/status)
load=$(cut -d' ' -f1-3 /proc/loadavg)
kill -INT "$gw"; wait "$pipeline" 2>/dev/null || true
end=$(date +%s.%N)
kill -INT "$sim" 2>/dev/null || true
lines=$(cat "$work/lines")
python3 - "$cpu0" "$cpu1" "$t0" "$t1" "$ticks" "$hwm" "$devices" "$interval" "$load" <<'PY'
import sys
c0, c1, t0, t1, tk, hwm, n, iv, load = sys.argv[1:]
wall = float(t1) - float(t0)
cpu = (float(c1) - float(c0)) / float(tk) / wall * 100
print(f"devices={n} points/device=30 interval={iv} window={wall:.1f}s")
print(f"gateway CPU: {cpu:.2f} % of one core")
print(f"gateway peak RSS (VmHWM): {int(hwm)/1024:.1f} MiB")
print(f"load average at the end of the window: {load}")
PY
python3 -c "import sys; l,s,e=int(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]); print(f'poll lines: {l} in {e-s:.1f}s = {l/(e-s):.0f} device polls/s = {30*l/(e-s):.0f} points/s')" "$lines" "$start" "$end"
if [ "${SINK:-stdout}" = mqtt ]; then
  sleep 2
  kill "$subpid" 2>/dev/null || true
  echo "MQTT messages received by a subscriber: $(wc -l < "$work/sub.out") (telemetry by exception, states, events)"
  # The gateway's last seq and what its outbox still holds after the stop.
  read -r last left < <(python3 - "$work/data/outbox.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
m = c.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()
n = c.execute("SELECT COUNT(*) FROM records").fetchone()[0]
print((m[0] - 1) if m else 0, n)
PY
)
  echo "gateway: last seq $last, left in the outbox after the stop $left"
  python3 "$root/tests/load/check_delivery.py" "$work/sub.out" "$last" 30 || true
fi
if [ -s "$work/gw.err" ]; then echo "gateway stderr (first lines):"; head -5 "$work/gw.err"; fi
