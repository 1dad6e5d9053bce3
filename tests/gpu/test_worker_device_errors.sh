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
#                                                (CUDA_EMU_DEVICES=0 / 1), and
#                                                an asynchronous NCCL error in
#                                                training -> exit 1, no hang
set -uo pipefail
worker=$1
mode=$2
tmp=$(mktemp -d /tmp/ringtrain-deverr.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
# shellcheck source=tests/tools/check_exit.sh
. "$(dirname "$0")/../tools/check_exit.sh"
steps=1
expect() { # rc needle np [env...]
    local want=$1 needle=$2 np=$3
    shift 3
    env "$@" timeout 120 mpirun -np "$np" --oversubscribe "$worker" --device=cuda --model=mlp \
        --num_batches="$steps" --num_warmup_batches=0 --bind=none >"$tmp/out" 2>&1
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
    ;;
*)
    echo "usage: test_worker_device_errors.sh WORKER nocuda|cuda|emu" >&2
    exit 2
    ;;
esac
[ $fails -eq 0 ] && echo "every case refused as documented" || exit 1
