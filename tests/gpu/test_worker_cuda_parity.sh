#!/usr/bin/env bash
# ringtrain-worker --device=cuda does what --device=cpu does:
#
#   test_worker_cuda_parity.sh WORKER gpu|emu independent
#       --variable_update=independent trains on the GPU (its per-step 4-byte
#       allreduce takes device memory) at 1 rank (NCCL) and, on the
#       emulation, 2 ranks (host-staged allreduce), to the parameters of the
#       same run on the CPU; the header counts the GPUs CUDA sees where
#       hwloc sees none
#   test_worker_cuda_parity.sh WORKER gpu|emu checkpoint
#       --checkpoint_dir on the GPU: a run killed after its first
#       checkpoint (at the start of step 2 x every: the checkpoint, written
#       in the background, has a whole step to land) resumes from it (parameters, momentum and batch-norm
#       statistics copied from and back to the device) and ends at the same
#       final checkpoint, bit for bit, as the run that was never stopped;
#       the first checkpoint equals the CPU's within float rounding
#
# gpu: a real device (exit 77 without one); emu: the gpu-emu worker.
set -uo pipefail
worker=$1
mode=$2
check=$3
compare="$(dirname "$0")/../tools/compare_params.py"
tmp=$(mktemp -d /tmp/ringtrain-parity.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
extra_env=() # VAR=value for the runs of the case at hand

# Strict fp32 (--noallow_tf32): the GPU allows TF32 by default, which the
# comparisons with the CPU's fp32 would not tolerate.
run() { # np device out [flags...]: runs, log in out.log
    local np=$1 device=$2 out=$3
    shift 3
    env "${extra_env[@]}" timeout 300 mpirun -np "$np" --oversubscribe "$worker" --device="$device" \
        --num_warmup_batches=0 --display_every=1 --learning_rate=0.02 --num_intra_threads=1 \
        --bind=none --noallow_tf32 "$@" >"$out.log" 2>&1
}
skip_without_device() { # log
    if grep -q "no CUDA device" "$1"; then
        echo "test_worker_cuda_parity: skipped: $(grep -m1 'no CUDA device' "$1")"
        exit 77
    fi
}

independent() { # np model batch steps rel [env...]
    local np=$1 model=$2 batch=$3 steps=$4 rel=$5
    shift 5
    extra_env=("$@")
    local name="independent $model np$np" flags=(--model="$model" --batch_size="$batch"
        --num_batches="$steps" --variable_update=independent)
    if ! run "$np" cuda "$tmp/ind-cuda" "${flags[@]}" --dump_params="$tmp/ind-cuda.bin"; then
        skip_without_device "$tmp/ind-cuda.log"
        echo "FAIL: $name: --device=cuda failed:"
        cat "$tmp/ind-cuda.log"
        fail=1
        return
    fi
    run "$np" cpu "$tmp/ind-cpu" "${flags[@]}" --dump_params="$tmp/ind-cpu.bin" ||
        { echo "FAIL: $name: --device=cpu failed:"; cat "$tmp/ind-cpu.log"; fail=1; return; }
    if python3 "$compare" "$tmp/ind-cuda.bin" "$tmp/ind-cpu.bin" --max-rel "$rel"; then
        echo "ok: $name: cuda and cpu end at the same parameters; $(grep -m1 '^Variables:' "$tmp/ind-cuda.log")"
    else
        echo "FAIL: $name: cuda and cpu parameters differ"
        fail=1
    fi
}

# The header's GPU count: CUDA's where hwloc finds no GPU. The emulation
# shows CUDA_EMU_DEVICES of them.
topology() { # want [env...]
    local want=$1
    shift
    extra_env=("$@")
    run 1 cuda "$tmp/topo" --model=mlp --num_batches=1
    skip_without_device "$tmp/topo.log"
    local line
    line=$(grep -m1 '^Topology:' "$tmp/topo.log")
    # hwloc's own count wins where it has one; then there is nothing to check.
    run 1 cpu "$tmp/topo-cpu" --model=mlp --num_batches=1
    if ! grep -q '^Topology:.* 0 GPU(s) on this host' "$tmp/topo-cpu.log"; then
        echo "ok: topology: hwloc counts GPUs here ($(grep -m1 '^Topology:' "$tmp/topo-cpu.log")); CUDA's count not needed"
    elif [[ "$line" == *" $want GPU(s) on this host"* ]]; then
        echo "ok: topology: hwloc sees no GPU, the header says: $line"
    else
        echo "FAIL: topology: wanted $want GPU(s) (CUDA's count), got: ${line:-no Topology line}"
        cat "$tmp/topo.log"
        fail=1
    fi
}

# Checkpoint files are compared whole: header, parameters, momentum and
# batch-norm statistics (which the parameters alone would not show).
checkpoint() { # model batch steps every [env...]: killed at step 2 x every
    local model=$1 batch=$2 steps=$3 every=$4
    shift 4
    extra_env=("$@")
    local flags=(--model="$model" --batch_size="$batch" --num_batches="$steps"
                 --checkpoint_every="$every")
    local first last
    first=ckpt-$(printf %012d "$every").rtck
    last=ckpt-$(printf %012d "$steps").rtck
    run 1 cuda "$tmp/straight" "${flags[@]}" --checkpoint_dir="$tmp/straight"
    local rc=$?
    skip_without_device "$tmp/straight.log"
    if [ $rc -ne 0 ] && grep -q "does not support --checkpoint_dir" "$tmp/straight.log"; then
        echo "test_worker_cuda_parity: skipped: this build refuses it: $(grep -m1 'does not support' "$tmp/straight.log")"
        exit 77
    fi
    [ $rc -eq 0 ] || { echo "FAIL: $model: the uninterrupted run failed:"; cat "$tmp/straight.log"; fail=1; return; }
    extra_env=(RINGTRAIN_FAULT=kill@$((2 * every)):0 "$@")
    run 1 cuda "$tmp/crash" "${flags[@]}" --checkpoint_dir="$tmp/ck"
    extra_env=("$@")
    [ "$(ls "$tmp/ck")" = "$first" ] ||
        { echo "FAIL: $model: expected only $first after the kill at step $((2 * every)):"; ls -la "$tmp/ck"; cat "$tmp/crash.log"; fail=1; return; }
    run 1 cuda "$tmp/resumed" "${flags[@]}" --checkpoint_dir="$tmp/ck" ||
        { echo "FAIL: $model: the resumed run failed:"; cat "$tmp/resumed.log"; fail=1; return; }
    grep -q "^Resuming: .*$first (step $every)" "$tmp/resumed.log" ||
        { echo "FAIL: $model: did not resume from step $every:"; cat "$tmp/resumed.log"; fail=1; return; }
    if cmp "$tmp/straight/$last" "$tmp/ck/$last"; then
        echo "ok: $model: killed at step $((2 * every)), resumed from step $every: its step-$steps checkpoint is bitwise the uninterrupted run's"
    else
        echo "FAIL: $model: the resumed run's step-$steps checkpoint differs from the uninterrupted run's"
        fail=1
    fi
    # What the GPU saved is the model's state: the CPU's checkpoint of the
    # same step within float rounding (payload float by float, after the
    # 96-byte header).
    run 1 cpu "$tmp/cpu" --model="$model" --batch_size="$batch" --num_batches="$every" \
        --checkpoint_dir="$tmp/cpu" || { echo "FAIL: $model: cpu run failed:"; cat "$tmp/cpu.log"; fail=1; return; }
    tail -c +97 "$tmp/straight/$first" >"$tmp/cuda-payload.bin"
    tail -c +97 "$tmp/cpu/$first" >"$tmp/cpu-payload.bin"
    if python3 "$compare" "$tmp/cuda-payload.bin" "$tmp/cpu-payload.bin" --max-rel 1e-3; then
        echo "ok: $model: the GPU's step-$every checkpoint holds the CPU's state (parameters, momentum, batch-norm statistics)"
    else
        echo "FAIL: $model: the GPU's step-$every checkpoint differs from the CPU's"
        fail=1
    fi
}

case "$mode:$check" in
emu:independent)
    independent 1 mlp 8 4 1e-3
    independent 2 lenet 4 3 1e-3 RINGTRAIN_NCCL=0 CUDA_EMU_DEVICES=2
    topology 2 CUDA_EMU_DEVICES=2
    ;;
gpu:independent)
    independent 1 lenet 32 10 2e-3
    topology "$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')"
    ;;
emu:checkpoint)
    checkpoint resnet20 2 4 2
    ;;
gpu:checkpoint)
    # Bitwise resume needs the same kernels with fixed summation orders:
    # cuDNN's timed choice may differ between runs and some of its
    # algorithms add with atomics, so the im2col path is compared.
    checkpoint resnet20 32 10 5 RINGTRAIN_CONV=im2col
    ;;
*)
    echo "usage: test_worker_cuda_parity.sh WORKER gpu|emu independent|checkpoint" >&2
    exit 2
    ;;
esac
exit $fail
