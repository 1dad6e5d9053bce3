#!/usr/bin/env bash
# bench/scaling in its smallest mode (lenet, ranks 1 and 2 on this host, one
# round of 2 batches, counted as 1 core so that 2 ranks are oversubscribed):
# the CSV's columns and rows, rounds.csv, the efficiency against each run's
# own compute run, the plots' data and scripts, and the plots are PNGs.
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
    --batches 2 --warmup 1 --batch 8 --cores 1 --out "$tmp/out" >"$tmp/log" 2>&1 ||
    fail "bench/scaling failed: $(tail -5 "$tmp/log")"
csv=$tmp/out/scaling.csv
head -1 "$csv" | grep -qx "model,placement,hosts,ranks,images_per_sec,efficiency,min_images_per_sec,max_images_per_sec,runs,batch_per_rank,link,compute_images_per_sec,compute_efficiency,oversubscribed" ||
    fail "CSV header: $(head -1 "$csv")"
grep -Eq '^lenet,1host,1,1,[0-9]+\.[0-9]+,1\.0000,.*,[0-9]+\.[0-9]+,1\.0000,0$' "$csv" ||
    fail "no 1-rank row with both efficiencies 1, not oversubscribed: $(cat "$csv")"
grep -Eq '^lenet,1host,1,2,[0-9]+\.[0-9]+,[0-9]+\.[0-9]{4},.*,1$' "$csv" ||
    fail "no 2-rank row marked oversubscribed on 1 core: $(cat "$csv")"
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
# The 2-rank efficiency is the run over its own compute run (one round:
# the median is that ratio), not over 2 x the 1-rank rate.
want=$(awk -v a="$(ips lenet.1host.2.1)" -v c="$(ips lenet.cal-1host.2.1)" \
    'BEGIN { printf "lenet,1host,1,2,.*,%.2f,%.4f,1", c, a / c }')
grep -qx "$want" "$csv" || fail "2-rank row against its compute run, wanted /$want/: $(cat "$csv")"
# What the plots are drawn from: per series ranks, images/sec, efficiency,
# compute images/sec, compute efficiency, oversubscribed; the efficiency
# plot takes column 5 and rings the oversubscribed points.
dat=$tmp/out/raw/plot.lenet.1host.dat
awk '!/^#/ { if (NF != 6) bad = 1; n++ } END { exit bad || n != 2 }' "$dat" ||
    fail "plot data: $(cat "$dat")"
grep -Eq '^1 [0-9.]+ 1\.00000 [0-9.]+ 1\.00000 0$' "$dat" || fail "plot data, 1 rank: $(cat "$dat")"
grep -Eq '^2 [0-9.]+ [0-9.]+ [0-9.]+ [0-9.]+ 1$' "$dat" || fail "plot data, 2 ranks: $(cat "$dat")"
gp=$tmp/out/raw/efficiency.png.gp
grep -q "plot.lenet.1host.dat' using 1:5 with linespoints" "$gp" ||
    fail "efficiency plot script does not plot column 5: $(cat "$gp")"
grep -q "using 1:(\$6 > 0 ? \$5 : 1/0) with points.*title 'more ranks than cores (1)'" "$gp" ||
    fail "efficiency plot script does not ring the oversubscribed points: $(cat "$gp")"
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
