#!/usr/bin/env bash
# End-to-end restarts and elastic world size: 3 worker pods x 1 rank,
# ringtrain-launcher --max-restarts 2 --min-np 2.
#  1. One pod dies in mid-run (its sshd and every process in it): the
#     launcher relaunches on the 2 pods that answer, with one restart line
#     (why, which hosts, which step, steps lost <= the checkpoint interval),
#     and the job finishes there with exit 0.
#  2. Again, and then the pod comes back (its sshd starts): the launcher
#     sees it answer (--discovery-interval 1), stops the job with a
#     checkpoint and relaunches on 3 pods without losing a step; exit 0.
# Prints the time from the pod's death to training again.
#   test_elastic_pods.sh WORKER [ARGS...]   (steps 1 and 2 add --num_batches)
set -euo pipefail
source "$(dirname "$0")/simpods.sh"
[ $# -gt 0 ] || e2e_fail "usage: $0 WORKER [ARGS...]"
pods_require
pods_job 3 1
every=5

launch() { # name, number of steps; execs (see test_elastic_sigterm.sh)
    local name=$1 steps=$2
    shift 2
    exec >"$POD_DIR/$name.out" 2>"$POD_DIR/$name.err"
    pods_launcher --mpijob "$POD_DIR/job.yaml" --ssh-port $E2E_PORT --wait-timeout 30 \
        --output-dir "$POD_DIR/out" --max-restarts 2 --min-np 2 --discovery-interval 1 -- \
        "$WORKER" "${ARGS[@]}" --num_batches="$steps" --checkpoint_dir="$POD_DIR/ckpt-$name" \
        --checkpoint_every=$every --display_every=1
}
WORKER=$1
shift
ARGS=("$@")

show() { echo "--- $1: stdout (step lines left out)"; grep -Ev '^[0-9]+	' "$POD_DIR/$1.out" || true
         echo "--- $1: stderr"; cat "$POD_DIR/$1.err"; }

# Kills worker 2 once the job has trained 20 steps; checks the restart line
# and how long until the job trains again.
kill_and_check() {
    local name=$1 line lost t0 t1
    pods_wait_for "$POD_DIR/$name.out" '^(2[0-9]|[3-9][0-9]|[0-9]{3,})	images/sec' 120 ||
        { show "$name"; e2e_fail "$name: the job never reached step 20"; }
    t0=$(date +%s%N)
    pods_kill_worker 2
    pods_wait_for "$POD_DIR/$name.err" 'restart 1 of 2: ' 60 ||
        { show "$name"; e2e_fail "$name: no restart after the pod died"; }
    line=$(grep 'restart 1 of 2: ' "$POD_DIR/$name.err")
    grep -Eq -- "-np 2 on $job-worker-0\.[^ ]*, $job-worker-1\.[^ ]* \(left out: $job-worker-2\.[^ ]* \((refused|unreachable|timed out|no DNS)\)\); resumed from step [0-9]+, [0-9]+ steps? lost$" <<<"$line" ||
        { show "$name"; e2e_fail "$name: the restart line does not say which hosts and steps"; }
    lost=$(sed -E 's/.* ([0-9]+) steps? lost$/\1/' <<<"$line")
    [ "$lost" -le $every ] || e2e_fail "$name: $lost steps lost, more than the checkpoint interval ($every)"
    # Training again: a step line of the relaunched run.
    pods_wait_for "$POD_DIR/$name.out" '^Resuming: ' 60 || { show "$name"; e2e_fail "$name: no resume"; }
    local before
    before=$(grep -c '	images/sec' "$POD_DIR/$name.out" || true)
    while [ "$(grep -c '	images/sec' "$POD_DIR/$name.out" || true)" -le "$before" ]; do
        kill -0 "$launcher" 2>/dev/null || break
        sleep 0.05
    done
    t1=$(date +%s%N)
    echo "$name: $line"
    echo "$name: pod death to training again: $(ms $t0 $t1) ms"
}

# 1. Shrink: the job finishes on 2 pods.
( launch shrink 150 ) &
launcher=$!
kill_and_check shrink
rc=0
wait $launcher || rc=$?
show shrink
[ $rc = 0 ] || e2e_fail "shrink: the launcher exited $rc"
[ "$(grep '^Ranks:' "$POD_DIR/shrink.out" | tail -1)" = "Ranks:       2 on 2 host(s)" ] ||
    e2e_fail "shrink: the last run was not on 2 pods"
grep -q '^total images/sec: ' "$POD_DIR/shrink.out" || e2e_fail "shrink: no final total"

# 2. Shrink, then grow back when the pod answers again.
pods_start_sshd 2
( launch grow 400 ) &
launcher=$!
kill_and_check grow
pods_start_sshd 2
pods_wait_for "$POD_DIR/grow.err" 'resize: ' 60 || { show grow; e2e_fail "grow: no resize after the pod came back"; }
rc=0
wait $launcher || rc=$?
show grow
[ $rc = 0 ] || e2e_fail "grow: the launcher exited $rc"
line=$(grep 'resize: ' "$POD_DIR/grow.err")
grep -Eq -- "-np 3 on $job-worker-0\.[^ ]*, $job-worker-1\.[^ ]*, $job-worker-2\.[^ ]*; resumed from step [0-9]+, 0 steps lost$" <<<"$line" ||
    e2e_fail "grow: the resize line does not say 3 pods and 0 steps lost"
[ "$(grep '^Ranks:' "$POD_DIR/grow.out" | tail -1)" = "Ranks:       3 on 3 host(s)" ] ||
    e2e_fail "grow: the last run was not on 3 pods"
grep -q '^total images/sec: ' "$POD_DIR/grow.out" || e2e_fail "grow: no final total"
echo "grow: $line"
echo "PASS"
