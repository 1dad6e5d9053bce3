#!/usr/bin/env bash
# Preemption and elasticity in the worker itself (the launcher's side is in
# tests/e2e and launcher-restart):
#  - a rank SIGTERMed at step 13: every rank stops after the same step and
#    exits 143, the stop line names the step's checkpoint, and running the
#    same command again resumes there and ends bitwise identical to an
#    uninterrupted run (also with the writes in the background at every step);
#  - a checkpoint of 3 ranks resumed on 2 and then on 3 again: a small
#    Fashion-MNIST-format set, 2 epochs, each sample of each epoch trained
#    exactly once (RINGTRAIN_TRACE_SAMPLES counts them), the learning rate
#    following the ranks (--lr_scaling=linear);
#  - bad input: the newest checkpoint of another model, or of another
#    --seed: exit 2 naming it.
set -uo pipefail
worker=$1
tmp=$(mktemp -d /tmp/ringtrain-elastic.XXXXXX)
trap 'pkill -KILL -f "$tmp/" 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
# Each rank's exit status, into $tmp/rc.<rank>.<pid>.
cat >"$tmp/record-rc" <<'EOF'
#!/usr/bin/env bash
out=$1; shift
"$@"
rc=$?
echo $rc >"$out/rc.${OMPI_COMM_WORLD_RANK:-x}.$$"
exit $rc
EOF
chmod +x "$tmp/record-rc"
args=(--model=mlp --batch_size=16 --num_batches=20 --num_warmup_batches=2
      --num_intra_threads=1 --bind=none --display_every=5)
run() { timeout 120 mpirun -np "$1" --oversubscribe "$tmp/record-rc" "$tmp" "$worker" "${@:2}"; }

run 2 "${args[@]}" --dump_params="$tmp/straight.bin" >"$tmp/straight.log" 2>&1 ||
    { cat "$tmp/straight.log"; fail "uninterrupted run"; }

stop_and_resume() { # name, extra args...
    local name=$1 rc; shift
    rm -f "$tmp"/rc.*
    RINGTRAIN_FAULT=term@13:1 run 2 "${args[@]}" --checkpoint_dir="$tmp/$name" "$@" \
        >"$tmp/$name.stop.log" 2>&1
    rc=$?
    [ $rc = 143 ] || { cat "$tmp/$name.stop.log"; fail "$name: mpirun exited $rc after the SIGTERM, not 143"; }
    [ "$(cat "$tmp"/rc.* | sort -u)" = 143 ] && [ "$(ls "$tmp"/rc.* | wc -l)" = 2 ] ||
        { head "$tmp"/rc.*; fail "$name: not every rank exited 143"; }
    grep -q "^Stopped: .*after step 13: checkpoint .*/ckpt-000000000013.rtck written" \
        "$tmp/$name.stop.log" || { cat "$tmp/$name.stop.log"; fail "$name: no stop line naming step 13"; }
    [ "$(grep -c '^Stopped:' "$tmp/$name.stop.log")" = 1 ] || fail "$name: more than one stop line"
    run 2 "${args[@]}" --checkpoint_dir="$tmp/$name" "$@" --dump_params="$tmp/$name.bin" \
        >"$tmp/$name.log" 2>&1 || { cat "$tmp/$name.log"; fail "$name: resumed run"; }
    grep -q "^Resuming: .*ckpt-000000000013.rtck (step 13)" "$tmp/$name.log" ||
        { cat "$tmp/$name.log"; fail "$name: did not resume from step 13"; }
    cmp "$tmp/straight.bin" "$tmp/$name.bin" || fail "$name: parameters differ from the uninterrupted run"
    echo "ok: $name: every rank exited 143 at step 13, resumed there, bitwise identical"
}
stop_and_resume stop
stop_and_resume every-step --checkpoint_every=1

