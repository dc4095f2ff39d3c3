#!/usr/bin/env bash
# Fleet run: G gateway processes × D simulated Modbus TCP devices each
# (30 registers, polled every second), all publishing to one Mosquitto,
# optionally with one dashboard subscribed to everything. Prints, for the
# measured window, the CPU % of one core and the peak RSS of the gateways
# (each and in all), of Mosquitto and of the dashboard, and the MQTT
# messages per second a subscriber to bms/# received.
#
#   tests/load/fleet.sh [gateways=20] [devices=50] [seconds=60]
#   DASHBOARD=1 tests/load/fleet.sh …     # also `dashboard serve` (release build)
#   DASHBOARD=1 DASHBOARD_BIN=/path/to/dashboard tests/load/fleet.sh …   # another build (A/B)
#   HEARTBEAT=5m tests/load/fleet.sh …    # report by exception as deployed (default 1s:
#                                         # every device publishes all its points every second)
#
# Uses the release binaries (cargo build --release -p gateway [-p dashboard]).
set -euo pipefail
gateways=${1:-20}
devices=${2:-50}
seconds=${3:-60}
heartbeat=${HEARTBEAT:-1s}
root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
bin=$target/release/gateway
dash=${DASHBOARD_BIN:-$target/release/dashboard}
[ -x "$bin" ] || { echo "build first: cargo build --release -p gateway" >&2; exit 1; }
if [ "${DASHBOARD:-0}" = 1 ] && [ ! -x "$dash" ]; then
  echo "build first: cargo build --release -p dashboard" >&2; exit 1
fi
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; sleep 1; rm -rf "$work"' EXIT
mkdir -p "$work/profiles"
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

{
  echo 'description = "Load-run device: 30 holding registers"'
  for i in $(seq 0 29); do
    printf '[[point]]\nname = "r%02d"\narea = "holding"\naddress = %d\ntype = "u16"\n' "$i" "$i"
  done
} > "$work/profiles/load-30.toml"

classes=(pump distribution lighting hvac plumbing fire_water elevator lightning_protection)
total=$((gateways * devices))
per=250
listeners=$(( (total + per - 1) / per ))
base_port=$(free_port)
{
  echo 'site = "load"'; echo 'gateway = "sim"'; echo "profiles_dir = \"$work/profiles\""
  for l in $(seq 0 $((listeners - 1))); do
    printf '[[bus]]\nid = "l%d"\nkind = "tcp"\naddress = "127.0.0.1:%d"\n' "$l" $((base_port + l))
  done
  for d in $(seq 0 $((total - 1))); do
    printf '[[device]]\nid = "d%d"\nname_zh = "设备%d"\nclass = "other"\nbus = "l%d"\nunit = %d\nprofile = "load-30"\n' "$d" "$d" $((d / per)) $((d % per + 1))
  done
} > "$work/sim.toml"
"$bin" --log warn simulate --config "$work/sim.toml" > "$work/sim.log" 2>&1 &
for _ in $(seq 200); do grep -q ready "$work/sim.log" && break; sleep 0.1; done
grep -q ready "$work/sim.log" || { cat "$work/sim.log"; exit 1; }

mport=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\nmax_queued_messages 100000\n' "$mport" > "$work/m.conf"
mosquitto -c "$work/m.conf" > "$work/m.log" 2>&1 &
mosq=$!
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$mport) 2>/dev/null && break; sleep 0.1; done

dash_pid=""
if [ "${DASHBOARD:-0}" = 1 ]; then
  hport=$(free_port)
  "$root/tests/load/fleet-dashboard.sh" "$work" "$mport" "$hport" > "$work/dash.toml"
  "$dash" serve --config "$work/dash.toml" > "$work/dash.log" 2>&1 &
  dash_pid=$!
fi

