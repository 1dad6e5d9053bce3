#!/usr/bin/env bash
# bench/peers/train_torch.py's command line. Bad combinations (--amp or
# --tf32 without --device cuda, --amp_dtype without --amp, a batch of 0) are
# refused with exit 2 and a line naming the flag before torch is imported,
# and the GPU's flags are accepted together: checked with a stand-in torch
# package that fails on import, so this part needs no torch. Where a
# python3 has torch (Debian's python3-torch), a short CPU run prints the
# lines the bench scripts read, and --device cuda without a GPU fails with
# one clear line (exit 1).
#
#   test_train_torch_cli.sh SOURCE_DIR
set -uo pipefail
peer=$1/bench/peers/train_torch.py
tmp=$(mktemp -d /tmp/ringtrain-torchcli.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
# shellcheck source=tests/tools/check_exit.sh
. "$(dirname "$0")/../tools/check_exit.sh"

mkdir -p "$tmp/poison/torch"
echo 'raise ImportError("stand-in torch: imported before the arguments were checked")' \
    >"$tmp/poison/torch/__init__.py"

expect() { # rc needle python [args...]: with the stand-in torch first on the path
    local want=$1 needle=$2 py=$3
    shift 3
    PYTHONPATH="$tmp/poison" "$py" "$peer" "$@" >"$tmp/out" 2>&1
    check_exit "$want" "$needle" $? "$tmp/out" "$*"
}

expect 2 "error: --amp needs --device cuda" python3 --amp
expect 2 "error: --tf32 needs --device cuda" python3 --model resnet50 --tf32
expect 2 "error: --amp_dtype=bfloat16 needs --amp" python3 --device cuda --amp_dtype bfloat16
expect 2 "error: --batch_size=0: must be at least 1" python3 --batch_size 0
expect 2 "invalid choice: 'float8'" python3 --device cuda --amp --amp_dtype float8
expect 0 "--channels_last" python3 --help
# Accepted: parsing passes and the (stand-in) torch import is what fails.
expect 1 "stand-in torch: imported before the arguments were checked" python3 \
    --device cuda --model resnet50 --batch_size 128 --amp --channels_last --tf32
expect 1 "stand-in torch: imported before the arguments were checked" python3 \
    --device cuda --amp --amp_dtype bfloat16

py=""
for p in python3 /usr/bin/python3; do
    if "$p" -c 'import torch' 2>/dev/null; then
        py=$p
        break
    fi
done
if [ -z "$py" ]; then
    echo "note: no python3 here has torch (Debian python3-torch): the CPU run was not tried"
else
    "$py" "$peer" --model lenet --batch_size 8 --num_batches 2 --num_warmup_batches 1 \
        --display_every 1 --channels_last >"$tmp/run" 2>&1
    rc=$?
    if [ $rc -eq 0 ] && grep -q '^Precision:   fp32 (CPU); channels_last$' "$tmp/run" &&
        grep -qE '^total images/sec: [0-9]+\.[0-9]+$' "$tmp/run" &&
        grep -qE '^peak RSS \(rank 0\): [0-9]+ MiB$' "$tmp/run"; then
        echo "ok: $py lenet on the CPU: $(grep '^total images/sec' "$tmp/run")"
    else
        echo "FAIL: $py lenet on the CPU -> exit $rc:"
        cat "$tmp/run"
        fails=$((fails + 1))
    fi
    if "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
        echo "note: a GPU is visible to torch: the no-GPU refusal was not tried"
    else
        "$py" "$peer" --device cuda --amp --num_batches 1 >"$tmp/run" 2>&1
        rc=$?
        if [ $rc -eq 1 ] && grep -q '^train_torch.py: error: --device cuda: PyTorch .* sees no CUDA device' "$tmp/run"; then
            echo "ok: --device cuda without a GPU -> exit 1: $(head -1 "$tmp/run")"
        else
            echo "FAIL: --device cuda without a GPU -> exit $rc:"
            cat "$tmp/run"
            fails=$((fails + 1))
        fi
    fi
fi
[ $fails -eq 0 ] || exit 1
