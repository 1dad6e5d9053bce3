#!/usr/bin/env bash
# ringtrain-launcher --local --max-restarts 1: one rank of a real job is
# killed with SIGKILL in mid-run; the launcher relaunches it once (one
# restart line: why, where, which step, steps lost <= the checkpoint
# interval), the job resumes from its newest checkpoint and ends with exit
# 0 and its final "total images/sec" block.
set -uo pipefail
launcher=$1
worker=$2
tmp=$(mktemp -d /tmp/ringtrain-restart.XXXXXX)
cleanup() {
    local pids
    pids=$(pgrep -f -- "--checkpoint_dir=$tmp/ckpt")
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- stdout"; cat "$tmp/out"; echo "--- stderr"; cat "$tmp/err"; exit 1; }
every=5
"$launcher" --local -np 2 --max-restarts 1 -- "$worker" --model=mlp --batch_size=16 \
    --num_batches=300 --num_warmup_batches=2 --num_intra_threads=1 --bind=none \
    --display_every=1 --checkpoint_dir="$tmp/ckpt" --checkpoint_every=$every \
    >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 600); do
    grep -Eq '^(2[0-9]|[3-9][0-9])	images/sec' "$tmp/out" && break
    sleep 0.1
done
victim=$(pgrep -f -- "^$worker .*--checkpoint_dir=$tmp/ckpt" | tail -1)
[ -n "$victim" ] || fail "no rank found to kill"
kill -KILL "$victim"
rc=0
wait $pid || rc=$?
[ $rc = 0 ] || fail "the launcher exited $rc"
line=$(grep 'restart 1 of 1: ' "$tmp/err") || fail "no restart line"
echo "$line"
grep -Eq 'restart 1 of 1: mpirun exited with status [0-9]+; relaunched with -np 2 on this machine; resumed from step [0-9]+, [0-9]+ steps? lost$' <<<"$line" ||
    fail "the restart line does not say why, where and which step"
lost=$(sed -E 's/.* ([0-9]+) steps? lost$/\1/' <<<"$line")
[ "$lost" -le $every ] || fail "$lost steps lost, more than the checkpoint interval"
grep -q '^Resuming: ' "$tmp/out" || fail "the relaunched job did not resume"
grep -q '^300	images/sec' "$tmp/out" || fail "no last step line"
grep -Eq '^total images/sec: [0-9.]+$' "$tmp/out" || fail "no final total images/sec"
echo "PASS: killed rank $victim, relaunched once, exit 0 with the final total"
