#!/usr/bin/env bash
# End-to-end: SIGTERM to the launcher mid-run (as Kubernetes stops a pod).
# The launcher asks mpirun to stop the job (SIGUSR1, which mpirun passes to
# every rank; this program dies of it); every rank on every worker pod must
# be gone within 10 s and the launcher must exit 143 (128 + SIGTERM).
#   test_sigterm.sh PROGRAM [ARGS...]   a program that runs long, printing
#                                       a line once all ranks are in
set -euo pipefail
source "$(dirname "$0")/simpods.sh"
[ $# -gt 0 ] || e2e_fail "usage: $0 PROGRAM [ARGS...]"
pods_require
job=$(e2e_job_name)
ns=e2e
pods_up "$job" "$ns" 2
pods_mpijob "$job" "$ns" 2 2 >"$POD_DIR/job.yaml"
tag="ringtrain-e2e-$job"

( pods_launcher --mpijob "$POD_DIR/job.yaml" --ssh-port $E2E_PORT --wait-timeout 30 \
    --output-dir "$POD_DIR/out" -- "$@" --tag "$tag" ) >"$POD_DIR/stdout" 2>"$POD_DIR/stderr" &
launcher=$!
# Wait until the job computes (all ranks in), then stop it.
for i in $(seq 600); do
    grep -q "^allreduce: " "$POD_DIR/stdout" && break
    kill -0 $launcher 2>/dev/null || break
    sleep 0.1
done
grep -q "^allreduce: " "$POD_DIR/stdout" || { cat "$POD_DIR/stderr"; e2e_fail "the job never started"; }
procs=$(pgrep -f -- "--tag $tag" | wc -l || true)
echo "processes of the job before SIGTERM: $procs (launcher, mpirun, 4 ranks)"
[ "$procs" -ge 6 ] || e2e_fail "expected the launcher, mpirun and 4 ranks, found $procs"

t0=$(date +%s%N)
kill -TERM $launcher
rc=0
wait $launcher || rc=$?
t1=$(date +%s%N)
gone=
for i in $(seq 100); do
    if ! pgrep -f -- "--tag $tag" >/dev/null; then gone=$(date +%s%N); break; fi
    sleep 0.1
done
echo "--- launcher stderr"; cat "$POD_DIR/stderr"
echo "--- exit $rc after $(ms $t0 $t1) ms; all ranks gone after ${gone:+$(ms $t0 $gone)} ms"
[ -n "$gone" ] || e2e_fail "ranks still running 10 s after SIGTERM: $(pgrep -af -- "--tag $tag")"
[ $rc = 143 ] || e2e_fail "launcher exited $rc, not 143"
# 143 from bash also means "killed by SIGTERM": the launcher must have handled it.
grep -q "stopped by signal 15 (the job was asked to stop: SIGUSR1 to mpirun, for every rank); exit status 143" \
    "$POD_DIR/stderr" ||
    e2e_fail "the launcher did not handle the SIGTERM itself"
echo "PASS"
