#!/usr/bin/env bash
# End-to-end preemption: ringtrain-worker across 2 worker pods, SIGTERM to
# the launcher in mid-run (as Kubernetes stops a job's pods). The launcher
# asks every rank to stop (SIGUSR1 through mpirun); every rank must finish
# its step, agree on it, and exit 143, the launcher 143, well within
# Kubernetes' 30 s grace period; the stop line names the checkpoint's step.
# Running the same command again resumes there and ends with parameters
# bitwise identical to an uninterrupted run.
#   test_elastic_sigterm.sh WORKER [ARGS...]
set -euo pipefail
source "$(dirname "$0")/simpods.sh"
[ $# -gt 0 ] || e2e_fail "usage: $0 WORKER [ARGS...]"
pods_require
pods_job 2 1
pods_rc_wrapper
mkdir "$POD_DIR/rc" "$POD_DIR/ckpt"

# The launcher of a run named $1 (it execs: $! of "launch ... &" is the
# launcher's own pid).
launch() {
    local name=$1
    shift
    exec >"$POD_DIR/$name.out" 2>"$POD_DIR/$name.err"
    pods_launcher --mpijob "$POD_DIR/job.yaml" --ssh-port $E2E_PORT --wait-timeout 30 \
        --output-dir "$POD_DIR/out" -- "$POD_DIR/record-rc" "$POD_DIR/rc" "$@"
}

( launch straight "$@" --dump_params="$POD_DIR/straight.bin" ) ||
    { cat "$POD_DIR/straight.err"; e2e_fail "the uninterrupted run failed"; }
rm -f "$POD_DIR"/rc/*

( launch stopped "$@" --checkpoint_dir="$POD_DIR/ckpt" ) &
launcher=$!
pods_wait_for "$POD_DIR/stopped.out" '^[0-9]+	images/sec' 120 ||
    { cat "$POD_DIR/stopped.err"; e2e_fail "the job never trained"; }
t0=$(date +%s%N)
kill -TERM $launcher
rc=0
wait $launcher || rc=$?
t1=$(date +%s%N)
echo "--- stopped run: stdout"; cat "$POD_DIR/stopped.out"
echo "--- stderr"; cat "$POD_DIR/stopped.err"
took=$(ms $t0 $t1)
echo "--- SIGTERM to launcher exit: $took ms; launcher exit $rc; ranks: $(cat "$POD_DIR"/rc/* | tr '\n' ' ')"
[ $rc = 143 ] || e2e_fail "the launcher exited $rc, not 143"
[ "$(ls "$POD_DIR"/rc | wc -l)" = 2 ] && [ "$(cat "$POD_DIR"/rc/* | sort -u)" = 143 ] ||
    e2e_fail "not every rank exited 143"
[ "$took" -lt 30000 ] || e2e_fail "took over Kubernetes' 30 s grace period"
line=$(grep -E '^Stopped: .*after step [0-9]+: checkpoint .*/ckpt-[0-9]{12}\.rtck written' \
    "$POD_DIR/stopped.out") || e2e_fail "no stop line naming the checkpoint"
step=$(sed -E 's/.*after step ([0-9]+):.*/\1/' <<<"$line")
[ -f "$POD_DIR/ckpt/ckpt-$(printf %012d "$step").rtck" ] || e2e_fail "no checkpoint of step $step"
pgrep -f -- "$POD_DIR/record-rc" >/dev/null && e2e_fail "ranks left: $(pgrep -af -- "$POD_DIR/record-rc")"

( launch resumed "$@" --checkpoint_dir="$POD_DIR/ckpt" --dump_params="$POD_DIR/resumed.bin" ) ||
    { cat "$POD_DIR/resumed.err"; e2e_fail "the resumed run failed"; }
grep -q "^Resuming: .*ckpt-$(printf %012d "$step").rtck (step $step)" "$POD_DIR/resumed.out" ||
    { cat "$POD_DIR/resumed.out"; e2e_fail "the run did not resume from step $step"; }
cmp "$POD_DIR/straight.bin" "$POD_DIR/resumed.bin" ||
    e2e_fail "final parameters differ from the uninterrupted run"
echo "stopped after step $step in $took ms (every rank 143), resumed there, bitwise identical"
echo "PASS"
