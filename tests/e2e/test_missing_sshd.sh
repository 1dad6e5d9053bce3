#!/usr/bin/env bash
# End-to-end failure: worker 1 never starts sshd. The launcher must give up
# at --wait-timeout (5 s) with a non-zero exit within 5 s more, naming that
# host and why ("refused": the pod resolves, nothing listens on 2222), and
# must not name the healthy worker.
set -euo pipefail
source "$(dirname "$0")/simpods.sh"
pods_require
job=$(e2e_job_name)
ns=e2e
pods_up "$job" "$ns" 2 "1"
pods_mpijob "$job" "$ns" 2 1 >"$POD_DIR/job.yaml"

timeout=5
t0=$(date +%s%N)
rc=0
( pods_launcher --mpijob "$POD_DIR/job.yaml" --ssh-port $E2E_PORT --wait-timeout $timeout \
    --output-dir "$POD_DIR/out" -- /bin/true ) >"$POD_DIR/stdout" 2>"$POD_DIR/stderr" || rc=$?
t1=$(date +%s%N)
took=$(ms $t0 $t1)
echo "--- launcher stderr"; cat "$POD_DIR/stderr"
echo "--- exit $rc after $took ms"

[ $rc != 0 ] || e2e_fail "launcher exited 0 without worker 1"
[ "$took" -lt $(((timeout + 5) * 1000)) ] || e2e_fail "took $took ms, over $timeout + 5 s"
grep -q "ringtrain-launcher: error: readiness: 1 of 2 hosts" "$POD_DIR/stderr" ||
    e2e_fail "no readiness error"
grep -qF "$job-worker-1.$job.$ns.svc (refused)" "$POD_DIR/stderr" ||
    e2e_fail "the missing host is not named with its reason"
if grep -qF "$job-worker-0.$job.$ns.svc (" "$POD_DIR/stderr"; then
    e2e_fail "the healthy worker is named as missing"
fi
[ ! -e "$POD_DIR/out/discover_hosts.sh" ] || e2e_fail "discover_hosts.sh written though not all came"
echo "PASS"
