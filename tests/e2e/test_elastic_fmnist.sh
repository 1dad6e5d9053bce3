#!/usr/bin/env bash
# End-to-end elastic training to the end: LeNet on Fashion-MNIST, 2 epochs,
# 3 worker pods x 1 rank, --lr_scaling=linear. Once uninterrupted; once
# with one pod killed in mid-run (--max-restarts 1 --min-np 2), the job
# going on on 2 pods from its newest checkpoint. The test accuracy of the
# two must be within 1 point, and the interrupted job must have trained
# every sample of each epoch exactly once (RINGTRAIN_TRACE_SAMPLES; steps
# the dead run trained after its last checkpoint do not count: the job
# trained them again). Batch 50: 150 and 100 both divide what is left of an
# epoch at any even step, so no sample is dropped at either size.
#   test_elastic_fmnist.sh WORKER DATA_DIR
set -euo pipefail
source "$(dirname "$0")/simpods.sh"
[ $# = 2 ] || e2e_fail "usage: $0 WORKER DATA_DIR"
worker=$1
data=$2
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    [ -e "$data/$f" ] || [ -e "$data/$f.gz" ] ||
        e2e_skip "Fashion-MNIST is not in $data (Debian: dataset-fashion-mnist)"
done
pods_require
pods_job 3 1
mkdir "$POD_DIR/trace"

launch() { # name, launcher options...; execs
    local name=$1
    shift
    exec >"$POD_DIR/$name.out" 2>"$POD_DIR/$name.err"
    pods_launcher --mpijob "$POD_DIR/job.yaml" --ssh-port $E2E_PORT --wait-timeout 30 \
        --output-dir "$POD_DIR/out" "$@" -- "$worker" --model=lenet --data_name=fashion_mnist \
        --data_dir="$data" --batch_size=50 --num_epochs=2 --num_warmup_batches=0 \
        --learning_rate=0.01 --lr_scaling=linear --num_intra_threads=1 --bind=none \
        --display_every=10 --eval --checkpoint_dir="$POD_DIR/ckpt-$name" --checkpoint_every=10
}
accuracy() { sed -nE 's/^Accuracy @ 1 = ([0-9.]+) .*/\1/p' "$POD_DIR/$1.out"; }

( launch straight ) || { cat "$POD_DIR/straight.err"; e2e_fail "the uninterrupted run failed"; }

( export RINGTRAIN_TRACE_SAMPLES=$POD_DIR/trace; launch killed --max-restarts 1 --min-np 2 ) &
launcher=$!
# In the middle: step 400 of 800 is where epoch 1 begins at 3 x 50.
pods_wait_for "$POD_DIR/killed.out" '^(3[5-9]|4[0-9])0	images/sec' 900 ||
    { cat "$POD_DIR/killed.err"; e2e_fail "the job never reached step 350"; }
pods_kill_worker 2
rc=0
wait $launcher || rc=$?
echo "--- killed run: launcher stderr (restart lines)"; grep 'ringtrain-launcher' "$POD_DIR/killed.err"
[ $rc = 0 ] || { cat "$POD_DIR/killed.err"; e2e_fail "the interrupted job exited $rc"; }
grep -q 'restart 1 of 1: .*relaunched with -np 2 ' "$POD_DIR/killed.err" ||
    e2e_fail "no relaunch on 2 pods"
a=$(accuracy straight)
b=$(accuracy killed)
echo "test accuracy: uninterrupted $a, one pod killed in mid-run $b"
python3 -c "import sys; sys.exit(abs($a - $b) > 0.01)" ||
    e2e_fail "accuracies differ by more than 1 point"
python3 "$(dirname "$0")/../tools/count_samples.py" "$POD_DIR/trace" --samples 60000 --epochs 2 ||
    e2e_fail "samples skipped or repeated"
echo "PASS"
