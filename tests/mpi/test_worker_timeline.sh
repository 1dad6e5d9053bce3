#!/usr/bin/env bash
# --timeline: Chrome trace JSON with every rank's layers and allreduces;
# with overlap on, communication spans overlap backward spans; with
# --nooverlap none do (the control that shows the check can fail).
set -euo pipefail
worker=$1
check="$(dirname "$0")/../tools/check_timeline.py"
tmp=$(mktemp -d /tmp/ringtrain-timeline.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
args=(--model=lenet --batch_size=32 --num_batches=4 --num_warmup_batches=1
      --num_intra_threads=1 --bind=none --bucket_mb=1)
# lenet has 9 nodes; 5 steps are recorded (warm-up included).
mpirun -np 2 --oversubscribe "$worker" "${args[@]}" --timeline="$tmp/on.json" >"$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }
python3 "$check" "$tmp/on.json" 2 9 5 --overlap
mpirun -np 2 --oversubscribe "$worker" "${args[@]}" --nooverlap --timeline="$tmp/off.json" >"$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }
python3 "$check" "$tmp/off.json" 2 9 5 --no-overlap
