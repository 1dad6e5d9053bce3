#!/usr/bin/env bash
# Failures end the job fast and say why:
#  - a rank SIGKILLed during training (its peers inside a collective): every
#    rank and mpirun gone, the launcher exits non-zero within 30 s;
#  - a rank that stops (SIGSTOP): after --stall_timeout seconds rank 0 names
#    the rank and the bucket, the job is aborted, non-zero exit;
#  - non-finite loss: an error naming the step, non-zero exit.
set -uo pipefail
worker=$1
launcher=$2
tmp=$(mktemp -d /tmp/ringtrain-faults.XXXXXX)
trap 'pkill -KILL -f "$tmp/" 2>/dev/null; rm -rf "$tmp"' EXIT
# A private copy of the worker so leftover processes can be found by path.
cp "$worker" "$tmp/ringtrain-worker"
args=(--model=lenet --batch_size=32 --num_batches=200 --num_warmup_batches=0
      --num_intra_threads=1 --bind=none --display_every=1)
fail() { echo "FAIL: $*"; cat "$tmp/out"; exit 1; }
leftovers() { sleep 1; ! pgrep -f "$tmp/ringtrain-worker" >/dev/null || fail "ranks left running: $(pgrep -fa "$tmp/ringtrain-worker")"; }

# Dead rank: rank 2 of 3 is killed when it starts step 4.
t0=$(date +%s%N)
RINGTRAIN_FAULT=kill@4:2 timeout 60 "$launcher" --local -np 3 --oversubscribe -- \
    "$tmp/ringtrain-worker" "${args[@]}" >"$tmp/out" 2>&1
rc=$?
t=$(( ($(date +%s%N) - t0) / 1000000 ))
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "dead rank: launcher exit $rc"
[ $t -lt 30000 ] || fail "dead rank: took $t ms"
leftovers
echo "ok: dead rank: launcher exit $rc after $t ms, no rank left"

# Stalled rank: rank 1 of 2 stops at step 3; --stall_timeout=3.
t0=$(date +%s%N)
RINGTRAIN_FAULT=stop@3:1 timeout 60 "$launcher" --local -np 2 -- \
    "$tmp/ringtrain-worker" "${args[@]}" --stall_timeout=3 >"$tmp/out" 2>&1
rc=$?
t=$(( ($(date +%s%N) - t0) / 1000000 ))
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "stall: launcher exit $rc"
[ $t -lt 18000 ] || fail "stall: took $t ms"
grep -q "rank 0 waited .* for local rank 1 .* has not joined this allreduce" "$tmp/out" || fail "stall: missing rank not named"
grep -q "rank 0: step 3: gradient bucket [0-9]* of [0-9]* .*not completed within --stall_timeout=3 s" "$tmp/out" || fail "stall: bucket not named"
leftovers
echo "ok: stall: exit $rc after $t ms; $(grep -o 'gradient bucket [0-9]* of [0-9]*' "$tmp/out" | head -1) named"

# Non-finite: a learning rate that diverges.
timeout 60 mpirun -np 2 --oversubscribe "$tmp/ringtrain-worker" --model=mlp --batch_size=16 \
    --num_batches=20 --num_warmup_batches=0 --learning_rate=1e5 --bind=none \
    --num_intra_threads=1 >"$tmp/out" 2>&1
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "non-finite: exit $rc"
grep -Eq "non-finite (loss|gradients) .*at step [0-9]+" "$tmp/out" || fail "non-finite: no error naming the step"
leftovers
echo "ok: non-finite: exit $rc: $(grep -Eo 'non-finite (loss|gradients)[^;]*' "$tmp/out" | head -1)"