for g in $(seq 0 $((gateways - 1))); do
  site="site-$((g / 4))"; gwid="gw-$g"
  {
    echo "site = \"$site\""; echo "gateway = \"$gwid\""; echo "profiles_dir = \"$work/profiles\""; echo "data_dir = \"$work/data-$g\""
    echo "[admin]"; echo 'listen = ""'
    echo "[mqtt]"; echo "url = \"mqtt://127.0.0.1:$mport\""; echo "heartbeat = \"$heartbeat\""
    for i in $(seq 0 $((devices - 1))); do
      d=$((g * devices + i))
      printf '[[bus]]\nid = "b%d"\nkind = "tcp"\naddress = "127.0.0.1:%d"\n' "$i" $((base_port + d / per))
      printf '[[device]]\nid = "dev-%d"\nname_zh = "设备%d"\nclass = "%s"\nbus = "b%d"\nunit = %d\nprofile = "load-30"\npoll_interval = "1s"\n' \
        "$i" "$i" "${classes[$((i % ${#classes[@]}))]}" "$i" $((d % per + 1))
    done
  } > "$work/gw-$g.toml"
  "$bin" --log warn run --config "$work/gw-$g.toml" 2> "$work/gw-$g.err" &
done
timeout $((seconds + 40)) mosquitto_sub -p "$mport" -t 'bms/#' -q 0 > "$work/sub.out" 2>/dev/null &
sleep 10   # connect and settle: not measured

pids=$(for g in $(seq 0 $((gateways - 1))); do pgrep -f "run --config $work/gw-$g.toml" | head -1; done)
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
declare -A c0
for p in $pids $mosq $dash_pid; do c0[$p]=$(cpu "$p"); done
m0=$(wc -l < "$work/sub.out"); t0=$(date +%s.%N)
sleep "$seconds"
declare -A c1
for p in $pids $mosq $dash_pid; do c1[$p]=$(cpu "$p"); done
m1=$(wc -l < "$work/sub.out"); t1=$(date +%s.%N)
report() { # name pids...
  local name=$1; shift
  local sum=0 max=0 rss=0 rmax=0 n=0
  for p in "$@"; do
    local d=$(( ${c1[$p]} - ${c0[$p]} )); sum=$((sum + d)); [ $d -gt $max ] && max=$d
    local h; h=$(awk '/VmHWM/{print $2}' "/proc/$p/status"); rss=$((rss + h)); [ "$h" -gt $rmax ] && rmax=$h
    n=$((n + 1))
  done
  python3 -c "
import sys
n,s,m,r,rm,tk,w=int(sys.argv[1]),int(sys.argv[2]),int(sys.argv[3]),int(sys.argv[4]),int(sys.argv[5]),int(sys.argv[6]),float(sys.argv[7])
pct=lambda t: t/tk/w*100
if n>1: print(f'{sys.argv[8]} ×{n}: CPU {pct(s):.2f} % of one core in all ({pct(s)/n:.3f} % each on average, {pct(m):.2f} % the busiest); peak RSS {r/1024:.1f} MiB in all, {r/1024/n:.1f} MiB each on average, {rm/1024:.1f} MiB the largest')
else: print(f'{sys.argv[8]}: CPU {pct(s):.2f} % of one core; peak RSS {r/1024:.1f} MiB')
" "$n" "$sum" "$max" "$rss" "$rmax" "$ticks" "$(python3 -c "print($t1-$t0)")" "$name"
}
echo "gateways=$gateways devices/gateway=$devices points/device=30 interval=1s window=${seconds}s"
# shellcheck disable=SC2086
report gateways $pids
report mosquitto $mosq
[ -n "$dash_pid" ] && report dashboard $dash_pid
python3 -c "import sys; print(f'MQTT messages to a bms/# subscriber: {(int(sys.argv[2])-int(sys.argv[1]))/float(sys.argv[3]):.0f}/s')" "$m0" "$m1" "$(python3 -c "print($t1-$t0)")"
errs=$(cat "$work"/gw-*.err | grep -c . || true)
echo "gateway stderr lines: $errs"
[ "$errs" -gt 0 ] && { head -3 "$work"/gw-0.err; echo "simulator:"; tail -5 "$work/sim.log"; }
if [ -n "$dash_pid" ]; then
  echo "dashboard /api/health:"; curl -s "http://127.0.0.1:$hport/api/health" | head -c 600; echo
fi
