#!/usr/bin/env python3
"""Alarm latency: fire-panel fault injected in the simulator -> `…/alarm` seen
by an MQTT subscriber. Prints p50/p99 over N injections.

    tests/load/alarm-latency.py tcp [N=30]      # the panel alone on Modbus TCP
    tests/load/alarm-latency.py rtu [N=30]      # busy RS-485 line (see below)
    tests/load/alarm-latency.py cycle BAUD [SECONDS=20]
                                                # 16 units x 30 registers polled
                                                # as fast as the line carries:
                                                # measured cycle vs `gateway check`
    tests/load/alarm-latency.py scattered BAUD [SECONDS=20]
                                                # 8 devices, 4 points at 0/10/20/30 each,
                                                # polled as fast as the line carries:
                                                # line time per poll

`rtu`: 9600 baud 8N1 on a socat pty pair, the simulator answering in real
wire time, 8 devices of 30 holding registers polled every second and the
fire panel (alarm points every 250 ms) listed last.

Uses the release binary ($CARGO_TARGET_DIR/release/gateway) or $GATEWAY_BIN;
needs mosquitto, mosquitto_sub and socat. Starts its own instances on free
ports in a temporary folder and removes them at the end.
"""

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BIN = os.environ.get("GATEWAY_BIN", os.path.join(TARGET, "release", "gateway"))
PREFIX = "bms/lat/gw"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def profile_30(path):
    with open(path, "w") as f:
        f.write('description = "30 holding registers"\n')
        for i in range(30):
            f.write(f'[[point]]\nname = "r{i:02d}"\narea = "holding"\naddress = {i}\ntype = "u16"\n')


class Procs:
    def __init__(self):
        self.procs = []

    def start(self, args, log, **kw):
        p = subprocess.Popen(args, stdout=open(log, "w"), stderr=subprocess.STDOUT, **kw)
        self.procs.append(p)
        return p

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


def wait_for(path, needle, seconds=20):
    end = time.time() + seconds
    while time.time() < end:
        try:
            text = open(path).read()
        except FileNotFoundError:
            text = ""
        m = re.search(needle, text)
        if m:
            return m
        time.sleep(0.05)
    raise SystemExit(f"{needle!r} not in {path}:\n{open(path).read()[-3000:]}")


def http(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        text = r.read().decode()
        return json.loads(text) if text else None


def pct(values, q):
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(q / 100 * len(v) + 0.5)) - 1))
    return v[k]


