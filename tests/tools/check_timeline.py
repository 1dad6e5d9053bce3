#!/usr/bin/env python3
"""Checks a ringtrain-worker --timeline file: Chrome trace structure, one
process per rank with a compute and a communication thread, every layer's
forward and backward per step, allreduce spans carrying bucket, bytes and
algorithm; then whether communication spans overlap backward spans.

  check_timeline.py FILE RANKS NODES STEPS --overlap|--no-overlap
"""
import json
import sys


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def main():
    path, ranks, nodes, steps, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    doc = json.load(open(path))
    events = doc.get("traceEvents")
    if not isinstance(events, list) or not events:
        fail("no traceEvents list")
    names = {}
    spans = []
    for e in events:
        for key in ("name", "ph", "pid"):
            if key not in e:
                fail(f"event without {key}: {e}")
        if e["ph"] == "M":
            names[(e["pid"], e.get("tid"), e["name"])] = e["args"]["name"]
            continue
        for key in ("tid", "ts", "cat", "args"):
            if key not in e:
                fail(f"event without {key}: {e}")
        if e["ph"] == "X":
            if e.get("dur", -1) < 0:
                fail(f"span without a duration: {e}")
        elif e["ph"] != "i":
            fail(f"unexpected phase {e['ph']}")
        spans.append(e)
    for r in range(ranks):
        if names.get((r, None, "process_name")) != f"rank {r}":
            fail(f"rank {r} has no process_name")
        if names.get((r, 0, "thread_name")) != "compute" or names.get((r, 1, "thread_name")) != "communication":
            fail(f"rank {r} lacks compute/communication thread names")
        for cat in ("forward", "backward"):
            n = sum(1 for e in spans if e["pid"] == r and e["cat"] == cat)
            if n != nodes * steps:
                fail(f"rank {r}: {n} {cat} spans, expected {nodes} x {steps}")
        ar = [e for e in spans if e["pid"] == r and e["cat"] == "allreduce"]
        if not ar or any(e["tid"] != 1 for e in ar):
            fail(f"rank {r}: allreduce spans missing or not on the communication thread")
        for e in ar:
            a = e["args"]
            if not (a.get("bytes", 0) > 0 and a.get("algorithm") and a.get("bucket", 0) >= 1):
                fail(f"allreduce span without bytes/algorithm/bucket: {e}")
    overlaps = 0
    for r in range(ranks):
        bwd = [e for e in spans if e["pid"] == r and e["cat"] == "backward"]
        for a in (e for e in spans if e["pid"] == r and e["cat"] == "allreduce"):
            for b in bwd:
                if b["args"]["step"] == a["args"]["step"] and \
                        a["ts"] < b["ts"] + b["dur"] and b["ts"] < a["ts"] + a["dur"]:
                    overlaps += 1
    print(f"{len(spans)} spans over {ranks} ranks; allreduce/backward overlaps: {overlaps}")
    if mode == "--overlap" and overlaps == 0:
        fail("no allreduce span overlaps a backward span")
    if mode == "--no-overlap" and overlaps != 0:
        fail("allreduce spans overlap backward spans with overlap off")


if __name__ == "__main__":
    main()
