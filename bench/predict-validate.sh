#!/usr/bin/env bash
# Validates ringtrain-predict against measured small runs on this machine.
#
# Measured INPUTS (not predictions):
#   - alpha/beta of the shared-memory allreduce on one host: the allreduce
#     bench at np=2 (automatic algorithm, the worker's), sizes 4 B..32 MiB,
#     REPS runs, median time per size; a least-squares fit of
#     t = 2 alpha + bytes * beta (the ring formula at p = 2);
#   - compute per step at one rank: the 1-rank images/sec of the same round
#     of a bench/scaling run (DIR/rounds.csv), as --step-ms = batch /
#     images_per_sec * 1000; the split between layers from FLOPs;
#   - the machine's cores (nproc): ranks beyond them slow communication in
#     proportion and leave no core for overlap;
#   - compute with K ranks sharing the machine, for each multi-rank run:
#     its compute run, which bench/scaling makes just before it in the same
#     round (the worker at np=K with --variable_update=independent: no
#     gradients, 4 bytes per step, so a step waits for the slowest rank as
#     in the synchronous job), step time = K x batch / images/sec
#     (--shared-step-ms). It takes the place of a proportional slowdown,
#     which misses what K processes on fewer cores lose to each other
#     (context switches, caches, unequal shares).
#   - when the CSV has 2-host rows (and we are root): alpha/beta of the
#     pods' link the same way, the allreduce bench at 2 pods x 1 rank
#     (TCP over the veths, shaped with tc when the CSV's link column says so).
#     Unshaped, that "link" is the kernel copying on this machine's cores, so
#     the model is told so (--link-on-cores on); shaped, it is a link at its
#     rate.
# PREDICTED, then compared: every multi-rank run of every round (1host
# ranks 2, 4 ...; 2hosts 1 and 2 ranks per pod), each from its own round's
# 1-rank run and compute run; a row's error is the median over the rounds of
# (predicted - measured) / measured, a ratio within one round.
# This machine's speed shifts by ~25% for tens of seconds at a time (at 2
# ranks even runs with no communication come out at either ~480 or ~640
# images/sec for ResNet-20), so inputs measured in other rounds, or medians
# of separate rounds, compare runs made in different states. The pods share
# this machine's cores, so each simulated host gets nproc/2 of them.
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

# Each run with its compute run and round: written by bench/scaling.
[ -f "$1/rounds.csv" ] ||
    die "$1/rounds.csv not found: it pairs each run with its compute run of the same round; rerun bench/scaling --out $1"

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

python3 - "$tmp" "$reps" "$csv" "$predict" "$cores" "$pods" "$1/rounds.csv" <<'PY'
import csv, statistics, subprocess, sys
tmp, reps, path, predict, cores, pods = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6] == "1"
rounds_path = sys.argv[7]

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

alpha, beta = fit("ab", "shared memory on one host")
palpha, pbeta = fit("pods", "2 pods x 1 rank (TCP over veths)") if pods else (alpha, beta)
rows = list(csv.DictReader(open(path)))
rounds = list(csv.DictReader(open(rounds_path)))
one = {(r["model"], r["round"]): float(r["images_per_sec"])
       for r in rounds if r["placement"] == "1host" and r["ranks"] == "1"}

def predict_round(r, base_ips, compute_ips):
    """ringtrain-predict for one run: (images/sec, efficiency)."""
    batch, ranks, hosts = int(r["batch_per_rank"]), int(r["ranks"]), int(r["hosts"])
    args = [predict, "--model", r["model"], "--gpus", str(ranks),
            "--gpus-per-node", str(ranks // hosts), "--batch", str(batch),
            "--step-ms", f"{batch / base_ips * 1000.0:.4f}",
            "--cores", str(max(cores // hosts, 1)),
            "--link", f"{1 / pbeta / 1e9:.4f}GB/s", "--latency", f"{palpha * 1e6:.3f}us",
            "--intra-bw", f"{1 / beta / 1e9:.4f}", "--intra-latency", f"{alpha * 1e6:.3f}us",
            "--link-on-cores", "on" if r["link"] == "none" else "off",
            "--shared-step-ms", f"{ranks * batch / compute_ips * 1000.0:.4f}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return (float(out.split("predicted images/sec: ")[1].split()[0]),
            float(out.split("scaling efficiency: ")[1].split()[0]))

print(f"# measured, per round of {rounds_path}: each model's 1-rank run (--step-ms) and each "
      f"run's compute run just before it (--variable_update=independent, --shared-step-ms); "
      f"cores = {cores}")
print()
print("| model | placement | ranks | predicted images/sec | measured images/sec | error "
      "(median of rounds) | rounds' errors | compute, ms/step | predicted eff. | measured eff. |")
print("|---|---|---:|---:|---:|---:|---|---:|---:|---:|")
worst = 0.0
for r in rows:
    if int(r["ranks"]) == 1:
        continue
    preds, effs, errs, shared = [], [], [], []
    for q in rounds:
        if (q["model"], q["placement"], q["ranks"]) != (r["model"], r["placement"], r["ranks"]):
            continue
        if not q["compute_images_per_sec"] or (q["model"], q["round"]) not in one:
            sys.exit(f"predict-validate: error: {rounds_path}: round {q['round']} of "
                     f"{q['model']} {q['placement']} {q['ranks']} lacks its 1-rank or compute "
                     f"run; rerun bench/scaling")
        comp = float(q["compute_images_per_sec"])
        pred, peff = predict_round(q, one[(q["model"], q["round"])], comp)
        meas = float(q["images_per_sec"])
        preds.append(pred)
        effs.append(peff)
        errs.append((pred - meas) / meas)
        shared.append(int(q["ranks"]) * int(q["batch_per_rank"]) / comp * 1000.0)
    if not errs:
        sys.exit(f"predict-validate: error: {rounds_path} has no rounds of {r['model']} "
                 f"{r['placement']} {r['ranks']}")
    err = statistics.median(errs)
    worst = max(worst, abs(err))
    each = " ".join(f"{e * 100:+.0f}" for e in errs)
    print(f"| {r['model']} | {r['placement']} | {r['ranks']} | {statistics.median(preds):.1f} | "
          f"{float(r['images_per_sec']):.1f} | {err * 100:+.1f}% | {each} | "
          f"{statistics.median(shared):.2f} | {statistics.median(effs):.3f} | "
          f"{float(r['efficiency']):.3f} |")
print(f"\nworst |error|: {worst * 100:.1f}% (target <= 15%)")
print("command for each run: " + predict + " --model M --gpus R --gpus-per-node R/H --batch B "
      "--step-ms <1-rank, same round> --cores <nproc/H> --intra-bw <1/beta> --intra-latency <alpha> "
      "--link <1/beta pods> --latency <alpha pods> --link-on-cores <on when the CSV's link is none> "
      "--shared-step-ms <its compute run>")
PY
