#!/usr/bin/env bash
# A worker that never comes up: its pod is never scheduled (no container, no
# IP, so its Service name does not resolve), and the launcher is created at
# once (launcherCreationPolicy AtStartup; with WaitForWorkersReady the
# controller would not create it at all). The launcher, given
# --wait-timeout SECONDS, must fail at that deadline (exit 1, not before it,
# at most 3 s after it) naming that worker, and only that one, as not ready.
#   test_missing_worker.sh MANIFEST SECONDS -- PROGRAM...
set -euo pipefail
source "$(dirname "$0")/pods.sh"

ctr_args "$0 MANIFEST SECONDS -- PROGRAM..." "$@"
wait_s=${CTR_NUMBER:-6}
ctr_prepare
ctr_job_create "$CTR_MANIFEST" --policy AtStartup --pending 1 \
    --launcher-args "$(ctr_json --wait-timeout "$wait_s" -- "${CTR_PROGRAM[@]}")"
missing=$JOB-worker-1.$JOB.$NS.svc
ctr_workers_start
t0=$(date +%s%N)
ctr_launcher_start
ctr_launcher_result $((wait_s + 60)) "$t0"
log=$CTR_LAUNCHER_LOG
[ "$CTR_LAUNCHER_RC" = 1 ] || ctr_fail "the launcher exited $CTR_LAUNCHER_RC, not 1"
line=$(grep 'error: readiness:' <<<"$log" || true)
[ -n "$line" ] || ctr_fail "the launcher did not report readiness"
grep -Fq "1 of $WORKERS hosts not ready on port 2222 after $wait_s s: $missing (no DNS)" <<<"$line" ||
    ctr_fail "the launcher did not name $missing (no DNS) as the one missing host: $line"
grep -Fq "$JOB-worker-0." <<<"$line" && ctr_fail "the launcher named the worker that was up: $line"
# The launcher container's own life: the deadline and little more.
elapsed=$(ctr_run_ms "$CTR_LAUNCHER")
echo "the launcher's container ran $elapsed ms (deadline $wait_s s)"
[ "$elapsed" -ge $((wait_s * 1000)) ] || ctr_fail "the launcher gave up after $elapsed ms, before its deadline"
[ "$elapsed" -le $((wait_s * 1000 + 3000)) ] || ctr_fail "the launcher failed $elapsed ms after it started, long after its deadline"
echo "PASS"
