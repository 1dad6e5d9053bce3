#!/usr/bin/env bash
# End-to-end: the collectives' cross-host paths over real, limited links.
# Two worker pods x 2 ranks (network namespaces: Open MPI sees two hosts and
# uses TCP between them, shared memory within each); every pod's link is
# shaped to 1 Gbit/s each way with tc. ringtrain-allreduce-bench, whose check
# exits non-zero on any wrong element, runs across them:
#   auto (rd for small vectors, hier above 64 KiB), hier with fp16 and with
#   bf16 wire compression (sum and avg), the flat ring with fp16, and hier on
#   fp16 data.
# It also makes sure the limit is real: an 8 MiB hier allreduce moves 8 MiB
# each way across the link, which takes at least 67 ms at 1 Gbit/s; faster
# than 40 ms means the shaping is not in effect.
#   test_hier_links.sh BENCH
set -euo pipefail
source "$(dirname "$0")/simpods.sh"
bench=${1:?usage: test_hier_links.sh PATH/ringtrain-allreduce-bench}
[ -x "$bench" ] || e2e_fail "$bench is not built"
pods_require
pods_require_tc
job=$(e2e_job_name)
pods_up "$job" e2e 2
pods_limit_links 1gbit
pods_hostfile 2
pods_wait_sshd

t0=$(date +%s%N)
n=0
# run NAME BENCH-ARGS...: one bench run across the pods, output in NAME.out.
run() {
    local name=$1
    shift
    n=$((n + 1))
    echo "--- $name: ringtrain-allreduce-bench $*"
    local rc=0
    # 4 ranks on this machine's cores: let Open MPI's waits yield.
    ( pods_mpirun -np 4 --bind-to none -x OMPI_MCA_mpi_yield_when_idle=1 \
        -x RINGTRAIN_SHM_SPIN=64 "$bench" -w 1 -n 2 --peer none "$@" ) \
        >"$POD_DIR/$name.out" 2>&1 || rc=$?
    grep -v '^#  Rank' "$POD_DIR/$name.out"
    [ $rc = 0 ] || e2e_fail "$name: the bench exited $rc (a failed collective or wrong elements)"
    grep -q '^# Out of bounds values : 0 OK$' "$POD_DIR/$name.out" ||
        e2e_fail "$name: no clean check in the output"
    grep -q 'hosts: 2  ranks on this host: 2' "$POD_DIR/$name.out" ||
        e2e_fail "$name: the ranks do not see 2 hosts x 2 ranks"
}

run auto -b 4 -e 8M -f 8
grep -Eq '^# Algorithm by size   : 4\.\.16K rd, 128K\.\.8M hier$' "$POD_DIR/auto.out" ||
    e2e_fail "auto: expected rd up to 64 KiB and hier above"
# The 8 MiB out-of-place time (microseconds, column 6).
us=$(awk '$1 == 8388608 { print int($6) }' "$POD_DIR/auto.out")
[ -n "$us" ] || e2e_fail "auto: no 8 MiB row"
echo "8 MiB hier allreduce across the 1 Gbit/s link: $us us (link bound: 67109 us)"
[ "$us" -ge 40000 ] || e2e_fail "8 MiB took $us us: faster than a 1 Gbit/s link allows, so tc is not limiting it"

run hier_fp16 -b 1K -e 4M -f 16 --algo hier --compression fp16
run hier_bf16_avg -b 1K -e 4M -f 16 --algo hier --compression bf16 -o avg
run ring_fp16_avg -b 1K -e 4M -f 16 --algo ring --compression fp16 -o avg
run hier_half -b 1K -e 4M -f 16 --algo hier -d half -o avg
grep -q 'compression: fp16' "$POD_DIR/hier_fp16.out" || e2e_fail "hier_fp16 ran without compression"

t1=$(date +%s%N)
echo "--- $n runs across 2 shaped pods in $(ms "$t0" "$t1") ms"
dir=$POD_DIR
pods_cleanup
[ ! -e "$dir" ] || e2e_fail "$dir left behind"
echo "PASS"