def setup(work, mode, baud=9600, n_devices=8, poll="1s", profile="load-30"):
    """Writes the configuration, starts broker, line, simulator and gateway."""
    procs = Procs()
    prof = os.path.join(work, "profiles")
    os.makedirs(prof)
    shutil.copy(os.path.join(ROOT, "config", "profiles", "fire-panel.toml"), prof)
    profile_30(os.path.join(prof, "load-30.toml"))
    with open(os.path.join(prof, "scattered-4.toml"), "w") as f:
        f.write('description = "4 scattered registers"\n')
        for a in (0, 10, 20, 30):
            f.write(f'[[point]]\nname = "r{a}"\narea = "holding"\naddress = {a}\ntype = "u16"\n')
    admin = free_port()
    control = free_port()
    lines = [
        'site = "lat"', 'gateway = "gw"', f'profiles_dir = "{prof}"',
        f'data_dir = "{work}/data"',
        f'[admin]\nlisten = "127.0.0.1:{admin}"',
        f'[simulator]\nwire_time = true\ncontrol = "127.0.0.1:{control}"\nseed = 1',
    ]
    sim_args = []
    broker = None
    if mode in ("tcp", "rtu"):
        broker = free_port()
        with open(os.path.join(work, "m.conf"), "w") as f:
            f.write(f"listener {broker} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        procs.start(["mosquitto", "-c", os.path.join(work, "m.conf")], os.path.join(work, "mosquitto.log"))
        lines.append(f'[mqtt]\nurl = "mqtt://127.0.0.1:{broker}"\nprefix = "bms"')
    if mode == "tcp":
        lines.append(f'[[bus]]\nid = "tcp-1"\nkind = "tcp"\naddress = "127.0.0.1:{free_port()}"\ntimeout = "1s"')
        bus = "tcp-1"
    else:
        a, b = os.path.join(work, "ttyA"), os.path.join(work, "ttyB")
        procs.start(["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
                    os.path.join(work, "socat.log"))
        for _ in range(100):
            if os.path.exists(a) and os.path.exists(b):
                break
            time.sleep(0.05)
        lines.append(f'[[bus]]\nid = "rs485-1"\nkind = "rtu"\nport = "{b}"\nbaud = {baud}\ntimeout = "500ms"')
        sim_args = ["--serial", f"rs485-1={a}"]
        bus = "rs485-1"
    devices = n_devices if mode != "tcp" else 0
    for u in range(1, devices + 1):
        lines.append(f'[[device]]\nid = "d{u}"\nname_zh = "设备{u}"\nclass = "other"\nbus = "{bus}"\n'
                     f'unit = {u}\nprofile = "{profile}"\npoll_interval = "{poll}"')
    if mode in ("tcp", "rtu"):
        lines.append(f'[[device]]\nid = "fire-panel-1"\nname_zh = "消防主机"\nclass = "fire_alarm"\n'
                     f'bus = "{bus}"\nunit = {devices + 1}\nprofile = "fire-panel"\n'
                     'poll_interval = "1s"\nalarm_interval = "250ms"')
    cfg = os.path.join(work, "gw.toml")
    with open(cfg, "w") as f:
        f.write("\n".join(lines) + "\n")
    slog = os.path.join(work, "sim.log")
    procs.start([BIN, "--log", "warn", "simulate", "--config", cfg] + sim_args, slog)
    wait_for(slog, r"simulator: control")
    sub_log = None
    if broker:
        sub_log = os.path.join(work, "sub.log")
        procs.start(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker), "-v", "-t", f"{PREFIX}/alarm"],
                    sub_log)
        time.sleep(0.5)
    glog = os.path.join(work, "gw.log")
    procs.start([BIN, "run", "--log", "warn", "--config", cfg], glog)
    return procs, cfg, f"http://127.0.0.1:{control}", f"http://127.0.0.1:{admin}", sub_log


class Subscriber:
    """Follows mosquitto_sub's output: (arrival time, payload) per alarm."""

    def __init__(self, path):
        self.path = path
        self.seen = []
        self.lock = threading.Lock()
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        with open(self.path) as f:
            while True:
                line = f.readline()
                if not line:
                    time.sleep(0.001)
                    continue
                t = time.time()
                _, _, payload = line.partition(" ")
                try:
                    msg = json.loads(payload)
                except ValueError:
                    continue
                with self.lock:
                    self.seen.append((t, msg))

    def wait(self, active, after, seconds=10):
        end = time.time() + seconds
        while time.time() < end:
            with self.lock:
                for t, m in self.seen:
                    if t >= after and m.get("point") == "fault" and m.get("active") == active:
                        return t
            time.sleep(0.002)
        return None


def latency(mode, n):
    work = tempfile.mkdtemp(prefix="alarm-lat-")
    procs = None
    try:
        procs, _, control, admin, sub_log = setup(work, mode)
        sub = Subscriber(sub_log)
        time.sleep(5)  # connected, first polls done, states published
        lat = []
        for i in range(n):
            time.sleep(random.uniform(0.5, 1.5))  # any phase of the polls
            t0 = time.time()
            fid = http("POST", f"{control}/faults",
                       {"device": "fire-panel-1", "fault": "fault_bit", "point": "fault"})["id"]
            t1 = sub.wait(True, t0)
            if t1 is None:
                raise SystemExit(f"injection {i}: no alarm within 10 s")
            lat.append((t1 - t0) * 1000)
            time.sleep(random.uniform(0.3, 0.6))
            t2 = time.time()
            http("DELETE", f"{control}/faults/{fid}")
            if sub.wait(False, t2) is None:
                raise SystemExit(f"injection {i}: the alarm did not clear")
        metrics = urllib.request.urlopen(f"{admin}/metrics", timeout=5).read().decode()
        polls = [l for l in metrics.splitlines() if l.startswith("bms_polls_total")
                 or (l.startswith("bms_request_failures_total") and not l.endswith(" 0"))]
        lat_sorted = sorted(lat)
        print(f"{mode}: slowest {[round(x) for x in lat_sorted[-5:]]}")
        print(f"{mode}: {n} injections: p50 {pct(lat, 50):.0f} ms, p99 {pct(lat, 99):.0f} ms, "
              f"max {max(lat):.0f} ms, min {min(lat):.0f} ms  ({' '.join(polls)})")
    finally:
        if procs:
            procs.stop()
        shutil.rmtree(work, ignore_errors=True)