# A small training set in Fashion-MNIST's format: 600 images of 28x28.
python3 - "$tmp/data" <<'PY'
import os, struct, sys, random
d = sys.argv[1]
os.makedirs(d)
random.seed(7)
n = 600
labels = bytes(random.randrange(10) for _ in range(n))
pixels = bytes(random.randrange(256) for _ in range(n * 784))
with open(os.path.join(d, "train-images-idx3-ubyte"), "wb") as f:
    f.write(struct.pack(">IIII", 0x803, n, 28, 28) + pixels)
with open(os.path.join(d, "train-labels-idx1-ubyte"), "wb") as f:
    f.write(struct.pack(">II", 0x801, n) + labels)
PY
mkdir "$tmp/trace"
fm=(--model=lenet --data_name=fashion_mnist --data_dir="$tmp/data" --batch_size=50
    --num_epochs=2 --num_warmup_batches=0 --num_intra_threads=1 --bind=none
    --display_every=4 --lr_scaling=linear --checkpoint_dir="$tmp/fm" --checkpoint_every=2)
export RINGTRAIN_TRACE_SAMPLES=$tmp/trace
# 3 x 50 (4 steps an epoch), stopped after step 2; 2 x 50 (6 an epoch)
# from sample 300, stopped after step 8 (epoch 1, sample 300); 3 x 50 to
# the end.
RINGTRAIN_FAULT=term@2:2 run 3 "${fm[@]}" >"$tmp/fm1.log" 2>&1
[ $? = 143 ] || { cat "$tmp/fm1.log"; fail "fashion: first stop"; }
RINGTRAIN_FAULT=term@8:0 run 2 "${fm[@]}" >"$tmp/fm2.log" 2>&1
[ $? = 143 ] || { cat "$tmp/fm2.log"; fail "fashion: second stop"; }
run 3 "${fm[@]}" >"$tmp/fm3.log" 2>&1 || { cat "$tmp/fm3.log"; fail "fashion: last run"; }
unset RINGTRAIN_TRACE_SAMPLES
grep -q "^Resharding: .*written by 3 ranks x batch 50, this run is 2 x 50: epoch 0 continues at sample 300 of 600" \
    "$tmp/fm2.log" || { cat "$tmp/fm2.log"; fail "fashion: no resharding line for 3 -> 2"; }
grep -q "^Resharding: .*written by 2 ranks x batch 50, this run is 3 x 50: epoch 1 continues at sample 300 of 600" \
    "$tmp/fm3.log" || { cat "$tmp/fm3.log"; fail "fashion: no resharding line for 2 -> 3"; }
grep -q "learning rate 0.02 = 0.01 x 2 ranks" "$tmp/fm2.log" || fail "fashion: learning rate not scaled to 2 ranks"
python3 "$(dirname "$0")/../tools/count_samples.py" "$tmp/trace" --samples 600 --epochs 2 ||
    fail "fashion: samples skipped or repeated (see above)"
echo "ok: 3 -> 2 -> 3 ranks over 2 epochs: every sample of each epoch once"

# Bad input: another model's checkpoint newest, or another seed.
mkdir "$tmp/other"
run 2 "${args[@]}" --num_batches=2 --checkpoint_dir="$tmp/other" >/dev/null 2>&1 || fail "mlp run"
out=$(run 2 --model=lenet --batch_size=16 --num_batches=2 --num_intra_threads=1 --bind=none \
    --checkpoint_dir="$tmp/other" 2>&1)
rc=$?
[ $rc = 2 ] && grep -q "ringtrain-worker: error: --checkpoint_dir=$tmp/other: .*ckpt-000000000004.rtck: written for another model" <<<"$out" ||
    { echo "$out"; fail "another model's checkpoint: exit $rc"; }
out=$(run 2 "${args[@]}" --num_batches=4 --seed=99 --checkpoint_dir="$tmp/other" 2>&1)
rc=$?
[ $rc = 2 ] && grep -q "ckpt-000000000004.rtck: written with --seed=1234, this run has --seed=99" <<<"$out" ||
    { echo "$out"; fail "another seed's checkpoint: exit $rc"; }
echo "ok: another model's or seed's checkpoint: exit 2 naming it"
echo "all elastic worker checks passed"
