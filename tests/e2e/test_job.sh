#!/usr/bin/env bash
# End-to-end: a launcher pod and 2 worker pods (2 slots each). The launcher
# reads a v2beta1 MPIJob, waits for the workers' sshd (worker 1's starts a
# moment late), then runs PROGRAM on all 4 slots over TCP across the pods.
# Passes when the launcher exits 0 and its output matches every --expect
# regex (@JOB@ stands for the job name).
#   test_job.sh [--expect REGEX]... -- PROGRAM [ARGS...]
set -euo pipefail
source "$(dirname "$0")/simpods.sh"

expects=()
while [ $# -gt 0 ]; do
    case "$1" in
    --expect) expects+=("$2"); shift 2 ;;
    --) shift; break ;;
    *) e2e_fail "usage: $0 [--expect REGEX]... -- PROGRAM [ARGS...]" ;;
    esac
done
[ $# -gt 0 ] || e2e_fail "no program given"

pods_require
ssh_dir_before=$(ls -la /root/.ssh 2>&1 || true)
job=$(e2e_job_name)
ns=e2e
pods_up "$job" "$ns" 2 "1"
pods_mpijob "$job" "$ns" 2 2 >"$POD_DIR/job.yaml"

t0=$(date +%s%N)
( sleep 1.5; pods_start_sshd 1 ) &
rc=0
( pods_launcher --mpijob "$POD_DIR/job.yaml" --ssh-port $E2E_PORT --wait-timeout 30 \
    --output-dir "$POD_DIR/out" -- "$@" ) >"$POD_DIR/stdout" 2>"$POD_DIR/stderr" || rc=$?
t1=$(date +%s%N)
echo "--- launcher stdout"; cat "$POD_DIR/stdout"
echo "--- launcher stderr"; cat "$POD_DIR/stderr"
echo "--- exit $rc after $(ms $t0 $t1) ms"

[ $rc = 0 ] || e2e_fail "launcher exited $rc"
grep -q "all 2 hosts ready" "$POD_DIR/stderr" || e2e_fail "the launcher did not report readiness"
for re in "${expects[@]}"; do
    re=${re//@JOB@/$job}
    grep -Eq -- "$re" "$POD_DIR/stdout" || e2e_fail "output does not match: $re"
done
# What the operator would have mounted, written by the launcher.
diff <(printf '%s\n' "$job-worker-0.$job.$ns.svc slots=2" "$job-worker-1.$job.$ns.svc slots=2") \
    "$POD_DIR/out/hostfile" || e2e_fail "hostfile differs"
diff <(printf '%s\n' '#!/bin/sh' "echo $job-worker-0.$job.$ns.svc" "echo $job-worker-1.$job.$ns.svc") \
    "$POD_DIR/out/discover_hosts.sh" || e2e_fail "discover_hosts.sh differs"
[ "$(ls -la /root/.ssh 2>&1 || true)" = "$ssh_dir_before" ] || e2e_fail "/root/.ssh was changed"

# Cleanup leaves nothing behind.
dir=$POD_DIR
pods_cleanup
[ ! -e "$dir" ] || e2e_fail "$dir left behind"
if pgrep -f -- "$dir" >/dev/null; then e2e_fail "processes of the run are left: $(pgrep -af -- "$dir")"; fi
echo "PASS"
