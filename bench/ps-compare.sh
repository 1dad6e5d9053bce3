#!/usr/bin/env bash
# Allreduce vs parameter server: ringtrain-worker's images/sec with
# --variable_update=allreduce and =parameter_server, lenet and resnet20
# (synthetic, batch 64 per worker, 1 thread per rank), on one host and on two
# simulated hosts (network namespaces from tests/e2e/simpods.sh) joined by
# links shaped to RATE each way with tc.
#
# Variants (same 3 training workers in each except allreduce np=4):
#   allreduce np=3   3 workers
#   ps np=4          3 workers + 1 server (RINGTRAIN_PS_RANKS=3, the last rank)
#   allreduce np=4   4 workers (for reference: one more trainer)
# On the simulated hosts the hostfile gives each pod 2 slots: ranks 0,1 on
# the first pod and 2,3 on the second, so the server shares a pod with a
# worker and every exchange with the other pod crosses the link.
# For each placement, RUNS alternating rounds run every variant once (each
# process under the machine's benchmark lock); prints medians of `total
# images/sec` (which counts the workers' images only).
#
#   bench/ps-compare.sh                  # 5 rounds, 1gbit
#   RUNS=3 RATE=10gbit bench/ps-compare.sh
#
# Needs root for the simulated hosts (namespaces, tc, sshd); cleans up the
# pods on any exit. About 20 minutes with the defaults (3 rounds took 13).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
rate=${RATE:-1gbit}
worker=${WORKER:-$PWD/build/worker/ringtrain-worker}
lock=${LOCK:-/tmp/ringtrain-bench.lock}
if [ ! -x "$worker" ]; then
    echo "ps-compare: error: $worker not built; run meson compile -C build first" >&2
    exit 2
fi
case $runs in '' | *[!0-9]* | 0)
    echo "ps-compare: error: RUNS=$runs: use a positive number of rounds" >&2
    exit 2 ;;
esac
export RINGTRAIN_BUILD_DIR=${RINGTRAIN_BUILD_DIR:-$PWD/build}
# shellcheck source=tests/e2e/simpods.sh
source tests/e2e/simpods.sh
# The pods' holders and sshd end by themselves after E2E_MAX_SECONDS
# (simpods.sh: 900, for tests); a full benchmark takes longer.
E2E_MAX_SECONDS=7200
e2e_skip() { echo "ps-compare: error: cannot run here: $*" >&2; exit 2; }
e2e_fail() { echo "ps-compare: error: $*" >&2; exit 1; }
pods_require
pods_require_tc ""
tc_rate_bytes "$rate" >/dev/null ||
    e2e_skip "RATE=$rate: use a tc rate such as 1gbit, 10gbit or 500mbit"

out=$(mktemp -d /tmp/ringtrain-ps-compare.XXXXXX)
job=$(e2e_job_name)
pods_up "$job" bench 2
trap 'pods_cleanup; rm -rf "$out"' EXIT
pods_hostfile 2
pods_wait_sshd
pods_limit_links "$rate"

variants=("allreduce np=3" "ps np=4" "allreduce np=4")
models=(lenet resnet20)
common=(--batch_size=64 --num_intra_threads=1 --bind=none --num_warmup_batches=5)
steps() { [ "$1" = lenet ] && echo 60 || echo 30; }
run_one() { # placement model variant round
    local where=$1 model=$2 v=$3 i=$4 np args
    np=${v##*=}
    args=("$worker" --model="$model" "${common[@]}" --num_batches="$(steps "$model")")
    [[ $v == ps* ]] && args+=(--variable_update=parameter_server)
    local log="$out/$where.$model.${v// /_}.$i"
    flock "$lockfd"
    if [ "$where" = host ]; then
        ( exec {lockfd}>&-
          env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 RINGTRAIN_PS_RANKS=3 \
              mpirun -np "$np" --oversubscribe --bind-to none -x RINGTRAIN_PS_RANKS "${args[@]}" ) \
            >"$log" 2>&1
    else
        ( exec {lockfd}>&-
          export RINGTRAIN_PS_RANKS=3
          pods_mpirun -np "$np" --bind-to none -x RINGTRAIN_PS_RANKS \
              -x OMPI_MCA_mpi_yield_when_idle=1 "${args[@]}" ) >"$log" 2>&1
    fi || e2e_fail "$where $model $v failed:$(echo; tail -5 "$log")"
    flock -u "$lockfd"
    grep -q "^total images/sec" "$log" || e2e_fail "$where $model $v printed no result ($log)"
}
exec {lockfd}>>"$lock"
for where in host pods; do
    for model in "${models[@]}"; do
        for i in $(seq 1 "$runs"); do
            for v in "${variants[@]}"; do
                echo "# $where $model round $i/$runs: $v" >&2
                run_one "$where" "$model" "$v" "$i"
            done
        done
    done
done

python3 - "$out" "$runs" "$rate" <<'PY'
import re, statistics, sys
out, runs, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3]
variants = ["allreduce np=3", "ps np=4", "allreduce np=4"]
def ips(where, model, v, i):
    t = open(f"{out}/{where}.{model}.{v.replace(' ', '_')}.{i}").read()
    return float(re.search(r"^total images/sec: ([0-9.]+)", t, re.M).group(1))
print(f"# bench/ps-compare.sh: medians of {runs} alternating rounds of total images/sec;")
print("# synthetic, batch 64 per worker, 1 thread per rank; ps np=4 = 3 workers + 1 server")
print(f"# pods = 2 simulated hosts x 2 slots, links shaped to {rate} each way (tc tbf)\n")
print("| placement | model | " + " | ".join(variants) + " | ps / allreduce (3 workers) |")
print("|---|---|" + "---:|" * (len(variants) + 1))
for where, name in (("host", "one host"), ("pods", f"2 hosts, {rate}")):
    for model in ("lenet", "resnet20"):
        med = {v: statistics.median(ips(where, model, v, i) for i in range(1, runs + 1))
               for v in variants}
        print(f"| {name} | {model} | " + " | ".join(f"{med[v]:.1f}" for v in variants) +
              f" | {med['ps np=4'] / med['allreduce np=3']:.2f} |")
PY
