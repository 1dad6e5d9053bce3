#!/usr/bin/env bash
# bench/scaling in its smallest mode (lenet, ranks 1 and 2 on this host, one
# round of 2 batches): the CSV's columns and rows, compute.csv, and the
# plots are PNGs.
# Skips (77) without gnuplot. Uses a private lock file so the suite never
# waits for a benchmark.
#   test_scaling.sh SOURCE_ROOT
set -u
src=$1
command -v gnuplot >/dev/null 2>&1 || { echo "SKIP: gnuplot not installed (Debian: gnuplot-nox)"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
LOCK=$tmp/lock "$src/bench/scaling" --models lenet --ranks 1,2 --hosts none --reps 1 \
    --batches 2 --warmup 1 --batch 8 --out "$tmp/out" >"$tmp/log" 2>&1 ||
    fail "bench/scaling failed: $(tail -5 "$tmp/log")"
csv=$tmp/out/scaling.csv
head -1 "$csv" | grep -qx "model,placement,hosts,ranks,images_per_sec,efficiency,min_images_per_sec,max_images_per_sec,runs,batch_per_rank,link" ||
    fail "CSV header: $(head -1 "$csv")"
grep -Eq '^lenet,1host,1,1,[0-9]+\.[0-9]+,1\.0000,' "$csv" || fail "no 1-rank row with efficiency 1: $(cat "$csv")"
grep -Eq '^lenet,1host,1,2,[0-9]+\.[0-9]+,[0-9]+\.[0-9]{4},' "$csv" || fail "no 2-rank row: $(cat "$csv")"
[ "$(wc -l <"$csv")" = 3 ] || fail "expected 2 rows: $(cat "$csv")"
# compute.csv: the 2-rank independent run of the same round, its step time
# = ranks x batch / images/sec (the figure bench/predict-validate.sh reads).
comp=$tmp/out/compute.csv
head -1 "$comp" | grep -qx "model,ranks,images_per_sec,step_ms,min_step_ms,max_step_ms,runs,batch_per_rank" ||
    fail "compute.csv header: $(head -1 "$comp")"
[ "$(wc -l <"$comp")" = 2 ] || fail "expected one compute row: $(cat "$comp")"
awk -F, 'NR == 2 && $1 == "lenet" && $2 == 2 && $7 == 1 && $8 == 8 &&
         ($4 - 2 * 8 / $3 * 1000) ^ 2 < 1e-4 { ok = 1 } END { exit !ok }' "$comp" ||
    fail "compute row: $(cat "$comp")"
grep -q "^Variables:   independent" "$tmp/out/raw/lenet.independent.2.1" ||
    fail "the compute run is not --variable_update=independent: $(head -20 "$tmp/out/raw/lenet.independent.2.1")"
for png in images_per_sec.png efficiency.png; do
    magic=$(head -c 8 "$tmp/out/$png" | od -An -tx1 | tr -d ' \n')
    [ "$magic" = 89504e470d0a1a0a ] || fail "$png is not a PNG (magic $magic)"
done
# bad input: exit 2 with a message
bad() { # expected-message args...
    local want=$1 rc
    shift
    "$src/bench/scaling" "$@" >/dev/null 2>"$tmp/err"
    rc=$?
    [ "$rc" = 2 ] || fail "bench/scaling $* exited $rc, expected 2"
    grep -qF "scaling: error: $want" "$tmp/err" || fail "bench/scaling $*: $(cat "$tmp/err")"
}
bad "--ranks '2' must include 1" --ranks 2
bad "--reps 'x'" --reps x
bad "unknown argument '--bogus'" --bogus
echo ok
