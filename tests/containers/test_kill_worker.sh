#!/usr/bin/env bash
# A worker container SIGKILLed mid-run (a node lost, an OOM kill of the pod):
# the launcher must exit non-zero within 30 s, the surviving worker must be
# left with no rank of the job, and once the controller has applied
# cleanPodPolicy Running (SIGTERM to the running pods) no container of the
# job may be left running.
#   test_kill_worker.sh MANIFEST -- PROGRAM...   (a long run)
set -euo pipefail
source "$(dirname "$0")/pods.sh"

ctr_args "$0 MANIFEST -- PROGRAM..." "$@"
ctr_prepare
ctr_job_up "$CTR_MANIFEST" --launcher-args "$(ctr_json -- "${CTR_PROGRAM[@]}")"
ctr_launcher_log_wait 'images/sec: '
victim=$JOB-worker-$((WORKERS - 1))
survivor=$JOB-worker-0

echo "--- killing $victim's container (podman kill -s KILL) while the job trains"
t0=$(date +%s%N)
"${CTR_PODMAN[@]}" kill -s KILL "$(ctr_name "$victim")" >/dev/null
ctr_launcher_result 60 "$t0"
[ "$CTR_LAUNCHER_RC" != 124 ] || ctr_fail "the launcher was still running 60 s after $victim was killed"
[ "$CTR_LAUNCHER_RC" != 0 ] || ctr_fail "the launcher exited 0 although $victim was killed"
[ "$CTR_LAUNCHER_MS" -le 30000 ] || ctr_fail "the launcher took over 30 s to fail"

# The survivor's ranks end with the job (Open MPI's orted stops them).
left=
for _ in $(seq 50); do
    left=$(ctr_processes "$survivor" | grep ' ringtrain-worker ' || true)
    [ -z "$left" ] && break
    sleep 0.2
done
[ -z "$left" ] || ctr_fail "ranks still running in $survivor 10 s after the launcher ended: $left"
echo "no rank left in $survivor"

t0=$(date +%s%N)
ctr_clean_pods 30
t1=$(date +%s%N)
echo "cleanPodPolicy Running: stopped in $(ctr_ms "$t0" "$t1") ms; $survivor exited $(ctr_exit_code "$survivor")"
[ -z "$(ctr_running)" ] || ctr_fail "containers still running: $(ctr_running)"
[ "$(ctr_exit_code "$survivor")" = 143 ] || ctr_fail "$survivor did not end on SIGTERM"
echo "PASS"
