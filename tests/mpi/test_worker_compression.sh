#!/usr/bin/env bash
# --compression: gradients cross the ring as fp16 / bf16 (fp32 sums). After
# 5 steps of mlp at 2 ranks the parameters stay close to the uncompressed
# run's but are not the same (the rounding is really in effect; bf16 keeps
# fewer bits than fp16, so it lands farther away), the header names the
# wire format, and a bad value is refused (exit 2) naming the flag.
set -uo pipefail
worker=$1
compare="$(dirname "$0")/../tools/compare_params.py"
tmp=$(mktemp -d /tmp/ringtrain-compress.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
args=(--model=mlp --batch_size=16 --num_batches=5 --num_warmup_batches=0
      --num_intra_threads=1 --bind=none --learning_rate=0.05 --allreduce=ring)
fail() { echo "FAIL: $*"; cat "$tmp/log"; exit 1; }
run() { # out extra...
    local out=$1; shift
    timeout 120 mpirun -np 2 --oversubscribe "$worker" "${args[@]}" --dump_params="$out" "$@" \
        >"$tmp/log" 2>&1
}
run "$tmp/fp32.bin" || fail "uncompressed run"
run "$tmp/fp32b.bin" || fail "second uncompressed run"
python3 "$compare" "$tmp/fp32b.bin" "$tmp/fp32.bin" --max-rel 1e-12 || fail "uncompressed runs differ"
for w in fp16 bf16; do
    run "$tmp/$w.bin" --compression=$w || fail "$w run"
    grep -q "ring, wire $w)" "$tmp/log" || fail "$w: header does not name the wire format"
done
python3 "$compare" "$tmp/fp16.bin" "$tmp/fp32.bin" --max-rel 1e-3 || fail "fp16 drifted too far"
python3 "$compare" "$tmp/fp16.bin" "$tmp/fp32.bin" --min-rel 1e-8 || fail "fp16 changed nothing"
python3 "$compare" "$tmp/bf16.bin" "$tmp/fp32.bin" --max-rel 5e-3 || fail "bf16 drifted too far"
python3 "$compare" "$tmp/bf16.bin" "$tmp/fp16.bin" --min-rel 1e-7 || fail "bf16 equals fp16"
echo "ok: fp16 and bf16 wire formats change the result a little, and only a little"

run "$tmp/x.bin" --compression=fp8
rc=$?
[ $rc = 2 ] && grep -q -- "--compression=fp8" "$tmp/log" || fail "--compression=fp8: exit $rc, wanted 2 naming the flag"
echo "ok: --compression=fp8 -> exit 2: $(grep -o 'error: .*' "$tmp/log" | head -1)"
