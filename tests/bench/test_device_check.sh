#!/usr/bin/env bash
# bench/device-check.sh --no-gpu on this build (--no-build --system-deps
# --rounds 1): every step of the GPU check and every training case runs its
# stand-in (the CUDA emulation for ours, PyTorch on the CPU where a python3
# has torch), and summary.md has the steps table and one row per case
# (resnet50 b128 and resnet101 b64, each in strict fp32, TF32 and fp16).
# Also its command line: --help, an unknown argument, a bad --rounds; and
# that it leaves the build's own meson test log alone.
#
#   test_device_check.sh SOURCE_DIR BUILD_DIR
set -uo pipefail
src=$1
build=$2
check=$src/bench/device-check.sh
tmp=$(mktemp -d /tmp/ringtrain-devcheck.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
# shellcheck source=tests/tools/check_exit.sh
. "$(dirname "$0")/../tools/check_exit.sh"

"$check" --help >"$tmp/out" 2>&1
check_exit 0 "--system-deps" $? "$tmp/out" "--help"
"$check" --bogus >"$tmp/out" 2>&1
check_exit 2 "device-check.sh: error: unknown argument '--bogus'" $? "$tmp/out" "--bogus"
"$check" --rounds 0 >"$tmp/out" 2>&1
check_exit 2 "device-check.sh: error: --rounds needs a number from 1 to 9" $? "$tmp/out" "--rounds 0"

# The build's own test log is the running `meson test`'s: the check's
# tests/gpu step must leave it alone (two writers corrupt it).
log_state() { stat -c '%i %s %Y' "$build/meson-logs/testlog.json" 2>/dev/null || echo none; }
before=$(log_state)
BUILD_DIR=$build "$check" --no-gpu --no-build --system-deps --rounds 1 --log-dir "$tmp/log" \
    >"$tmp/out" 2>&1
rc=$?
after=$(log_state)
if [ "$before" = "$after" ]; then
    echo "ok: the build's testlog.json untouched ($after)"
else
    echo "FAIL: device-check.sh wrote the build's testlog.json ($before -> $after)"
    fails=$((fails + 1))
fi
summary=$tmp/log/summary.md
if [ $rc -ne 0 ] || [ ! -f "$summary" ]; then
    echo "FAIL: device-check.sh --no-gpu exited $rc:"
    cat "$tmp/out"
    exit 1
fi
has() { # regex what
    if grep -qE -- "$1" "$summary"; then
        echo "ok: $2: $(grep -m1 -E -- "$1" "$summary" | cut -c1-160)"
    else
        echo "FAIL: $2: no line of summary.md matches '$1'"
        fails=$((fails + 1))
    fi
}
has '^\| cuDNN runtime \(PyTorch.s wheel\) \| (ok|n/a) \|' "cuDNN probe"
has '^\| environment \(system packages\) \| ok \|' "environment"
has '^\| build \| ok \| --no-build' "build"
has '^\| tests/gpu \| ok \| [0-9]+ passed, 0 failed' "tests/gpu"
has '^\| allreduce bench --algo nccl \(emulated\) \| ok \| 1 rank; largest: [0-9]+ MiB in .*#wrong 0' "allreduce bench"
has '^\| LeNet fp16 accuracy \| ok \| 1 epoch\(s\), batch 32: fp32 0\.[0-9]{4}, fp16 0\.[0-9]{4}: ' "LeNet fp16 accuracy"
has '^\| case \| ours \| PyTorch \| ratio \| target \| ours GPU memory \| PyTorch GPU memory \| notes \|$' "case table"
for model in "resnet50 b128" "resnet101 b64"; do
    # Strict fp32 runs on every build: ours has a figure.
    has "^\| $model strict fp32 \| [0-9]+\.[0-9] \| " "$model strict fp32"
    for p in TF32 fp16; do
        has "^\| $model $p \| ([0-9]+\.[0-9] \||— \|.*ours: not supported by this build)" "$model $p"
    done
done
if grep -q "no torch here" "$summary"; then
    echo "note: no python3 here has torch: the PyTorch stand-ins were not run"
else
    has '^\| resnet50 b128 strict fp32 \| [0-9.]+ \| [0-9]+\.[0-9] \|' "PyTorch stand-in"
fi
[ $fails -eq 0 ] || { cat "$tmp/out"; exit 1; }