def cycle(baud, seconds):
    work = tempfile.mkdtemp(prefix="cycle-")
    procs = None
    try:
        procs, cfg, _, admin, _ = setup(work, "cycle", baud=baud, n_devices=16, poll="10ms")
        check = subprocess.run([BIN, "check", "--config", cfg], capture_output=True, text=True)
        est = re.search(r"cycle ([0-9.]+) ms", check.stdout)

        def polls():
            m = urllib.request.urlopen(f"{admin}/metrics", timeout=5).read().decode()
            return sum(float(l.split()[-1]) for l in m.splitlines() if l.startswith("bms_polls_total"))

        time.sleep(3)
        p0, t0 = polls(), time.time()
        time.sleep(seconds)
        p1, t1 = polls(), time.time()
        measured = 16 * (t1 - t0) / (p1 - p0) * 1000
        # Wire bound: per 30-register read 8 + 65 bytes, two frame gaps and the
        # default inter-frame delay (3.5 characters, at least 1.75 ms), 10 bits a char.
        ch = 10 / baud
        gap = 0.00175 if baud > 19200 else 3.5 * ch
        ifd = max(3.5 * ch, 0.00175)
        bound = 16 * (73 * ch + 2 * gap + ifd) * 1000
        line = f"{baud} baud: measured cycle {measured:.1f} ms, wire bound {bound:.1f} ms ({measured / bound:.2f}x)"
        if not est:
            # Older `gateway check`: only "line occupancy at B baud: X %" of
            # the polls every 10 ms, i.e. a cycle of X % of 10 ms.
            occ = re.search(r"line occupancy at \d+ baud: ([0-9.]+) %", check.stdout)
            est = occ and re.match(r"(.*)", f"{float(occ.group(1)) / 100 * 10:.3f}")
        if est:
            e = float(est.group(1))
            line += f", gateway check {e:.1f} ms ({(e - measured) / measured * 100:+.1f} %)"
        print(line)
    finally:
        if procs:
            procs.stop()
        shutil.rmtree(work, ignore_errors=True)


def scattered(baud, seconds):
    work = tempfile.mkdtemp(prefix="scattered-")
    procs = None
    try:
        procs, cfg, _, admin, _ = setup(work, "cycle", baud=baud, n_devices=8, poll="10ms",
                                        profile="scattered-4")

        def counters():
            m = urllib.request.urlopen(f"{admin}/metrics", timeout=5).read().decode()
            get = lambda name: sum(float(l.split()[-1]) for l in m.splitlines() if l.startswith(name))
            return get("bms_polls_total"), get("bms_requests_total")

        time.sleep(3)
        (p0, r0), t0 = counters(), time.time()
        time.sleep(seconds)
        (p1, r1), t1 = counters(), time.time()
        per_poll = (t1 - t0) / (p1 - p0) * 1000
        print(f"{baud} baud: {(r1 - r0) / (p1 - p0):.1f} requests per poll, {per_poll:.1f} ms per poll")
    finally:
        if procs:
            procs.stop()
        shutil.rmtree(work, ignore_errors=True)


def main():
    if not os.access(BIN, os.X_OK):
        raise SystemExit(f"no gateway binary at {BIN}: cargo build --release -p gateway, or set GATEWAY_BIN")
    mode = sys.argv[1] if len(sys.argv) > 1 else "tcp"
    if mode in ("tcp", "rtu"):
        latency(mode, int(sys.argv[2]) if len(sys.argv) > 2 else 30)
    elif mode == "cycle":
        cycle(int(sys.argv[2]) if len(sys.argv) > 2 else 9600, int(sys.argv[3]) if len(sys.argv) > 3 else 20)
    elif mode == "scattered":
        scattered(int(sys.argv[2]) if len(sys.argv) > 2 else 9600, int(sys.argv[3]) if len(sys.argv) > 3 else 20)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
