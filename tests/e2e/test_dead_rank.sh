#!/usr/bin/env bash
# End-to-end: one rank on worker 1 is killed with SIGKILL mid-run (a dead
# pod or OOM kill). mpirun must notice, end every other rank, and the
# launcher must exit non-zero within 30 s, with no rank left behind.
#   test_dead_rank.sh PROGRAM [ARGS...]   a long-running program that prints
#                                         "allreduce: " once all ranks are in
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
for i in $(seq 600); do
    grep -q "^allreduce: " "$POD_DIR/stdout" && break
    kill -0 $launcher 2>/dev/null || break
    sleep 0.1
done
grep -q "^allreduce: " "$POD_DIR/stdout" || { cat "$POD_DIR/stderr"; e2e_fail "the job never started"; }

# A rank living in worker 1's network namespace.
victim=
worker_net=$(readlink "/proc/${POD_PID[$job-worker-1]}/ns/net")
for p in $(pgrep -f -- "--tag $tag"); do
    if [ "$(readlink "/proc/$p/ns/net" 2>/dev/null)" = "$worker_net" ]; then victim=$p; break; fi
done
[ -n "$victim" ] || e2e_fail "no rank found on worker 1"
t0=$(date +%s%N)
kill -KILL "$victim"
rc=0
wait $launcher || rc=$?
t1=$(date +%s%N)
gone=
for i in $(seq 100); do
    if ! pgrep -f -- "--tag $tag" >/dev/null; then gone=$(date +%s%N); break; fi
    sleep 0.1
done
echo "--- launcher stderr"; cat "$POD_DIR/stderr"
echo "--- killed rank pid $victim; launcher exit $rc after $(ms $t0 $t1) ms; all gone after ${gone:+$(ms $t0 $gone)} ms"
[ $rc != 0 ] || e2e_fail "launcher exited 0 after a rank died"
[ "$(ms $t0 $t1)" -lt 30000 ] || e2e_fail "launcher took over 30 s to exit"
[ -n "$gone" ] || e2e_fail "processes left: $(pgrep -af -- "--tag $tag")"
echo "PASS"
