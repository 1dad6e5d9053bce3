#!/bin/bash
# A job must never outlive its launcher. Starts a real local job
# (ringtrain-launcher --local -np 2 -- sleep), SIGKILLs the launcher (no
# signal handler can run) and checks that mpirun and both ranks are gone
# within a few seconds. Skips (77) without mpirun.
#
# usage: test_launcher_orphan.sh LAUNCHER
set -u
launcher=$1
command -v mpirun >/dev/null 2>&1 || { echo "no mpirun here: skip"; exit 77; }

tmp=$(mktemp -d /tmp/ringtrain-orphan.XXXXXX)
launcher_pid=
started=() # "pid:starttime" of every process the job started, for cleanup

# The start time (field 22 of /proc/PID/stat) tells a process from a later
# one that reuses its pid.
start_time() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    set -- $stat
    echo "${20}"
}

cleanup() {
    local entry pid
    for entry in "${started[@]}"; do
        pid=${entry%%:*}
        [ "$(start_time "$pid")" = "${entry#*:}" ] && kill -KILL "$pid" 2>/dev/null
    done
    [ -n "$launcher_pid" ] && kill -KILL "$launcher_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

# Every process below PID (one ps, then the parent links followed in awk).
descendants() {
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2 }
        END {
            for (pid in parent) {
                for (p = parent[pid]; p != "" && p != 0 && p != 1; p = parent[p])
                    if (p == root) { print pid; break }
            }
        }'
}

# Running: present and not a zombie waiting to be reaped.
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

"$launcher" --local -np 2 --oversubscribe -- /bin/sleep 300 >"$tmp/out" 2>"$tmp/err" &
launcher_pid=$!

# Wait for mpirun (the launcher's child) and both sleep ranks below it.
job=()
for _ in $(seq 100); do
    job=($(descendants "$launcher_pid"))
    ranks=0
    for pid in "${job[@]}"; do
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = sleep ] && ranks=$((ranks + 1))
    done
    [ "$ranks" -ge 2 ] && break
    sleep 0.1
done
for pid in "${job[@]}"; do
    t=$(start_time "$pid") && started+=("$pid:$t")
done
echo "launcher $launcher_pid; job: $(for p in "${job[@]}"; do
    printf '%s(%s) ' "$p" "$(cat /proc/$p/comm 2>/dev/null)"; done)"
if [ "$ranks" -lt 2 ]; then
    echo "FAIL: the job never started 2 ranks"; cat "$tmp/err"; exit 1
fi

killed_at=$(date +%s.%N)
kill -KILL "$launcher_pid"
wait "$launcher_pid" 2>/dev/null
launcher_pid=

# Within 10 s nothing of the job may be left.
left=()
for _ in $(seq 100); do
    left=()
    for pid in "${job[@]}"; do
        alive "$pid" && left+=("$pid($(cat /proc/$pid/comm 2>/dev/null))")
    done
    [ ${#left[@]} -eq 0 ] && break
    sleep 0.1
done
if [ ${#left[@]} -ne 0 ]; then
    echo "FAIL: 10 s after the launcher was SIGKILLed, still running: ${left[*]}"
    exit 1
fi
took=$(awk -v a="$killed_at" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
echo "ok: mpirun and both ranks gone $took s after the launcher was SIGKILLed"
