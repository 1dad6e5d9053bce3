#!/usr/bin/env bash
# Memory up front: a run that cannot fit is refused before it allocates,
# with the figure, what the host has and a batch that fits (exit 2, within
# seconds, one line per host), instead of filling memory until the OOM
# killer acts. Where a memory cgroup can be made (root, cgroup v1 or v2),
# also under a 1 GiB limit, as in a pod: the worker and the allreduce bench
# name the cgroup's limit, and the batch the worker suggests then runs.
#   test_memory_refusal.sh WORKER ALLREDUCE_BENCH
set -uo pipefail
worker=$1
bench=$2
tmp=$(mktemp -d /tmp/ringtrain-memory.XXXXXX)
cg=
cleanup() {
    [ -z "$cg" ] || rmdir "$cg" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fails=0
fail() { echo "FAIL: $*"; cat "$tmp/out"; fails=$((fails + 1)); }

# expect_refusal SECONDS NEEDLE_REGEX CMD...: exit 2 within SECONDS, the
# regex on exactly one error line.
expect_refusal() {
    local limit=$1 want=$2 t0=$SECONDS
    shift 2
    timeout 120 "$@" >"$tmp/out" 2>&1
    local rc=$? took=$((SECONDS - t0)) lines
    lines=$(grep -c "error: " "$tmp/out")
    if [ $rc -ne 2 ] || ! grep -Eq -- "$want" "$tmp/out" || [ "$lines" -ne 1 ] || [ $took -gt "$limit" ]; then
        fail "${*: -3} -> exit $rc in $took s, $lines error line(s); wanted 2 within $limit s and /$want/:"
    else
        echo "ok: exit 2 in $took s: $(grep -E -- "$want" "$tmp/out")"
    fi
}

# Sizes no host has (terabytes per rank), so the refusal does not depend on
# the machine.
fig='[0-9.]+ [GM]iB'
mpi=(mpirun --oversubscribe)
w=(--bind=none --num_batches=1 --num_warmup_batches=0)
expect_refusal 30 "ringtrain-worker: error: --model=resnet101 --batch_size=65536 needs about $fig on this rank \(model $fig, data $fig, other $fig\); this host has $fig available \((MemAvailable|cgroup memory limit [^)]*)\); use --batch_size=[0-9]+ or less" \
    "${mpi[@]}" -np 1 "$worker" "${w[@]}" --model=resnet101 --batch_size=65536
expect_refusal 30 "--model=resnet50 --batch_size=16384 needs about $fig on this rank .*, $fig for the 2 ranks on this host; .*use --batch_size=[0-9]+ or less" \
    "${mpi[@]}" -np 2 "$worker" "${w[@]}" --model=resnet50 --batch_size=16384
expect_refusal 30 "ringtrain-allreduce-bench: error: -e 1024G needs about 3072 GiB on this rank \(send and receive buffers, and MPI_Allreduce's temporary for --peer mpi\), 6144 GiB for the 2 ranks on this host; this host has $fig available" \
    "${mpi[@]}" -np 2 "$bench" -b 1M -e 1024G

# A memory cgroup of 1 GiB for what follows, v2 or v1; none: those cases
# are reported as skipped.
make_cgroup() {
    local d
    for d in /sys/fs/cgroup/ringtrain-test-$$ /sys/fs/cgroup/memory/ringtrain-test-$$; do
        if mkdir "$d" 2>/dev/null; then
            if { [ -f "$d/memory.max" ] && echo 1073741824 >"$d/memory.max"; } ||
                { [ -f "$d/memory.limit_in_bytes" ] && echo 1073741824 >"$d/memory.limit_in_bytes"; }; then
                cg=$d
                return 0
            fi
            rmdir "$d"
        fi
    done
    return 1
}
if ! make_cgroup; then
    echo "skip: cannot make a memory cgroup here (not root, or no writable cgroup fs): the limit cases did not run"
else
    # in_cgroup CMD...: CMD runs inside the cgroup.
    # shellcheck disable=SC2016
    in_cgroup=(sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cg")
    expect_refusal 30 "ringtrain-worker: error: --model=resnet20 --batch_size=4096 needs about $fig on this rank .*; this host has $fig available \(cgroup memory limit 1.0 GiB, $fig in use\); use --batch_size=[0-9]+ or less" \
        "${in_cgroup[@]}" "${mpi[@]}" -np 1 "$worker" "${w[@]}" --model=resnet20 --batch_size=4096
    fit=$(sed -n 's/.*use --batch_size=\([0-9]*\) or less.*/\1/p' "$tmp/out")
    if [ -n "$fit" ]; then
        timeout 300 "${in_cgroup[@]}" "${mpi[@]}" -np 1 "$worker" "${w[@]}" --model=resnet20 \
            --batch_size="$fit" >"$tmp/out" 2>&1
        rc=$?
        if [ $rc -ne 0 ] || ! grep -q "^total images/sec" "$tmp/out"; then
            fail "the suggested --batch_size=$fit under the 1 GiB limit -> exit $rc:"
        else
            echo "ok: the suggested --batch_size=$fit runs under the 1 GiB limit: $(grep "peak RSS" "$tmp/out")"
        fi
    fi
    expect_refusal 30 "ringtrain-allreduce-bench: error: -e 1G needs about 3.0 GiB on this rank .*this host has $fig available \(cgroup memory limit 1.0 GiB, $fig in use\); use -e [0-9]+M or less" \
        "${in_cgroup[@]}" "${mpi[@]}" -np 1 "$bench" -b 1M -e 1G
fi
[ $fails -eq 0 ] && echo "every run that cannot fit was refused up front" || exit 1
