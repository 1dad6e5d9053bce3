#!/usr/bin/env bash
# Flat ring vs hierarchical vs compressed allreduce across simulated hosts
# with real link limits. Two worker pods x 2 ranks (network namespaces from
# tests/e2e/simpods.sh: Open MPI sees two hosts, TCP between them, shared
# memory within each), every pod's link shaped to RATE each way with tc (tbf;
# DELAY adds netem latency where the kernel has it). For each rate, RUNS
# rounds, each running every variant once (alternating, each process under
# the machine's benchmark lock):
#   flat        --algo ring                  (ranks 0,1 | 2,3: two hops cross)
#   hier        --algo hier
#   hier+fp16   --algo hier --compression fp16
#   hier+bf16   --algo hier --compression bf16
#   flat+fp16   --algo ring --compression fp16
# every one with --peer mpi, so Open MPI's MPI_Allreduce is timed in the same
# process on the same buffers. Prints per rate a table of medians per size:
# each variant's time, MPI's time from the same processes, the speedups over
# flat and the ratios to MPI, and the verdict on the issue's target (hier >=
# 1.5x flat at 2 x 2 on 1 Gbit/s).
# Cleans up the pods on any exit.
#
#   bench/links.sh                      # 1gbit and 10gbit, 1..64 MiB, 5 rounds
#   RUNS=7 SIZES="-b 16M -e 16M" bench/links.sh 1gbit
#
# Environment: RUNS (5), SIZES (bench size flags, "-b 1M -e 64M -f 4"),
# ITERS (timed calls per size and process, 3), DELAY (e.g. 1ms; needs
# netem), BENCH (the binary), LOCK (the lock file), KEEP=dir (keep the raw
# outputs there). Needs root (namespaces, tc, sshd). About 12 minutes per
# rate with the defaults (measured: 1gbit, 5 rounds).
#
# This machine has 2 cores, so the 4 ranks (and the kernel's TCP work)
# share them: every variant runs with OMPI_MCA_mpi_yield_when_idle=1 and
# RINGTRAIN_SHM_SPIN=64 (what Open MPI and ringtrain choose themselves when
# they know the host is oversubscribed, which across pods they cannot).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
sizes=${SIZES:-"-b 1M -e 64M -f 4"}
iters=${ITERS:-3}
delay=${DELAY:-}
bench=${BENCH:-build/bench/ringtrain-allreduce-bench}
lock=${LOCK:-/tmp/ringtrain-bench.lock}
if [ $# -eq 0 ]; then
    set -- 1gbit 10gbit
fi
if [ ! -x "$bench" ]; then
    echo "links: error: $bench not built; run meson compile -C build first" >&2
    exit 2
fi
export RINGTRAIN_BUILD_DIR=${RINGTRAIN_BUILD_DIR:-$PWD/build}
# shellcheck source=tests/e2e/simpods.sh
source tests/e2e/simpods.sh
# The pods' holders and sshd end by themselves after E2E_MAX_SECONDS
# (simpods.sh: 900, for tests); a full benchmark takes longer.
E2E_MAX_SECONDS=7200
# In a benchmark, what the tests treat as "skip" is an error.
e2e_skip() { echo "links: error: cannot run here: $*" >&2; exit 2; }
e2e_fail() { echo "links: error: $*" >&2; exit 1; }
pods_require
pods_require_tc "$delay"
for rate in "$@"; do
    tc_rate_bytes "$rate" >/dev/null ||
        e2e_skip "link rate '$rate': use a tc rate such as 1gbit, 10gbit or 500mbit"
done

out=${KEEP:-}
if [ -z "$out" ]; then
    out=$(mktemp -d /tmp/ringtrain-links.XXXXXX)
fi
mkdir -p "$out"
job=$(e2e_job_name)
pods_up "$job" bench 2
# pods_up's trap removes the pods; also drop our scratch unless kept.
if [ -z "${KEEP:-}" ]; then
    trap 'pods_cleanup; rm -rf "$out"' EXIT
fi
pods_hostfile 2
pods_wait_sshd

variants=(flat hier hier+fp16 hier+bf16 flat+fp16)
declare -A vargs=(
    [flat]="--algo ring"
    [hier]="--algo hier"
    [hier+fp16]="--algo hier --compression fp16"
    [hier+bf16]="--algo hier --compression bf16"
    [flat+fp16]="--algo ring --compression fp16"
)
cmd_base="mpirun -np 4 --bind-to none -x OMPI_MCA_mpi_yield_when_idle=1 -x RINGTRAIN_SHM_SPIN=64 $bench $sizes -n $iters -w 1 --peer mpi"
exec {lockfd}>>"$lock"
for rate in "$@"; do
    pods_limit_links "$rate" "$delay"
    for i in $(seq 1 "$runs"); do
        for v in "${variants[@]}"; do
            echo "# $rate${delay:+ + $delay} round $i/$runs: $v" >&2
            flock "$lockfd"
            # shellcheck disable=SC2086 # vargs holds several words
            ( exec {lockfd}>&-
              pods_mpirun -np 4 --bind-to none -x OMPI_MCA_mpi_yield_when_idle=1 \
                -x RINGTRAIN_SHM_SPIN=64 "$bench" $sizes \
                -n "$iters" -w 1 --peer mpi ${vargs[$v]} ) \
                >"$out/$rate.$v.$i" 2>&1 ||
                e2e_fail "$v at $rate failed (output: $out/$rate.$v.$i):$(echo; tail -5 "$out/$rate.$v.$i")"
            flock -u "$lockfd"
        done
    done
done

python3 - "$out" "$runs" "$cmd_base" "$delay" "${variants[@]}" -- "$@" <<'PY'
import statistics, sys
args = sys.argv[1:]
out, runs, cmd, delay = args[0], int(args[1]), args[2], args[3]
sep = args.index("--")
variants, rates = args[4:sep], args[sep + 1:]
factor = 2.0 * 3 / 4  # busbw = algbw * 2(n-1)/n, n = 4

def parse(path):
    """{bytes: (ours oop s, ours in-place s, mpi oop s)}, wrong elements"""
    rows, peer, wrong, peer_on = {}, {}, 0, False
    for line in open(path):
        if line.startswith("# Peer comparison"):
            peer_on = True
            continue
        if line.startswith("#") or not line.strip():
            continue
        f = line.split()
        b = int(f[0])
        if peer_on:  # size ours-busbw mpi-busbw ratio | ours mpi ratio
            peer[b] = b * factor / float(f[2]) / 1e9
        else:
            rows[b] = (float(f[5]) * 1e-6, float(f[9]) * 1e-6)
            wrong += int(f[8]) + int(f[12])
    return {b: rows[b] + (peer[b],) for b in rows}, wrong

def human(b):
    return f"{b >> 20} MiB" if b >= 1 << 20 else f"{b >> 10} KiB"

print(f"# {cmd} <variant args>")
print(f"# 2 pods x 2 ranks; each pod's link shaped both ways with tc tbf"
      f"{' + netem ' + delay if delay else ''}; fp32 sum, out of place;")
print(f"# medians of {runs} alternating rounds of time per allreduce (slowest rank, ms);")
print("# mpi = MPI_Allreduce timed in the same processes (median over all of them);")
print("# x = flat time / time; 4 ranks share this machine's 2 cores")
verdict = []
for rate in rates:
    res = {v: [parse(f"{out}/{rate}.{v}.{i}") for i in range(1, runs + 1)] for v in variants}
    sizes = sorted(res[variants[0]][0][0])
    wrong = sum(w for v in variants for _, w in res[v])
    print(f"\n{rate}{' + ' + delay if delay else ''}:\n")
    print("| size | " + " | ".join(variants) + " | mpi | hier x flat | hier+fp16 x flat "
          "| hier+bf16 x flat | flat / mpi | hier / mpi |")
    print("|---:|" + "---:|" * (len(variants) + 6))
    for b in sizes:
        med = {v: statistics.median(r[b][0] for r, _ in res[v]) for v in variants}
        mpi = statistics.median(r[b][2] for v in variants for r, _ in res[v])
        cells = " | ".join(f"{med[v]*1e3:.1f}" for v in variants)
        print(f"| {human(b)} | {cells} | {mpi*1e3:.1f} | {med['flat']/med['hier']:.2f} | "
              f"{med['flat']/med['hier+fp16']:.2f} | {med['flat']/med['hier+bf16']:.2f} | "
              f"{mpi/med['flat']:.2f} | {mpi/med['hier']:.2f} |")
        if rate.lower() == "1gbit":
            verdict.append((b, med['flat'] / med['hier']))
    print(f"\nwrong elements in all runs: {wrong}")
if verdict:
    print("\ntarget hier >= 1.5x flat at 2 x 2 on 1 Gbit/s: " + ", ".join(
        f"{human(b)} {'met' if x >= 1.5 else 'NOT met'} ({x:.2f}x)" for b, x in verdict))
PY
