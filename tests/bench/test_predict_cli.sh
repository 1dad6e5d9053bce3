#!/usr/bin/env bash
# ringtrain-predict as a program: bad input exits 2 naming the flag; a quick
# prediction prints numbers; the model orders the algorithms the way the
# cost formulas say (hier beats a flat ring over a slow link at 2 x 8; no
# overlap is never faster); --compute-from measure times the CPU kernels.
#   test_predict_cli.sh PREDICT
set -u
predict=$1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

expect_bad() { # expected-substring args...
    local want=$1 rc
    shift
    "$predict" "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    [ "$rc" = 2 ] || fail "$* exited $rc, expected 2"
    grep -q "^ringtrain-predict: error: .*$want" "$tmp/err" ||
        fail "$*: stderr lacks 'ringtrain-predict: error: ...$want': $(cat "$tmp/err")"
}
expect_bad "--gpus '0'" --gpus 0 --step-ms 100
expect_bad "--link 'fast'" --link fast --step-ms 100
expect_bad "--latency '5'" --latency 5 --step-ms 100
expect_bad "--algo 'tree'" --algo tree --step-ms 100
expect_bad "--overlap 'maybe'" --overlap maybe --step-ms 100
expect_bad "--link-on-cores 'yes'" --link-on-cores yes --step-ms 100
expect_bad "--model 'vgg99'" --model vgg99 --step-ms 100
expect_bad "unknown flag '--bogus'" --bogus 1
expect_bad "not a multiple of --gpus-per-node" --gpus 12 --gpus-per-node 8 --step-ms 100
expect_bad "both give the compute time" --step-ms 10 --compute-from measure
expect_bad "--compute-from $tmp/none" --compute-from "$tmp/none"
printf 'forward_ms 1\nbackwrd_ms 2\n' >"$tmp/bad.txt"
expect_bad "unknown key 'backwrd_ms'" --model lenet --compute-from "$tmp/bad.txt"

ips() { "$predict" "$@" | sed -n 's/^predicted images\/sec: \([0-9.]*\) .*/\1/p'; }
# 16 x ResNet-101 at 100 ms per step, batch 64: at most 16 * 640 images/sec
hier=$(ips --model resnet101 --gpus 16 --gpus-per-node 8 --link 1gbit --step-ms 100 --algo hier)
ring=$(ips --model resnet101 --gpus 16 --gpus-per-node 8 --link 1gbit --step-ms 100 --algo ring)
noov=$(ips --model resnet101 --gpus 16 --gpus-per-node 8 --link 1gbit --step-ms 100 --algo hier --overlap off)
one=$(ips --model resnet101 --gpus 1 --step-ms 100)
echo "resnet101 16 GPUs 1gbit: hier $hier, ring $ring, hier no overlap $noov; 1 GPU $one"
if [ -z "$hier" ] || [ -z "$ring" ] || [ -z "$noov" ] || [ -z "$one" ]; then
    fail "no 'predicted images/sec' line"
