#!/usr/bin/env bash
# Ours vs Open MPI's MPI_Allreduce, the way ../shared/BENCH.md asks for it:
# RUNS (default 5) alternating process runs of
#   mpirun -np NP ringtrain-allreduce-bench ARGS --peer none     (ours)
#   mpirun -np NP ringtrain-allreduce-bench ARGS --algo mpi      (Open MPI)
# each under the machine's benchmark lock, then the median per size of each
# side and the ratio, as a table (out-of-place, then in-place) with a verdict
# on the issue's targets.
#
#   bench/allreduce-compare.sh                    # -b 4 -e 256M -f 4, np 2
#   RUNS=3 NP=2 bench/allreduce-compare.sh -b 1M -e 64M -f 4 -d half
#
# Environment: RUNS, NP, BENCH (the binary), LOCK (the lock file),
# KEEP=dir (keep the raw outputs there).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
np=${NP:-2}
bench=${BENCH:-build/bench/ringtrain-allreduce-bench}
lock=${LOCK:-/tmp/ringtrain-bench.lock}
if [ $# -eq 0 ]; then
    set -- -b 4 -e 256M -f 4
fi
if [ ! -x "$bench" ]; then
    echo "allreduce-compare: error: $bench not built; run meson compile -C build first" >&2
    exit 2
fi
if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
out=${KEEP:-$(mktemp -d)}
mkdir -p "$out"
for i in $(seq 1 "$runs"); do
    echo "# run $i/$runs: ours" >&2
    flock "$lock" mpirun -np "$np" "$bench" "$@" --peer none > "$out/ours.$i"
    echo "# run $i/$runs: mpi" >&2
    flock "$lock" mpirun -np "$np" "$bench" "$@" --algo mpi --peer none > "$out/mpi.$i"
done
python3 - "$out" "$runs" "$np" "mpirun -np $np $bench $*" <<'PY'
import statistics, sys
out, runs, np_, cmd = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def parse(path):
    rows, algos = {}, ""
    for line in open(path):
        if line.startswith("# Algorithm by size"):
            algos = line.split(":", 1)[1].strip()
        if line.startswith("#") or not line.strip():
            continue
        f = line.split()
        # size count type redop root time algbw busbw #wrong time algbw busbw #wrong
        rows[int(f[0])] = (float(f[5]) * 1e-6, float(f[9]) * 1e-6, f[8], f[12])
    return rows, algos

ours = [parse(f"{out}/ours.{i}") for i in range(1, runs + 1)]
mpi = [parse(f"{out}/mpi.{i}") for i in range(1, runs + 1)]
sizes = sorted(ours[0][0])
factor = 2.0 * (np_ - 1) / np_ if np_ > 1 else 1.0

def human(b):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if b >= 1 << shift and b % (1 << shift) == 0:
            return f"{b >> shift} {unit}"
    return f"{b} B"

print(f"# {cmd}")
print(f"# medians of {runs} alternating process runs (ours: --peer none; "
      f"mpi: --algo mpi); busbw = bytes/time * 2(n-1)/n; ratio = mpi time / ours time")
print(f"# ours ran: {ours[0][1]}")
bad_ratio = {0: [], 1: []}
bad_bw = {0: [], 1: []}
wrong = 0
for col, name in ((0, "out-of-place"), (1, "in-place")):
    print(f"\n{name}:\n")
    print("| size | ours busbw (GB/s) | mpi busbw (GB/s) | ratio | ours time (us) | mpi time (us) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for s in sizes:
        to = statistics.median(r[0][s][col] for r in ours)
        tm = statistics.median(r[0][s][col] for r in mpi)
        wrong += sum(int(r[0][s][2 + col]) for r in ours if r[0][s][2 + col].isdigit())
        bo, bm = s / to / 1e9 * factor, s / tm / 1e9 * factor
        ratio = tm / to
        print(f"| {human(s)} | {bo:.3f} | {bm:.3f} | {ratio:.2f} | {to*1e6:.2f} | {tm*1e6:.2f} |")
        if ratio < 1.0:
            bad_ratio[col].append(f"{human(s)} ({ratio:.2f})")
        if s >= 1 << 20 and bo < 7.0:
            bad_bw[col].append(f"{human(s)} ({bo:.2f})")
print()
for col, name in ((0, "out-of-place"), (1, "in-place")):
    print(f"target ours >= 1.0x mpi at every size ({name}): " +
          ("met" if not bad_ratio[col] else "NOT met at " + ", ".join(bad_ratio[col])))
    print(f"target ours >= 7 GB/s busbw from 1 MiB ({name}): " +
          ("met" if not bad_bw[col] else "NOT met at " + ", ".join(bad_bw[col])))
print(f"wrong elements in our runs: {wrong}")
PY
