#!/usr/bin/env bash
# ringtrain-worker --device=cuda where it cannot run: a clear error, the
# documented exit status, never a crash or a hang.
#
#   test_worker_device_errors.sh WORKER nocuda   build without CUDA: exit 2,
#                                                "no CUDA support"
#   test_worker_device_errors.sh WORKER cuda     CUDA build: no visible device
#                                                (CUDA_VISIBLE_DEVICES="")
#                                                -> exit 1; two ranks on one
#                                                visible GPU -> exit 2 (or exit
#                                                1 where there is no GPU at all)
#   test_worker_device_errors.sh WORKER emu      the same on the emulation
#                                                (CUDA_EMU_DEVICES=0 / 1), an
#                                                asynchronous NCCL error in
#                                                training -> exit 1, no hang;
#                                                and the precision choices a
#                                                device must refuse (exit 2):
#                                                fp16 on im2col, NHWC for a
#                                                model that flattens, an
#                                                unknown RINGTRAIN_CONV, a
#                                                cuDNN 8 runtime for fp16
#                                                (fp32 falls back to im2col
#                                                and runs), ranks that differ
#                                                in TF32; a hung bucket
#                                                (NCCL_EMU_HANG_AT) -> exit 1
set -uo pipefail
worker=$1
mode=$2
tmp=$(mktemp -d /tmp/ringtrain-deverr.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
# shellcheck source=tests/tools/check_exit.sh
. "$(dirname "$0")/../tools/check_exit.sh"
steps=1
extra=()
expect() { # rc needle np [env...]
    local want=$1 needle=$2 np=$3
    shift 3
    env "$@" timeout 120 mpirun -np "$np" --oversubscribe "$worker" --device=cuda --model=mlp \
        --num_batches="$steps" --num_warmup_batches=0 --bind=none ${extra[@]+"${extra[@]}"} \
        >"$tmp/out" 2>&1
    check_exit "$want" "$needle" $? "$tmp/out" "np=$np $*"
}
case "$mode" in
nocuda)
    expect 2 "this build has no CUDA support" 2
    ;;
cuda)
    expect 1 "no CUDA device is visible" 1 CUDA_VISIBLE_DEVICES=
    env CUDA_VISIBLE_DEVICES=0 timeout 120 mpirun -np 1 "$worker" --device=cuda --model=mlp \
        --num_batches=1 --num_warmup_batches=0 --bind=none >"$tmp/probe" 2>&1
    if grep -qF "no CUDA device is visible" "$tmp/probe"; then
        expect 1 "no CUDA device is visible" 2 CUDA_VISIBLE_DEVICES=0
    else
        expect 2 "2 ranks on this host but 1 GPU(s) visible" 2 CUDA_VISIBLE_DEVICES=0
    fi
    ;;
emu)
    expect 1 "no CUDA device is visible" 1 CUDA_EMU_DEVICES=0
    expect 2 "2 ranks on this host but 1 GPU(s) visible" 2 CUDA_EMU_DEVICES=1
    # A peer dying mid-run, as NCCL reports it: the rank stops with the
    # reason instead of waiting (injected from the 3rd bucket allreduce on).
    steps=3
    expect 1 "gradient allreduce failed at step 2 (bucket 2): NCCL error" 1 NCCL_EMU_ASYNC_ERROR_AT=3
    # A peer that never arrives (no error, just no result), stream-ordered
    # buckets: the progress thread gives up after --stall_timeout and the run
    # fails instead of hanging or finishing on a half-averaged model.
    extra=(--stall_timeout=1)
    expect 1 "gradient exchange failed: timed out" 1 NCCL_EMU_HANG_AT=3
    steps=1
    extra=(--use_fp16)
    expect 2 "RINGTRAIN_CONV=im2col runs fp32 NCHW only" 1 RINGTRAIN_CONV=im2col
    expect 2 "--use_fp16 needs cuDNN: the cuDNN runtime is version 8.9.6, this build needs cuDNN 9" \
        1 CUDNN_EMU_VERSION=80906
    extra=(--model=lenet --data_format=NHWC)
    expect 2 "--data_format=NHWC: model lenet flattens a feature map into a linear layer" 1
    extra=()
    expect 2 "RINGTRAIN_CONV=winograd: unknown; choose cudnn or im2col" 1 RINGTRAIN_CONV=winograd
    expect 0 "convolutions on im2col + cuBLAS" 1 CUDNN_EMU_VERSION=80906
    # Ranks that differ in precision are refused before training.
    env RINGTRAIN_NCCL=0 CUDA_EMU_DEVICES=2 timeout 120 mpirun --oversubscribe \
        -np 1 "$worker" --device=cuda --model=mlp --num_batches=1 --bind=none : \
        -np 1 "$worker" --device=cuda --model=mlp --num_batches=1 --bind=none --noallow_tf32 \
        >"$tmp/out" 2>&1
    rc=$?
    if [ $rc -ne 2 ] || ! grep -q "ranks disagree on the model or training flags" "$tmp/out"; then
        echo "FAIL: ranks differing in --allow_tf32 -> exit $rc:"; cat "$tmp/out"; fails=$((fails + 1))
    else
        echo "ok: ranks differing in --allow_tf32 -> exit 2"
    fi
    ;;
*)
    echo "usage: test_worker_device_errors.sh WORKER nocuda|cuda|emu" >&2
    exit 2
    ;;
esac
[ $fails -eq 0 ] && echo "every case refused as documented" || exit 1
