#!/usr/bin/env python3
"""Counts the samples a job trained on, from RINGTRAIN_TRACE_SAMPLES files.

  count_samples.py DIR --samples N --epochs E [--dropped K]

Each rank of each run writes DIR/samples-<run>-<start>-<first>-<last>-r<rank>.txt,
one "step epoch index" line per sample (step 0-based). A run's steps at or
past the step the next run resumed from were lost with it (the next run
trained them again), so of each run only the lines whose step is below the
next run's start count. Then every index 0..N-1 must have been trained
exactly once in each epoch 0..E-1 (at most once, and all but at most K per
epoch, with --dropped K: the remainder an epoch drops when the global batch
does not divide it). Exit 1 otherwise, naming what is wrong.
"""
import argparse
import collections
import os
import re
import sys

NAME = re.compile(r"samples-(\d+)-(\d+)-(\d+)-(\d+)-r(\d+)\.txt$")


def runs_of(directory):
    """{run: (start, [paths])}, runs in order."""
    runs = {}
    for name in sorted(os.listdir(directory)):
        m = NAME.match(name)
        if not m:
            continue
        run, start = int(m.group(1)), int(m.group(2))
        runs.setdefault(run, (start, []))[1].append(os.path.join(directory, name))
    return dict(sorted(runs.items()))


def count(directory):
    """{epoch: Counter(index)} of the samples that count, and a summary."""
    runs = runs_of(directory)
    order = list(runs)
    seen = collections.defaultdict(collections.Counter)
    summary = []
    for i, run in enumerate(order):
        start, paths = runs[run]
        end = runs[order[i + 1]][0] if i + 1 < len(order) else None
        kept = lost = 0
        for path in paths:
            with open(path) as f:
                for line in f:
                    step, epoch, index = (int(x) for x in line.split())
                    if end is not None and step >= end:
                        lost += 1
                        continue
                    seen[epoch][index] += 1
                    kept += 1
        summary.append(f"run {i + 1}: from step {start}, {kept} samples kept, {lost} lost")
    return seen, summary


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--samples", type=int, required=True)
    ap.add_argument("--epochs", type=int, required=True)
    ap.add_argument("--dropped", type=int, default=0)
    a = ap.parse_args()
    seen, summary = count(a.dir)
    print("\n".join(summary))
    bad = []
    for epoch in range(a.epochs):
        c = seen.get(epoch, collections.Counter())
        twice = [i for i, n in c.items() if n > 1]
        missing = a.samples - len([i for i in c if 0 <= i < a.samples])
        outside = [i for i in c if not 0 <= i < a.samples]
        print(f"epoch {epoch}: {sum(c.values())} samples trained, {len(c)} distinct, "
              f"{len(twice)} more than once, {missing} never")
        if twice or outside or missing > a.dropped:
            bad.append(f"epoch {epoch}: {len(twice)} repeated (e.g. {twice[:5]}), "
                       f"{missing} missing, {len(outside)} out of range")
    extra = sorted(e for e in seen if not 0 <= e < a.epochs)
    if extra:
        bad.append(f"samples of epochs beyond {a.epochs - 1}: {extra}")
    for line in bad:
        print("FAIL:", line)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
