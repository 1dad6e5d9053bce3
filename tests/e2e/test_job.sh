#!/usr/bin/env bash
# End-to-end: a launcher pod and worker pods (default 2 workers x 2 slots).
# The launcher reads a v2beta1 MPIJob, waits for the workers' sshd (the last
# worker's starts a moment late), then runs PROGRAM on every slot over TCP
# across the pods. Passes when the launcher exits 0, its output matches
# every --expect regex (@JOB@ stands for the job name), and the hostfile and
# discover_hosts.sh are what the operator would write.
#   test_job.sh [--workers N] [--slots S] [--launcher-as-worker]
#               [--expect REGEX]... -- PROGRAM [ARGS...]
set -euo pipefail
source "$(dirname "$0")/simpods.sh"

expects=()
workers=2
slots=2
as_worker=false
while [ $# -gt 0 ]; do
    case "$1" in
    --expect) expects+=("$2"); shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --slots) slots=$2; shift 2 ;;
    --launcher-as-worker) as_worker=true; shift ;;
    --) shift; break ;;
    *) e2e_fail "usage: $0 [--workers N] [--slots S] [--launcher-as-worker] [--expect REGEX]... -- PROGRAM [ARGS...]" ;;
    esac
done
[ $# -gt 0 ] || e2e_fail "no program given"

pods_require
ssh_dir_before=$(ls -la /root/.ssh 2>&1 || true)
job=$(e2e_job_name)
ns=e2e
last=$((workers - 1))
pods_up "$job" "$ns" "$workers" "$last"
pods_mpijob "$job" "$ns" "$workers" "$slots" "$as_worker" >"$POD_DIR/job.yaml"

t0=$(date +%s%N)
( sleep 1.5; pods_start_sshd "$last" ) &
rc=0
( pods_launcher --mpijob "$POD_DIR/job.yaml" --ssh-port $E2E_PORT --wait-timeout 30 \
    --output-dir "$POD_DIR/out" -- "$@" ) >"$POD_DIR/stdout" 2>"$POD_DIR/stderr" || rc=$?
t1=$(date +%s%N)
echo "--- launcher stdout"; cat "$POD_DIR/stdout"
echo "--- launcher stderr"; cat "$POD_DIR/stderr"
echo "--- exit $rc after $(ms $t0 $t1) ms"

[ $rc = 0 ] || e2e_fail "launcher exited $rc"
plural=s
[ "$workers" = 1 ] && plural=
grep -q "all $workers host$plural ready" "$POD_DIR/stderr" || e2e_fail "the launcher did not report readiness"
for re in "${expects[@]}"; do
    re=${re//@JOB@/$job}
    grep -Eq -- "$re" "$POD_DIR/stdout" || e2e_fail "output does not match: $re"
done
# What the operator would have mounted, written by the launcher.
hosts=()
[ $as_worker = true ] && hosts+=("$job-launcher.$job.$ns.svc")
for ((i = 0; i < workers; i++)); do hosts+=("$job-worker-$i.$job.$ns.svc"); done
diff <(printf '%s slots='"$slots"'\n' "${hosts[@]}") "$POD_DIR/out/hostfile" ||
    e2e_fail "hostfile differs"
diff <(echo '#!/bin/sh'; printf 'echo %s\n' "${hosts[@]}") "$POD_DIR/out/discover_hosts.sh" ||
    e2e_fail "discover_hosts.sh differs"
[ "$(ls -la /root/.ssh 2>&1 || true)" = "$ssh_dir_before" ] || e2e_fail "/root/.ssh was changed"

# Cleanup leaves nothing behind.
dir=$POD_DIR
pods_cleanup
[ ! -e "$dir" ] || e2e_fail "$dir left behind"
if pgrep -f -- "$dir" >/dev/null; then e2e_fail "processes of the run are left: $(pgrep -af -- "$dir")"; fi
echo "PASS"
