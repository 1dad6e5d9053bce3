#!/usr/bin/env bash
# Bad input to ringtrain-worker: a clear error naming the input, exit 2, on
# every rank count, never a hang.
set -uo pipefail
worker=$1
tmp=$(mktemp -d /tmp/ringtrain-badinput.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
expect() { # np needle args...
    local np=$1 needle=$2; shift 2
    timeout 60 mpirun -np "$np" --oversubscribe "$worker" --bind=none "$@" >"$tmp/out" 2>&1
    local rc=$?
    if [ $rc -ne 2 ] || ! grep -qF -- "$needle" "$tmp/out"; then
        echo "FAIL: np=$np $* -> exit $rc, wanted 2 and '$needle':"; cat "$tmp/out"; fails=$((fails+1))
    else
        echo "ok: np=$np $* -> exit 2: $(grep -F -- "$needle" "$tmp/out" | head -1)"
    fi
}
expect 2 "ringtrain-worker: error: --model=vgg16: unknown model" --model=vgg16
expect 1 "ringtrain-worker: error: --batch_size=0: out of range" --batch_size=0
expect 2 "unknown flag '--bach_size'" --bach_size=3
expect 1 "--allreduce=nccl reduces GPU buffers" --allreduce=nccl
expect 1 "--device=cuda does not support --variable_update=parameter_server yet" --device=cuda --variable_update=parameter_server
expect 1 "--checkpoint_dir is not supported with --variable_update=independent" --variable_update=independent --checkpoint_dir="$tmp/ck"
[ ! -e "$tmp/ck" ] || { echo "FAIL: the refused run created $tmp/ck"; fails=$((fails+1)); }

# Ranks started with different flags (here the update mode) are refused on
# every rank before training, not left to hang in mismatched collectives.
timeout 60 mpirun --oversubscribe -np 1 "$worker" --bind=none --model=mlp --num_batches=2 : \
    -np 1 "$worker" --bind=none --model=mlp --num_batches=2 --variable_update=independent \
    >"$tmp/out" 2>&1
rc=$?
n=$(grep -c "ranks disagree on the model or training flags (rank(s) 1 differ from rank 0)" "$tmp/out")
if [ $rc -ne 2 ] || [ "$n" -ne 2 ]; then
    echo "FAIL: mixed --variable_update -> exit $rc, $n rank(s) named the disagreement:"; cat "$tmp/out"
    fails=$((fails+1))
else
    echo "ok: mixed --variable_update -> exit 2 on both ranks"
fi

# Precision flags where they cannot apply or contradict each other: exit 2
# with exactly one error line (rank 0's), before any device is touched, so
# no GPU is needed (every message: tests/unit/test_worker_options.c).
for np in 1 2; do
    for args in "--use_fp16" "--device=cuda --use_fp16 --use_bf16" \
                "--device=cuda --use_fp16 --fp16_loss_scale=0"; do
        # shellcheck disable=SC2086 # the flags split on purpose
        expect "$np" "ringtrain-worker: error: --" --model=mlp $args
        lines=$(grep -c "error:" "$tmp/out")
        [ "$lines" -eq 1 ] || { echo "FAIL: np=$np $args: $lines error lines"; fails=$((fails+1)); }
    done
done

# IDX files: bad magic, truncated, label count != image count, missing.
fm=/usr/share/datasets/fashion-mnist
mkdir -p "$tmp/magic" "$tmp/trunc" "$tmp/count" "$tmp/empty"
for d in magic trunc count; do cp "$fm"/t10k-* "$fm"/train-labels-idx1-ubyte.gz "$tmp/$d/"; done
# Swap the files' roles: a label file where images are expected.
cp "$fm/train-labels-idx1-ubyte.gz" "$tmp/magic/train-images-idx3-ubyte.gz"
zcat "$fm/train-images-idx3-ubyte.gz" | head -c 1000000 > "$tmp/trunc/train-images-idx3-ubyte"
cp "$fm/train-images-idx3-ubyte.gz" "$tmp/count/"
zcat "$fm/t10k-labels-idx1-ubyte.gz" > "$tmp/count/train-labels-idx1-ubyte"
rm "$tmp/count/train-labels-idx1-ubyte.gz"
data=(--data_name=fashion_mnist --num_batches=1 --num_warmup_batches=0)
expect 2 "$tmp/magic/train-images-idx3-ubyte.gz: bad magic 0x00000801" "${data[@]}" --data_dir="$tmp/magic"
expect 2 "$tmp/trunc/train-images-idx3-ubyte: truncated" "${data[@]}" --data_dir="$tmp/trunc"
expect 2 "has 10000 labels but" "${data[@]}" --data_dir="$tmp/count"
expect 2 "$tmp/empty/train-images-idx3-ubyte: cannot open: No such file or directory" "${data[@]}" --data_dir="$tmp/empty"
[ $fails -eq 0 ] && echo "all bad inputs rejected" || exit 1
