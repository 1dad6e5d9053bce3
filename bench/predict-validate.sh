#!/usr/bin/env bash
# Validates ringtrain-predict against measured small runs on this machine.
#
# Measured INPUTS (not predictions):
#   - alpha/beta of the shared-memory allreduce on one host: the allreduce
#     bench at np=2 (automatic algorithm, the worker's), sizes 4 B..32 MiB,
#     REPS runs, median time per size; a least-squares fit of
#     t = 2 alpha + bytes * beta (the ring formula at p = 2);
#   - compute per step at one rank: the 1-rank images/sec of a bench/scaling
#     run (its CSV), as --step-ms = batch / images_per_sec * 1000; the split
#     between layers from FLOPs;
#   - the machine's cores (nproc): ranks beyond them slow communication in
#     proportion and leave no core for overlap;
#   - compute with K ranks sharing the machine, for each rank count K of the
#     CSV's other rows: DIR/compute.csv, which bench/scaling measures in the
#     same rounds as the rows it explains (the worker at np=K with
#     --variable_update=independent: no gradients, 4 bytes per step, so a
#     step waits for the slowest rank as in the synchronous job), step time =
#     K x batch / total images/sec, median of the rounds (--shared-step-ms).
#     It takes the place of a proportional slowdown, which misses what K
#     processes on fewer cores lose to each other (context switches, caches,
#     unequal shares). Measured minutes apart it would carry the machine's
#     drift (this host's speed moves by 5-10% between runs) into the error.
#   - when the CSV has 2-host rows (and we are root): alpha/beta of the
#     pods' link the same way, the allreduce bench at 2 pods x 1 rank
#     (TCP over the veths, shaped with tc when the CSV's link column says so).
#     Unshaped, that "link" is the kernel copying on this machine's cores, so
#     the model is told so (--link-on-cores on); shaped, it is a link at its
#     rate.
# PREDICTED, then compared with the same CSV's medians: every other row
# (1host ranks 2, 4 ...; 2hosts 1 and 2 ranks per pod). The pods share this
# machine's cores, so each simulated host gets nproc/2 of them.
#
#   bench/predict-validate.sh DIR        # DIR: a bench/scaling --out directory
#
# Environment: RINGTRAIN_BUILD_DIR (build), LOCK, REPS (5).
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "predict-validate: error: $*" >&2; exit 2; }
[ $# -eq 1 ] || die "usage: bench/predict-validate.sh SCALING_DIR (a bench/scaling --out directory)"
csv=$1/scaling.csv
[ -f "$csv" ] || die "$csv not found: run bench/scaling --out $1 first"
build=${RINGTRAIN_BUILD_DIR:-$PWD/build}
bench=$build/bench/ringtrain-allreduce-bench
predict=$build/bench/ringtrain-predict
for p in "$bench" "$predict"; do
    [ -x "$p" ] || die "$p is not built; run meson compile -C build first"
done
lock=${LOCK:-/tmp/ringtrain-bench.lock}
reps=${REPS:-5}
cores=$(nproc)
tmp=$(mktemp -d /tmp/ringtrain-validate.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

for i in $(seq 1 "$reps"); do
    flock "$lock" mpirun --oversubscribe --bind-to none -np 2 "$bench" \
        -b 4 -e 32M -f 4 -n 10 -w 2 >"$tmp/ab.$i" 2>&1 ||
        { tail -5 "$tmp/ab.$i" >&2; echo "predict-validate: error: allreduce bench failed" >&2; exit 1; }
done

# Compute with K ranks at once: measured by bench/scaling in the same rounds.
[ -f "$1/compute.csv" ] ||
    die "$1/compute.csv not found: it holds the compute of K ranks at once, measured in the same rounds; rerun bench/scaling --out $1"

pods=0
if grep -q ',2hosts,' "$csv"; then
    link=$(awk -F, 'NR == 2 { print $11 }' "$csv")
    export RINGTRAIN_BUILD_DIR=$build
    # shellcheck source=tests/e2e/simpods.sh
    source tests/e2e/simpods.sh
    e2e_skip() { echo "predict-validate: error: cannot run the pods here: $*" >&2; exit 2; }
    e2e_fail() { echo "predict-validate: error: $*" >&2; exit 1; }
    # The pods' holders and sshd end by themselves after E2E_MAX_SECONDS
    # (simpods.sh: 900, for tests); a full report takes longer.
    E2E_MAX_SECONDS=7200
    pods_require
    [ "$link" = none ] || pods_require_tc ""
    pods_up "$(e2e_job_name)" bench 2
    trap 'pods_cleanup; rm -rf "$tmp"' EXIT
    pods_hostfile 1
    pods_wait_sshd
    [ "$link" = none ] || pods_limit_links "$link"
    exec {lockfd}>>"$lock"
    for i in $(seq 1 "$reps"); do
        flock "$lockfd"
        ( exec {lockfd}>&-
          pods_mpirun -np 2 --map-by ppr:1:node --bind-to none "$bench" \
              -b 4 -e 32M -f 4 -n 10 -w 2 ) >"$tmp/pods.$i" 2>&1 ||
            { flock -u "$lockfd"; tail -5 "$tmp/pods.$i" >&2
              echo "predict-validate: error: allreduce bench across the pods failed" >&2; exit 1; }
        flock -u "$lockfd"
    done
    pods=1
fi

python3 - "$tmp" "$reps" "$csv" "$predict" "$cores" "$pods" "$1/compute.csv" <<'PY'
import csv, statistics, subprocess, sys
tmp, reps, path, predict, cores, pods = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6] == "1"
compute_path = sys.argv[7]

def fit(prefix, what):
    times = {}
    for i in range(1, reps + 1):
        for line in open(f"{tmp}/{prefix}.{i}"):
            f = line.split()
            if line.startswith("#") or len(f) < 13 or not f[0].isdigit():
                continue
            times.setdefault(int(f[0]), []).append(float(f[5]) * 1e-6)  # out-of-place, us -> s
    pts = sorted((b, statistics.median(v)) for b, v in times.items())
    # p = 2 ring: t = 2 alpha + bytes beta. alpha from the smallest size;
    # beta by least squares over the sizes of the gradient buckets (1 MiB
    # and up), where the bytes dominate.
    alpha = pts[0][1] / 2.0
    big = [(b, t) for b, t in pts if b >= 1 << 20]
    beta = sum(b * (t - 2 * alpha) for b, t in big) / sum(b * b for b, t in big)
    a = 2 * alpha
    print(f"# measured: {what}, allreduce at np=2, medians of {reps} runs, 4 B..32 MiB:")
    print(f"#   alpha = {alpha * 1e6:.2f} us, beta = 1/({1 / beta / 1e9:.3f} GB/s)   "
          f"[t = 2 alpha + bytes beta: alpha from 4 B, beta fitted over 1..32 MiB]")
    for b, t in pts:
        if b in (4, 1 << 20, 1 << 24):
            print(f"#   {b:>9} B: measured {t * 1e6:9.1f} us, fit {(a + beta * b) * 1e6:9.1f} us")
    return alpha, beta

def shared_step_ms(model, k):
    for r in csv.DictReader(open(compute_path)):
        if r["model"] == model and int(r["ranks"]) == k:
            return float(r["step_ms"]), int(r["runs"])
    sys.exit(f"predict-validate: error: {compute_path} has no {model} row at {k} ranks; "
             f"rerun bench/scaling --out DIR")

alpha, beta = fit("ab", "shared memory on one host")
palpha, pbeta = fit("pods", "2 pods x 1 rank (TCP over veths)") if pods else (alpha, beta)
rows = list(csv.DictReader(open(path)))
base = {r["model"]: r for r in rows if r["placement"] == "1host" and r["ranks"] == "1"}
batch = int(rows[0]["batch_per_rank"])
shared = {(r["model"], int(r["ranks"])): None for r in rows if int(r["ranks"]) > 1}
for key in shared:
    shared[key], runs = shared_step_ms(*key)
    print(f"# measured: {key[0]} compute with {key[1]} ranks at once (--variable_update="
          f"independent: no gradients, 4 bytes per step): {shared[key]:.2f} ms per step, "
          f"median of {runs} rounds of {compute_path}")
print(f"# measured: compute from each model's 1-rank run of {path}; cores = {cores}")
print()
print("| model | placement | ranks | predicted images/sec | measured images/sec | error | "
      "predicted eff. | measured eff. |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
worst = 0.0
for r in rows:
    if r is base.get(r["model"]) or r["model"] not in base:
        continue
    b = base[r["model"]]
    batch = int(r["batch_per_rank"])
    step_ms = batch / float(b["images_per_sec"]) * 1000.0
    ranks, hosts = int(r["ranks"]), int(r["hosts"])
    args = [predict, "--model", r["model"], "--gpus", str(ranks),
            "--gpus-per-node", str(ranks // hosts), "--batch", str(batch),
            "--step-ms", f"{step_ms:.4f}", "--cores", str(max(cores // hosts, 1)),
            "--link", f"{1 / pbeta / 1e9:.4f}GB/s", "--latency", f"{palpha * 1e6:.3f}us",
            "--intra-bw", f"{1 / beta / 1e9:.4f}", "--intra-latency", f"{alpha * 1e6:.3f}us",
            "--link-on-cores", "on" if r["link"] == "none" else "off",
            "--shared-step-ms", f"{shared[(r['model'], ranks)]:.4f}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    pred = float(out.split("predicted images/sec: ")[1].split()[0])
    peff = float(out.split("scaling efficiency: ")[1].split()[0])
    meas = float(r["images_per_sec"])
    err = (pred - meas) / meas
    worst = max(worst, abs(err))
    print(f"| {r['model']} | {r['placement']} | {ranks} | {pred:.1f} | {meas:.1f} | "
          f"{err * 100:+.1f}% | {peff:.3f} | {float(r['efficiency']):.3f} |")
print(f"\nworst |error|: {worst * 100:.1f}% (target <= 15%)")
print("command for each row: " + predict + " --model M --gpus R --gpus-per-node R/H --batch B "
      "--step-ms <1-rank> --cores <nproc/H> --intra-bw <1/beta> --intra-latency <alpha> --link <1/beta pods> --latency <alpha pods> "
      "--link-on-cores <on when the CSV's link is none> --shared-step-ms <R ranks at once>")
PY
