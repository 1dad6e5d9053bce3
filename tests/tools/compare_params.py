#!/usr/bin/env python3
"""Compares two raw float32 parameter dumps (ringtrain-worker --dump_params).

  compare_params.py A B --max-rel 1e-4        exit 1 unless A and B agree
  compare_params.py A B --min-rel 1e-2        exit 1 unless A and B differ

The measure is max_i |a_i - b_i| / max_i |b_i| (the largest difference
relative to the largest parameter), printed either way.
"""
import array
import sys


def load(path):
    a = array.array("f")
    with open(path, "rb") as f:
        a.frombytes(f.read())
    return a


def main():
    if len(sys.argv) != 5 or sys.argv[3] not in ("--max-rel", "--min-rel"):
        sys.exit("usage: compare_params.py A B --max-rel|--min-rel X")
    a, b = load(sys.argv[1]), load(sys.argv[2])
    limit = float(sys.argv[4])
    if len(a) != len(b) or not a:
        print(f"sizes differ: {len(a)} vs {len(b)} floats")
        sys.exit(1)
    scale = max(abs(x) for x in b)
    diff = max(abs(x - y) for x, y in zip(a, b))
    rel = diff / scale
    print(f"{len(a)} parameters: max |a-b| = {diff:.3g}, max |b| = {scale:.3g}, relative = {rel:.3g}")
    ok = rel < limit if sys.argv[3] == "--max-rel" else rel > limit
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