fi
python3 - "$hier" "$ring" "$noov" "$one" <<'PY' || fail "ordering of predictions"
import sys
hier, ring, noov, one = map(float, sys.argv[1:])
ok = True
# 1 GPU: exactly batch / step
if abs(one - 640.0) > 0.01: print(f"1 GPU {one} != 640"); ok = False
if not hier <= 16 * 640.0: print(f"hier {hier} above linear scaling"); ok = False
if not hier > ring: print(f"hier {hier} not above flat ring {ring} at 1 Gbit/s"); ok = False
if not noov <= hier: print(f"no overlap {noov} above overlap {hier}"); ok = False
sys.exit(0 if ok else 1)
PY
# 2 nodes x 2 ranks sharing 1 core each: a rate-limited link keeps its rate
# (its bytes are not slowed by the sharing), a link made of the cores does
# not; the difference is exactly the wire term: n * beta = 6.65 MB at
# 1 Gbit/s = 53.2 ms more per step for LeNet's 1,663,370 floats.
# (Overlap off here, so the whole wire term shows.)
shared="--model lenet --gpus 4 --gpus-per-node 2 --batch 32 --step-ms 20 --cores 1 --link 1gbit --latency 0us"
# shellcheck disable=SC2086 # $shared holds several words
step() { "$predict" $shared "$@" | sed -n 's/^  step  *\([0-9.]*\) ms$/\1/p'; }
off=$(step --link-on-cores off --overlap off)
on=$(step --link-on-cores on --overlap off)
echo "lenet 2 x 2 on 1 core per node, 1gbit: step $off ms (link at its rate), $on ms (link on the cores)"
python3 - "$off" "$on" <<'PY' || fail "--link-on-cores: steps $off / $on"
import sys
off, on = map(float, sys.argv[1:])
wire = 1663370 * 4 / (1e9 / 8) * 1e3   # ms
sys.exit(0 if abs((on - off) - wire) < 0.01 else 1)
PY
# No core to spare: no overlap at all (the progress thread gets the core
# only in time slices), so --overlap on and off give the same step; the
# Buckets line lists the plan's sizes (LeNet's first bucket: its large
# linear layer, 1,611,280 floats; the rest with 64-byte padding).
# shellcheck disable=SC2086 # $shared holds several words
first=$("$predict" $shared | sed -n 's/^Buckets: .*floats: \([0-9]*\) \([0-9]*\)$/\1+\2/p')
[ "$first" = 1611280+52096 ] || fail "LeNet's buckets: '$first', expected 1611280+52096"
ov_on=$(step --link-on-cores off --overlap on)
[ "$ov_on" = "$off" ] || fail "no spare core: overlap on gives $ov_on ms, off $off ms"
# --compression halves the bytes between nodes: 2 nodes x 1 rank, no
# latency, no overlap, so the allreduce is n * beta = 53.228 ms, then half.
comm() { "$predict" --model lenet --gpus 2 --gpus-per-node 1 --link 1gbit --latency 0us \
    --step-ms 10 --overlap off "$@" | sed -n 's/^  allreduce (all buckets) *\([0-9.]*\) ms.*/\1/p'; }
full=$(comm)
half=$(comm --compression fp16)
echo "lenet 2 x 1, 1gbit: allreduce $full ms fp32, $half ms fp16"
python3 - "$full" "$half" <<'PY' || fail "--compression: allreduce $full / $half ms"
import sys
full, half = map(float, sys.argv[1:])
wire = 1663370 * 4 / (1e9 / 8) * 1e3
sys.exit(0 if abs(full - wire) < 0.01 and abs(half - wire / 2) < 0.01 else 1)
PY
expect_bad "--compression 'int8'" --compression int8 --step-ms 100
expect_bad "--shared-step-ms 'x'" --shared-step-ms x --step-ms 100 --cores 2
expect_bad "--shared-step-ms needs --cores" --shared-step-ms 50 --step-ms 20
# measured compute with the ranks at once replaces the proportional rule:
# forward + backward = 50 ms, not 20 x 2
fwd_bwd() { "$predict" --model lenet --gpus 2 --gpus-per-node 2 --cores 1 --step-ms 20 "$@" |
    awk 'NF == 3 && ($1 == "forward" || $1 == "backward") { s += $2 } END { printf "%.3f", s }'; }
compute=$(fwd_bwd --shared-step-ms 50)
[ "$compute" = 50.000 ] || fail "--shared-step-ms 50: forward + backward = $compute ms"
compute=$(fwd_bwd)
[ "$compute" = 40.000 ] || fail "proportional: forward + backward = $compute ms, expected 40"
# the default (ResNet-101, 16 GPUs, 25 Gbit) says where its compute comes from
"$predict" >"$tmp/default" || fail "default run failed"
grep -q "INPUT, not measured" "$tmp/default" || fail "default run does not label its compute input"
grep -q "^scaling efficiency: 0\.[0-9]*$" "$tmp/default" || fail "no efficiency in: $(cat "$tmp/default")"
# measured compute with the CPU kernels (tiny model, one step)
"$predict" --model lenet --batch 4 --gpus 2 --gpus-per-node 2 --compute-from measure \
    --measure-steps 1 >"$tmp/measure" || fail "--compute-from measure failed"
grep -q "MEASURED here" "$tmp/measure" || fail "measure run lacks 'MEASURED here': $(cat "$tmp/measure")"
grep -Eq "^predicted images/sec: [0-9]+\.[0-9]+" "$tmp/measure" || fail "measure run has no prediction"
[ "$fails" = 0 ] || exit 1
echo "ok"
