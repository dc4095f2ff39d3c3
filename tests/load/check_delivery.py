#!/usr/bin/env python3
"""Checks at the broker that every message of a load run arrived.

Reads `mosquitto_sub -v` output (one "topic payload" line per message) and
the gateway's last seq, and prints:

- delivered: distinct seqs received out of 1..=last (every message the
  gateway numbers, telemetry, states and events alike, carries one seq from
  one counter, so a missing seq is a lost message; `status` is left out, its
  seq is not its own);
- duplicates (a seq seen twice: allowed, consumers drop them);
- telemetry messages and values, and values per message;
- with churn (every register changes at every read), per device the polls
  whose values are missing between two messages (the first register grows
  by one per read).

  check_delivery.py SUB_OUTPUT LAST_SEQ [POINTS_PER_DEVICE=30]

Exit status 0 when nothing is missing, 1 otherwise.
"""
import json
import sys


def main() -> int:
    path, last = sys.argv[1], int(sys.argv[2])
    per = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    seen = set()
    dups = 0
    telemetry = values = short = unparsed = 0
    first_reg = {}
    poll_gaps = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            topic, _, payload = line.rstrip("\n").partition(" ")
            if topic.endswith("/status"):
                continue
            try:
                msg = json.loads(payload)
            except ValueError:
                unparsed += 1
                continue
            seq = msg.get("seq")
            if not isinstance(seq, int):
                unparsed += 1
                continue
            if seq in seen:
                dups += 1
                continue
            seen.add(seq)
            if topic.endswith("/telemetry"):
                telemetry += 1
                points = msg.get("points", {})
                values += len(points)
                if len(points) < per:
                    short += 1
                dev = msg.get("device")
                r0 = points.get("r00")
                if isinstance(r0, int):
                    prev = first_reg.get(dev)
                    if prev is not None:
                        step = (r0 - prev[0]) % 65536
                        # Messages can arrive out of seq order only across a
                        # reconnection; count forward steps only.
                        if seq > prev[1] and step > 1:
                            poll_gaps += step - 1
                    if prev is None or seq > prev[1]:
                        first_reg[dev] = (r0, seq)
    expected = set(range(1, last + 1))
    missing = len(expected - seen)
    got = len(expected & seen)
    pct = 100.0 * got / last if last else 100.0
    print(
        f"broker check: delivered {got}/{last} seqs = {pct:.3f} %, missing {missing}, "
        f"duplicates {dups}, unparsed {unparsed}"
    )
    print(
        f"broker check: telemetry {telemetry} messages, {values} values "
        f"({values / telemetry if telemetry else 0:.1f}/message, {short} with fewer than {per}); "
        f"devices {len(first_reg)}, polls missing between messages {poll_gaps}"
    )
    return 0 if missing == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
