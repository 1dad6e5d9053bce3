#!/usr/bin/env bash
# Checkpoints resume exactly: 20 steps straight vs a run whose rank 1 is
# killed (SIGKILL) at step 13 and then restarted, resuming from the step-10
# checkpoint: final parameters bitwise identical (same ranks and threads).
# Then a bit-flipped and a truncated step-10 checkpoint are refused (named
# in a warning) and the step-5 one is used, again to the same parameters.
# Last, retention beside files that are not this run's checkpoints.
set -uo pipefail
worker=$1
tmp=$(mktemp -d /tmp/ringtrain-ckpt.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
args=(--model=mlp --batch_size=16 --num_batches=20 --num_warmup_batches=2
      --num_intra_threads=1 --bind=none --display_every=5)
run() { mpirun -np 2 --oversubscribe "$worker" "${args[@]}" "$@"; }
fail() { echo "FAIL: $*"; exit 1; }

run --dump_params="$tmp/straight.bin" >"$tmp/straight.log" 2>&1 || { cat "$tmp/straight.log"; fail "straight run"; }

crash() { # dir: a run killed at step 13 leaves checkpoints 5 and 10
    RINGTRAIN_FAULT=kill@13:1 run --checkpoint_dir="$1" --checkpoint_every=5 >"$tmp/crash.log" 2>&1
    local rc=$?
    [ $rc -ne 0 ] || { cat "$tmp/crash.log"; fail "the killed run exited 0"; }
    [ "$(ls "$1")" = "$(printf 'ckpt-000000000005.rtck\nckpt-000000000010.rtck')" ] ||
        { ls -la "$1"; fail "expected checkpoints 5 and 10 after the crash"; }
}
resume() { # dir expected-step name
    run --checkpoint_dir="$1" --checkpoint_every=5 --dump_params="$tmp/$3.bin" >"$tmp/$3.log" 2>&1 ||
        { cat "$tmp/$3.log"; fail "$3: resumed run failed"; }
    grep -q "^Resuming: .*ckpt-$(printf %012d "$2").rtck (step $2)" "$tmp/$3.log" ||
        { cat "$tmp/$3.log"; fail "$3: did not resume from step $2"; }
    cmp "$tmp/straight.bin" "$tmp/$3.bin" || fail "$3: parameters differ from the uninterrupted run"
    echo "ok: $3: resumed from step $2, final parameters bitwise identical"
}

crash "$tmp/a"
resume "$tmp/a" 10 killed

crash "$tmp/b"
# Flip one bit in the middle of the payload.
python3 - "$tmp/b/ckpt-000000000010.rtck" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x10
open(p, "wb").write(b)
PY
resume "$tmp/b" 5 bitflip
grep -q "skipping checkpoint .*ckpt-000000000010.rtck: payload checksum mismatch" "$tmp/bitflip.log" ||
    { cat "$tmp/bitflip.log"; fail "no warning naming the corrupt checkpoint"; }

crash "$tmp/c"
truncate -s -1000 "$tmp/c/ckpt-000000000010.rtck"
resume "$tmp/c" 5 truncated
grep -q "skipping checkpoint .*ckpt-000000000010.rtck: truncated" "$tmp/truncated.log" ||
    { cat "$tmp/truncated.log"; fail "no warning naming the truncated checkpoint"; }

# Retention counts only this run's checkpoints: garbage under a checkpoint
# name at a higher step must neither push out the new checkpoint nor be
# removed; the next run resumes from the new one. A FIFO under a checkpoint
# name is skipped with a warning naming it, not blocked on.
mkdir "$tmp/d"
head -c 4096 /dev/urandom >"$tmp/d/ckpt-999999999999.rtck"
short=(--num_batches=4 --num_warmup_batches=0)
timeout 60 mpirun -np 2 --oversubscribe "$worker" "${args[@]}" "${short[@]}" \
    --checkpoint_dir="$tmp/d" --checkpoints_to_keep=1 >"$tmp/keep.log" 2>&1 ||
    { cat "$tmp/keep.log"; fail "keep=1 run failed"; }
[ -f "$tmp/d/ckpt-000000000004.rtck" ] ||
    { ls -la "$tmp/d"; fail "keep=1: the new checkpoint was deleted at once"; }
[ -f "$tmp/d/ckpt-999999999999.rtck" ] || fail "keep=1: a file that is not this run's was removed"
mkfifo "$tmp/d/ckpt-000000000100.rtck"
timeout 60 mpirun -np 2 --oversubscribe "$worker" "${args[@]}" --num_batches=6 \
    --num_warmup_batches=0 --checkpoint_dir="$tmp/d" --checkpoints_to_keep=1 \
    >"$tmp/keep2.log" 2>&1
rc=$?
[ $rc -eq 0 ] || { cat "$tmp/keep2.log"; fail "resume beside garbage and a FIFO: exit $rc (124: blocked)"; }
grep -q "^Resuming: .*ckpt-000000000004.rtck (step 4)" "$tmp/keep2.log" ||
    { cat "$tmp/keep2.log"; fail "keep=1: the next run did not resume from step 4"; }
grep -q "skipping checkpoint .*ckpt-000000000100.rtck: is a FIFO" "$tmp/keep2.log" ||
    { cat "$tmp/keep2.log"; fail "no warning naming the FIFO"; }
[ -f "$tmp/d/ckpt-000000000006.rtck" ] && [ ! -e "$tmp/d/ckpt-000000000004.rtck" ] ||
    { ls -la "$tmp/d"; fail "keep=1: expected only step 6 of this run's checkpoints"; }
echo "ok: retention: garbage and a FIFO left alone, the new checkpoint kept and resumed from"
echo "all checkpoint checks passed"
