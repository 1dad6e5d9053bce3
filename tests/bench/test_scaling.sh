#!/usr/bin/env bash
# bench/scaling in its smallest mode (lenet, ranks 1 and 2 on this host, one
# round of 2 batches): the CSV's columns and rows, rounds.csv, and the
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
# rounds.csv: every run of the round, the 2-rank one with its compute run
# (--variable_update=independent, made just before it); the figures are the
# raw outputs' own.
rounds=$tmp/out/rounds.csv
head -1 "$rounds" | grep -qx "model,placement,hosts,ranks,round,images_per_sec,compute_images_per_sec,batch_per_rank,link" ||
    fail "rounds.csv header: $(head -1 "$rounds")"
[ "$(wc -l <"$rounds")" = 3 ] || fail "expected two rounds.csv rows: $(cat "$rounds")"
ips() { sed -n 's/^total images\/sec: //p' "$tmp/out/raw/$1"; }
grep -qx "lenet,1host,1,1,1,$(ips lenet.1host.1.1),,8,none" "$rounds" ||
    fail "1-rank row: $(cat "$rounds")"
grep -qx "lenet,1host,1,2,1,$(ips lenet.1host.2.1),$(ips lenet.cal-1host.2.1),8,none" "$rounds" ||
    fail "2-rank row with its compute run: $(cat "$rounds")"
grep -q "^Variables:   independent" "$tmp/out/raw/lenet.cal-1host.2.1" ||
    fail "the compute run is not --variable_update=independent: $(head -20 "$tmp/out/raw/lenet.cal-1host.2.1")"
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
