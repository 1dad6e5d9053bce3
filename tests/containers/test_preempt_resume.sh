#!/usr/bin/env bash
# A real job preempted and resumed from its volume: MANIFEST's claim
# ringtrain-checkpoints (mounted at /checkpoints in every worker) is bound to
# a directory of this machine, as a ReadWriteMany volume that outlives the
# job. Three runs of the same job, each on fresh containers:
#   1. uninterrupted, with --dump_params (the reference parameters);
#   2. with --checkpoint_dir on the claim, every container stopped at once
#      in mid-run with a 30 s grace period (`podman stop -t 30`: a Kueue
#      suspend, a node drain): every container must end 143 inside the grace
#      period, and the launcher's log name the step of the checkpoint that
#      is now on the claim;
#   3. the job created again (a Kueue resume): it must resume from that
#      checkpoint, exit 0, and end with parameters bitwise identical to 1.
#   test_preempt_resume.sh MANIFEST -- LAUNCHER_ARGS...
# LAUNCHER_ARGS: the launcher's args, its program's last; the test adds
# --dump_params and --checkpoint_dir under /checkpoints to the program's.
set -euo pipefail
source "$(dirname "$0")/pods.sh"

ctr_args "$0 MANIFEST -- LAUNCHER_ARGS..." "$@"
grace=30
ctr_prepare
ctr_job_dir
claim=$CTR_DIR/claim
mkdir -m 0777 "$claim"

# Run NAME [PROGRAM ARGS...]: the job on fresh containers with the extra
# program arguments; the launcher's log goes to $CTR_DIR/NAME.log when done.
run_job() {
    local name=$1
    shift
    ctr_job_down
    echo "=== $name"
    ctr_job_up "$CTR_MANIFEST" --claim "ringtrain-checkpoints=$claim" \
        --launcher-args "$(ctr_json "${CTR_PROGRAM[@]}" "$@")"
}
finish_job() {
    ctr_launcher_result 300 "$1" >"$CTR_DIR/$2.log"
    grep -Ev '^[0-9]+'$'\t''images/sec' "$CTR_DIR/$2.log" | tail -n 40
}

t0=$(date +%s%N)
run_job straight --dump_params=/checkpoints/straight.bin
finish_job "$t0" straight
[ "$CTR_LAUNCHER_RC" = 0 ] || ctr_fail "the uninterrupted run exited $CTR_LAUNCHER_RC"
[ -f "$claim/straight.bin" ] || ctr_fail "the uninterrupted run left no parameters on the claim"

t0=$(date +%s%N)
run_job stopped --checkpoint_dir=/checkpoints/ckpt
ctr_launcher_log_wait '^[0-9]+'$'\t''images/sec: ' 180
echo "--- stopping all ${#CTR_PODS[@]} containers at once: podman stop -t $grace (each)"
s0=$(date +%s%N)
ctr_stop $grace "${CTR_PODS[@]}" || true
s1=$(date +%s%N)
stop_ms=$(ctr_ms "$s0" "$s1")
finish_job "$t0" stopped
echo "--- all stopped in $stop_ms ms"
fails=()
for pod in "${CTR_PODS[@]}"; do
    code=$(ctr_exit_code "$pod")
    echo "$pod: exit $code"
    ctr_logs "$pod" | grep -E '^ringtrain-(init|launcher): (SIG|every|stopped)' || true
    [ "$code" = 143 ] || fails+=("$pod exited $code, not 143")
done
[ "$stop_ms" -lt $((grace * 1000)) ] || fails+=("stopping took $stop_ms ms: the grace period ran out")
line=$(grep -E '^Stopped: .*after step [0-9]+: checkpoint /checkpoints/ckpt/ckpt-[0-9]{12}\.rtck written' \
    "$CTR_DIR/stopped.log") || ctr_fail "the launcher's log has no stop line naming a checkpoint on the claim${fails[*]:+; also: ${fails[*]}}"
step=$(sed -E 's/.*after step ([0-9]+):.*/\1/' <<<"$line")
ckpt=$claim/ckpt/ckpt-$(printf %012d "$step").rtck
[ -f "$ckpt" ] || fails+=("no checkpoint of step $step on the claim ($ckpt)")
if [ ${#fails[@]} -gt 0 ]; then
    printf 'FAIL: %s\n' "${fails[@]}" >&2
    exit 1
fi

t0=$(date +%s%N)
run_job resumed --checkpoint_dir=/checkpoints/ckpt --dump_params=/checkpoints/resumed.bin
finish_job "$t0" resumed
[ "$CTR_LAUNCHER_RC" = 0 ] || ctr_fail "the resumed run exited $CTR_LAUNCHER_RC"
grep -q "^Resuming: .*/ckpt-$(printf %012d "$step").rtck (step $step)" "$CTR_DIR/resumed.log" ||
    ctr_fail "the job created again did not resume from step $step"
cmp "$claim/straight.bin" "$claim/resumed.bin" ||
    ctr_fail "the resumed job's final parameters differ from the uninterrupted job's"
echo "stopped in $stop_ms ms after step $step (every container 143), resumed from the claim, bitwise identical"
echo "PASS"
