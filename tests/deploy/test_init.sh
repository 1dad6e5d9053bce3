#!/usr/bin/env bash
# ringtrain-init (deploy/init.c) without a container: as a child subreaper
# here, and as PID 1 of a new PID namespace where unshare allows it.
#   - SIGTERM reaches every descendant, also those in sessions of their own
#     (as sshd's sessions, orted and the ranks are), each gets to finish its
#     own handler, and init exits 143 once the last one is gone;
#   - from the leaves up: a process with children (sshd, orted: what carries
#     the ranks' output and exit status) gets it only once they have ended;
#   - PROGRAM's own exit status is passed on; what it leaves behind gets
#     SIGTERM, and SIGKILL after --grace when it ignores that;
#   - usage errors exit 2, a PROGRAM that cannot be run exits 1.
#   test_init.sh RINGTRAIN_INIT
set -euo pipefail
init=${1:?usage: $0 RINGTRAIN_INIT}
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d /tmp/ringtrain-init-test.XXXXXX)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

# A tree: PROGRAM (sh) with a child in its own session, which has a child of
# its own; each notes the SIGTERM, takes 1 s to "save", notes that, exits.
cat >"$tmp/leaf.sh" <<'EOF'
#!/bin/sh
trap 'echo "$1 TERM" >>"$2"; sleep 1; echo "$1 saved" >>"$2"; exit 143' TERM
echo "$1 up" >>"$2"
i=0
while [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done # ends by itself if the test dies
EOF
cat >"$tmp/tree.sh" <<'EOF'
#!/bin/sh
setsid sh -c "sh '$1/leaf.sh' grandchild '$1/marks' & sh '$1/leaf.sh' session '$1/marks' & wait" &
sh "$1/leaf.sh" program "$1/marks" &
wait
EOF
run_tree() {
    : >"$tmp/marks"
    "$@" sh "$tmp/tree.sh" "$tmp" 2>"$tmp/stderr" &
    pids+=($!)
    for _ in $(seq 100); do
        [ "$(grep -c ' up$' "$tmp/marks")" = 3 ] && return 0
        sleep 0.05
    done
    fail "the process tree never came up: $(cat "$tmp/marks" "$tmp/stderr")"
}
check_stop() {
    local what=$1 pid=${pids[-1]} target=${2:-${pids[-1]}} rc=0 t0 t1
    t0=$(date +%s%N)
    kill -TERM "$target"
    wait "$pid" || rc=$?
    t1=$(date +%s%N)
    echo "$what: exit $rc after $(((t1 - t0) / 1000000)) ms; $(tr '\n' ';' <"$tmp/marks")"
    cat "$tmp/stderr"
    [ $rc = 143 ] || fail "$what: exit $rc, not 143"
    for who in program session grandchild; do
        grep -qx "$who saved" "$tmp/marks" || fail "$what: $who did not get SIGTERM and the time to finish"
    done
    grep -q '^ringtrain-init: SIGTERM: forwarded to [0-9]* processes' "$tmp/stderr" ||
        fail "$what: no line saying where the SIGTERM went"
    grep -q '^ringtrain-init: every process ended .* after SIGTERM; exit status 143$' "$tmp/stderr" ||
        fail "$what: no line saying that every process ended"
}

run_tree "$init" --
check_stop "subreaper"

if unshare --pid --fork --mount-proc true 2>/dev/null; then
    run_tree unshare --pid --fork --mount-proc "$init" --
    # The signal goes to init (unshare's child), as a runtime sends it to PID 1.
    check_stop "PID 1" "$(cat "/proc/${pids[-1]}/task/${pids[-1]}/children")"
else
    echo "no PID namespace here (unshare --pid): PID 1 not checked"
fi

# From the leaves up: the carrier (as sshd or orted is for a rank) keeps
# running after its leaf has ended, and must get the SIGTERM only then. Both
# are bash without child processes (read -t on a FIFO instead of sleep).
mkfifo "$tmp/fifo"
cat >"$tmp/leaf.bash" <<'EOF'
exec 3<>"$1/fifo"
trap 'echo "leaf TERM" >>"$1/order"; read -r -t 1 <&3; echo "leaf saved" >>"$1/order"; exit 143' TERM
echo "leaf up" >>"$1/order"
read -r -t 60 <&3
EOF
cat >"$tmp/carrier.bash" <<'EOF'
trap 'echo "carrier TERM" >>"$1/order"; exit 143' TERM
bash "$1/leaf.bash" "$1" &
wait $!
read -r -t 60 <>"$1/fifo"
EOF
: >"$tmp/order"
"$init" -- bash "$tmp/carrier.bash" "$tmp" 2>"$tmp/stderr" &
pids+=($!)
for _ in $(seq 100); do
    grep -q '^leaf up$' "$tmp/order" && break
    sleep 0.05
done
rc=0
kill -TERM "${pids[-1]}"
wait "${pids[-1]}" || rc=$?
order=$(tr '\n' ';' <"$tmp/order")
echo "leaves first: exit $rc; $order"
cat "$tmp/stderr"
[ $rc = 143 ] || fail "leaves first: exit $rc, not 143"
[ "$order" = "leaf up;leaf TERM;leaf saved;carrier TERM;" ] ||
    fail "leaves first: the carrier got SIGTERM before its leaf had ended ($order)"

# PROGRAM's status is init's; what it leaves gets SIGTERM, SIGKILL after --grace.
rc=0
"$init" -- sh -c 'exit 7' || rc=$?
[ $rc = 7 ] || fail "PROGRAM exited 7, init $rc"
cat >"$tmp/stubborn.sh" <<'EOF'
#!/bin/sh
trap '' TERM
setsid sh -c "trap '' TERM; echo up >'$1/stubborn'; sleep 60" &
sleep 0.5
exit 3
EOF
t0=$(date +%s%N)
rc=0
"$init" --grace 1 -- sh "$tmp/stubborn.sh" "$tmp" || rc=$?
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
echo "PROGRAM exit 3 leaving a process that ignores SIGTERM: init exit $rc after $ms ms"
[ $rc = 3 ] || fail "init exited $rc, not PROGRAM's 3"
[ -f "$tmp/stubborn" ] || fail "the stubborn process never ran"
{ [ $ms -ge 1000 ] && [ $ms -lt 5000 ]; } || fail "the stubborn process was not killed after --grace 1 ($ms ms)"
pgrep -f -- "$tmp/stubborn" >/dev/null && fail "the stubborn process outlived init"

rc=0
"$init" 2>"$tmp/err" || rc=$?
{ [ $rc = 2 ] && grep -q 'no PROGRAM' "$tmp/err"; } || fail "no PROGRAM: exit $rc, $(cat "$tmp/err")"
rc=0
"$init" --grace x -- true 2>"$tmp/err" || rc=$?
[ $rc = 2 ] || fail "--grace x: exit $rc"
rc=0
"$init" -- "$tmp/no-such-program" 2>"$tmp/err" || rc=$?
{ [ $rc = 1 ] && grep -q 'cannot run' "$tmp/err"; } || fail "a missing PROGRAM: exit $rc, $(cat "$tmp/err")"
echo "PASS"
