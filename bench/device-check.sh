#!/usr/bin/env bash
# The GPU check, run ON the GPU machine (one H200, 16 cores, CUDA + NCCL,
# python3 with torch; no Open MPI/OpenBLAS/hwloc/libfyaml/cmocka and no
# package registry) from a copy of the working tree that carries .deps/debs
# (made here by bench/fetch-device-debs.sh). In order, each step bounded so the
# whole run ends within 8 minutes:
#
#   1. environment: unpack .deps/debs into .deps/root; put the libraries the
#      system lacks on LD_LIBRARY_PATH (through .deps/lib), pkg-config on the
#      .debs' .pc files (PKG_CONFIG_SYSROOT_DIR, since they say prefix=/usr),
#      Open MPI relocated with OPAL_PREFIX, shared-memory transport only
#   2. build: meson -Dcuda=enabled into build-device/
#   3. tests/gpu (every CUDA kernel vs the CPU reference, the NCCL allreduce
#      at 1 rank, ringtrain-worker --device=cuda vs cpu over 20 steps)
#   4. ringtrain-allreduce-bench --algo nccl (1 rank, device buffers)
#   5. ResNet-50, batch 64, synthetic: ringtrain-worker --device=cuda
#   6. the same with PyTorch (bench/peers/train_torch.py --device cuda), in
#      strict fp32 (TF32 off, as ringtrain's default) and with TF32
# and prints one table (also written to LOG_DIR/summary.md). A step whose
# program is missing or lacks the feature fails with a message saying so;
# the script exits 1 if any step failed, 0 otherwise.
#
#   bench/device-check.sh [--log-dir DIR]   on the GPU machine
#   bench/device-check.sh --no-gpu          here: the same steps with stand-ins
#                                           (checks the environment, build and
#                                           parsing): steps 4 and 5 run the same
#                                           flags on the CPU emulation of CUDA
#                                           (tests/gpu/emu: a one-rank NCCL), at
#                                           CPU-sized shapes; tests/gpu skip
#   bench/device-check.sh --unpack-only     just step 1's unpacking
#
# Environment: BUILD_DIR (default build-device), MESON (default: meson on
# PATH, else python3 -m mesonbuild.mesonmain, else the carried meson),
# PYTHON (default python3: the one with torch), RINGTRAIN_DEPS_SYSTEM_LIBS=none
# (use every carried library even where the system has one: for checking the
# carried set on a machine that has them all).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
REPO=$PWD

NO_GPU=0
UNPACK_ONLY=0
LOG_DIR=""
while [ $# -gt 0 ]; do
    case "$1" in
    --no-gpu) NO_GPU=1 ;;
    --unpack-only) UNPACK_ONLY=1 ;;
    --log-dir)
        [ $# -ge 2 ] || { echo "device-check.sh: error: --log-dir needs a directory" >&2; exit 2; }
        LOG_DIR=$2
        shift
        ;;
    -h | --help)
        sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "device-check.sh: error: unknown argument '$1' (see --help)" >&2
        exit 2
        ;;
    esac
    shift
done

BUILD_DIR=${BUILD_DIR:-build-device}
LOG_DIR=${LOG_DIR:-$BUILD_DIR/device-check}
DEPS=$REPO/.deps
DROOT=$DEPS/root
START=$(date +%s)
# The image's own library path (the NVIDIA driver's directory may be on it):
# the PyTorch runs get it back unchanged.
ORIG_LD_LIBRARY_PATH=${LD_LIBRARY_PATH-__unset__}
BUDGET=470 # seconds for everything (8 minutes, less a margin)

remaining() { echo $((BUDGET - ($(date +%s) - START))); }
# Seconds a step may take: its own cap, or what is left of the budget.
step_limit()
{
    local cap=$1 left
    left=$(($(remaining) - 5))
    [ "$left" -lt "$cap" ] && cap=$left
    [ "$cap" -lt 1 ] && cap=1
    echo "$cap"
}

STEPS=()
RESULTS=()
FIGURES=()
FAILED=0
record()
{
    STEPS+=("$1")
    RESULTS+=("$2")
    FIGURES+=("$3")
    [ "$2" = FAIL ] && FAILED=1
    printf 'device-check: %-40s %-5s %s\n' "$1" "$2" "$3" >&2
}

# ---- 1. environment --------------------------------------------------------

deps_unpack()
{
    if [ ! -d "$DEPS/debs" ] || ! ls "$DEPS"/debs/*.deb >/dev/null 2>&1; then
        echo "device-check.sh: error: no .deps/debs here; run bench/fetch-device-debs.sh on a Debian 12 machine and carry .deps/debs" >&2
        return 1
    fi
    if [ -f "$DROOT/.unpacked" ] && [ ! "$DEPS/debs/MANIFEST" -nt "$DROOT/.unpacked" ]; then
        return 0
    fi
    rm -rf "$DROOT"
    mkdir -p "$DROOT"
    local deb link target
    for deb in "$DEPS"/debs/*.deb; do
        dpkg-deb -x "$deb" "$DROOT" || { echo "device-check.sh: error: dpkg-deb -x $deb failed" >&2; return 1; }
    done
    # Absolute links (libz.so -> /lib/x86_64-linux-gnu/libz.so.1.2.13) point
    # outside the tree: make them point to the unpacked copy.
    while IFS= read -r link; do
        target=$(readlink "$link")
        case "$target" in
        /*) ln -sfn "$DROOT$target" "$link" ;;
        esac
    done < <(find "$DROOT" -type l)
    touch "$DROOT/.unpacked"
}

# Is the shared library `name` (a soname) installed on this system?
SYSTEM_LIBS=""
system_has()
{
    [ "${RINGTRAIN_DEPS_SYSTEM_LIBS:-}" = none ] && return 1
    local path
    path=$(printf '%s\n' "$SYSTEM_LIBS" | awk -v n="$1" '$1 == n { print $NF; exit }')
    [ -n "$path" ] && [ -e "$path" ]
}

deps_env()
{
    deps_unpack || return 1
    local multi=$DROOT/usr/lib/x86_64-linux-gnu d f name
    SYSTEM_LIBS=$( (ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null) | tail -n +2)
    # One directory of links to the carried libraries the system lacks, so the
    # system's own (newer) copies keep serving everything else, python included.
    rm -rf "${DEPS:?}/lib"
    mkdir -p "$DEPS/lib"
    for d in "$multi" "$multi/openmpi/lib" "$multi/openblas-pthread" "$DROOT/lib/x86_64-linux-gnu"; do
        for f in "$d"/*.so.*; do
            name=$(basename "$f")
            # sonames only (libmpi.so.40, not libmpi.so.40.30.4)
            [[ -e "$f" && "$name" =~ \.so\.[0-9]+$ ]] || continue
            system_has "$name" || ln -sfn "$f" "$DEPS/lib/$name"
        done
    done
    # Tools the image may lack: pkg-config always from the carried set (it must
    # read the carried .pc files), mpirun (found after any of the system's, as
    # $DEPS/bin goes last on PATH); meson and ninja only if missing.
    mkdir -p "$DEPS/bin"
    ln -sfn "$DROOT/usr/bin/pkgconf" "$DEPS/bin/pkg-config"
    command -v ninja >/dev/null 2>&1 || ln -sfn "$DROOT/usr/bin/ninja" "$DEPS/bin/ninja"
    # The build looks for mpirun (tests/meson.build); Debian names it
    # mpirun.openmpi and links mpirun through alternatives, which dpkg-deb -x
    # does not create.
    ln -sfn "$DROOT/usr/bin/mpirun.openmpi" "$DEPS/bin/mpirun"
    ln -sfn "$DROOT/usr/bin/mpiexec.openmpi" "$DEPS/bin/mpiexec"
    export PATH="$PATH:$DEPS/bin"
    export LD_LIBRARY_PATH="$DEPS/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export PKG_CONFIG="$DROOT/usr/bin/pkgconf"
    export PKG_CONFIG_LIBDIR="$multi/pkgconfig:$DROOT/usr/share/pkgconfig:$multi/openblas-pthread/pkgconfig"
    export PKG_CONFIG_SYSROOT_DIR="$DROOT"
    # Keep -I/usr/include and -L/usr/lib...: under the sysroot they are ours.
    export PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1
    # Open MPI finds its plugins, help files and orted under OPAL_PREFIX.
    export OPAL_PREFIX="$DROOT/usr"
    export OMPI_MCA_mca_base_component_show_load_errors=0
    export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    MPIRUN=("$DROOT/usr/bin/mpirun.openmpi" --oversubscribe -np 1)
    if [ -n "${MESON:-}" ]; then
        read -r -a MESON_CMD <<<"$MESON"
    elif command -v meson >/dev/null 2>&1; then
        MESON_CMD=(meson)
    elif python3 -c 'import mesonbuild' 2>/dev/null; then
        MESON_CMD=(python3 -m mesonbuild.mesonmain)
    else
        MESON_CMD=(env "PYTHONPATH=$DROOT/usr/lib/python3/dist-packages" python3 "$DROOT/usr/bin/meson")
    fi
}

if [ "$UNPACK_ONLY" = 1 ]; then
    deps_unpack
    exit $?
fi

mkdir -p "$LOG_DIR"
GPU_NAME="no GPU"
if [ "$NO_GPU" = 0 ]; then
    GPU_NAME=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n1)
    [ -n "$GPU_NAME" ] || GPU_NAME="nvidia-smi found no GPU"
fi
if deps_env; then
    record "environment (.deps)" ok "$(find "$DEPS/lib" -mindepth 1 -maxdepth 1 | wc -l) carried libraries in use; meson: ${MESON_CMD[*]}"
else
    record "environment (.deps)" FAIL "see the message above"
fi

# ---- 2. build ---------------------------------------------------------------

BUILT=0
if [ "$FAILED" = 0 ]; then
    t0=$(date +%s)
    lim=$(step_limit 200)
    {
        if [ -f "$BUILD_DIR/build.ninja" ]; then
            timeout "$lim" "${MESON_CMD[@]}" setup --reconfigure "$BUILD_DIR" -Dcuda=enabled -Dnccl=auto
        else
            timeout "$lim" "${MESON_CMD[@]}" setup "$BUILD_DIR" -Dcuda=enabled -Dnccl=auto
        fi && timeout "$(step_limit 200)" "${MESON_CMD[@]}" compile -C "$BUILD_DIR"
    } >"$LOG_DIR/build.log" 2>&1
    rc=$?
    if [ $rc = 0 ]; then
        BUILT=1
        ncu=$(grep -c 'Generating.*librtkernels_cuda.a.p/.*\.o' "$LOG_DIR/build.log")
        record "build (meson -Dcuda=enabled)" ok "$(($(date +%s) - t0)) s; $ncu .cu files compiled by nvcc$([ "$ncu" = 0 ] && echo ' (up to date)')"
    else
        tail -n 30 "$LOG_DIR/build.log" >&2
        record "build (meson -Dcuda=enabled)" FAIL "exit $rc after $(($(date +%s) - t0)) s; see build.log"
    fi
fi

# ---- 3. tests/gpu -----------------------------------------------------------

if [ "$BUILT" = 1 ]; then
    timeout "$(step_limit 240)" "${MESON_CMD[@]}" test -C "$BUILD_DIR" --suite gpu --no-rebuild --print-errorlogs \
        >"$LOG_DIR/tests.log" 2>&1
    counts=$(python3 - "$BUILD_DIR/meson-logs/testlog.json" <<'PY'
import json, sys
n = {"ok": 0, "fail": 0, "skip": 0}
try:
    for line in open(sys.argv[1]):
        if line.strip():
            r = json.loads(line)["result"]
            n["ok" if r in ("OK", "EXPECTEDFAIL") else "skip" if r == "SKIP" else "fail"] += 1
except OSError:
    n["fail"] = -1
print(n["ok"], n["fail"], n["skip"])
PY
)
    read -r n_ok n_fail n_skip <<<"$counts"
    figure="$n_ok passed, $n_fail failed, $n_skip skipped"
    if [ "$n_fail" != 0 ] || [ "$n_ok" = 0 ]; then
        record "tests/gpu" FAIL "$figure; see tests.log"
    elif [ "$n_skip" != 0 ] && [ "$NO_GPU" = 0 ]; then
        record "tests/gpu" FAIL "$figure: skipped means no GPU was visible"
    else
        record "tests/gpu" ok "$figure"
    fi
else
    record "tests/gpu" FAIL "not run: no build"
fi

# ---- 4. allreduce bench on NCCL ---------------------------------------------

# --no-gpu: the same flags on the emulation's build of the bench (device
# buffers in host memory, a one-rank NCCL that copies), smaller sizes.
if [ "$NO_GPU" = 1 ]; then
    bench_bin=$BUILD_DIR/tests/gpu/ringtrain-allreduce-bench-emu BENCH_MAX=16M BENCH_NAME="allreduce bench --algo nccl (emulated)"
else
    bench_bin=$BUILD_DIR/bench/ringtrain-allreduce-bench BENCH_MAX=256M BENCH_NAME="allreduce bench --algo nccl"
fi
if [ "$BUILT" = 0 ]; then
    record "$BENCH_NAME" FAIL "not run: no build"
elif [ ! -x "$bench_bin" ]; then
    record "$BENCH_NAME" FAIL "$bench_bin was not built"
else
    timeout "$(step_limit 60)" "${MPIRUN[@]}" "$bench_bin" --algo nccl -b 8 -e "$BENCH_MAX" -f 4 -d float -o sum \
        >"$LOG_DIR/allreduce.log" 2>&1
    rc=$?
    if [ $rc != 0 ]; then
        if grep -q "no NCCL backend" "$LOG_DIR/allreduce.log"; then
            record "$BENCH_NAME" FAIL "this build has no NCCL backend (libnccl or nccl.h >= 2.14 not found at configure time): $(grep -m1 'no NCCL backend' "$LOG_DIR/allreduce.log" | cut -c1-160)"
        else
            record "$BENCH_NAME" FAIL "exit $rc: $(grep -m1 'error' "$LOG_DIR/allreduce.log" | cut -c1-160); see allreduce.log"
        fi
    else
        # The largest size's row (nccl-tests columns: size count type redop
        # root time algbw busbw #wrong, out-of-place first) and the footer.
        last=$(awk '$1 ~ /^[0-9]+$/ && NF >= 9 { row = sprintf("%.0f MiB in %s us, algbw %s GB/s, #wrong %s", $1 / 1048576, $6, $7, $9) } END { print row }' "$LOG_DIR/allreduce.log")
        avg=$(grep -m1 'Avg bus bandwidth' "$LOG_DIR/allreduce.log" | sed 's/.*: *//')
        record "$BENCH_NAME" ok "1 rank; largest: ${last:-no rows}; footer avg busbw ${avg:-none}"
    fi
fi

# ---- 5./6. ResNet-50 training: ringtrain and PyTorch ------------------------

# --no-gpu: ringtrain runs --device=cuda on the emulation (a CPU-sized
# model), PyTorch on the CPU; no ratio is taken.
if [ "$NO_GPU" = 1 ]; then
    DEVICE=cpu MODEL=lenet BATCH=16 BATCHES=3 WARMUP=1
    worker_bin=$BUILD_DIR/tests/gpu/ringtrain-worker-emu WORKER_NAME="lenet b16 ringtrain --device=cuda (emulated)"
else
    DEVICE=cuda MODEL=resnet50 BATCH=64 BATCHES=50 WARMUP=10
    worker_bin=$BUILD_DIR/worker/ringtrain-worker WORKER_NAME="resnet50 b64 ringtrain --device=cuda"
fi
LABEL="$MODEL b$BATCH"
images_per_sec() { sed -n 's/^total images\/sec: *\([0-9.]*\).*/\1/p' "$1" | tail -n1; }

RT_IPS=""
if [ "$BUILT" = 0 ]; then
    record "$WORKER_NAME" FAIL "not run: no build"
elif [ ! -x "$worker_bin" ]; then
    record "$WORKER_NAME" FAIL "$worker_bin was not built"
else
    timeout "$(step_limit 120)" "${MPIRUN[@]}" "$worker_bin" --device=cuda --model="$MODEL" \
        --batch_size="$BATCH" --num_batches="$BATCHES" --num_warmup_batches="$WARMUP" --display_every=10 \
        >"$LOG_DIR/worker.log" 2>&1
    rc=$?
    RT_IPS=$(images_per_sec "$LOG_DIR/worker.log")
    if [ $rc = 0 ] && [ -n "$RT_IPS" ]; then
        record "$WORKER_NAME" ok "$RT_IPS images/sec; $(grep -m1 '^Variables:' "$LOG_DIR/worker.log" | sed 's/^Variables: *//')"
    else
        RT_IPS=""
        record "$WORKER_NAME" FAIL "exit $rc: $(grep -m1 'error' "$LOG_DIR/worker.log" | cut -c1-160); see worker.log"
    fi
    [ "$NO_GPU" = 1 ] && RT_IPS=""
fi

# PyTorch runs in the image's own environment, without the carried libraries.
# Sets TORCH_IPS (empty on failure).
torch_run()
{
    local name=$1 log=$2
    local ld=(-u LD_LIBRARY_PATH)
    [ "$ORIG_LD_LIBRARY_PATH" != __unset__ ] && ld=("LD_LIBRARY_PATH=$ORIG_LD_LIBRARY_PATH")
    shift 2
    env -u OPAL_PREFIX "${ld[@]}" PYTHONUNBUFFERED=1 \
        timeout "$(step_limit 120)" "${PYTHON:-python3}" bench/peers/train_torch.py --device "$DEVICE" --model "$MODEL" \
        --batch_size "$BATCH" --num_batches "$BATCHES" --num_warmup_batches "$WARMUP" --display_every 10 \
        --num_intra_threads 16 "$@" >"$log" 2>&1
    local rc=$?
    TORCH_IPS=$(images_per_sec "$log")
    if [ $rc = 0 ] && [ -n "$TORCH_IPS" ]; then
        record "$name" ok "$TORCH_IPS images/sec"
    else
        TORCH_IPS=""
        record "$name" FAIL "exit $rc: $(grep -m1 -i 'error' "$log" | cut -c1-120)"
    fi
}
torch_run "$LABEL PyTorch $DEVICE fp32" "$LOG_DIR/torch-fp32.log"
PT_IPS=$TORCH_IPS
if [ "$DEVICE" = cuda ]; then
    torch_run "$LABEL PyTorch cuda TF32" "$LOG_DIR/torch-tf32.log" --tf32
fi

if [ "$DEVICE" = cpu ]; then
    record "ringtrain / PyTorch fp32" n/a "no ratio for the CPU stand-in run"
elif [ -n "$RT_IPS" ] && [ -n "$PT_IPS" ]; then
    ratio=$(python3 -c "print(f'{$RT_IPS / $PT_IPS:.2f}')")
    verdict=ok
    python3 -c "import sys; sys.exit(0 if $RT_IPS / $PT_IPS >= 0.8 else 1)" || verdict=FAIL
    record "ringtrain / PyTorch fp32" "$verdict" "${ratio}x (target >= 0.8x)"
else
    record "ringtrain / PyTorch fp32" n/a "needs both figures"
fi

# ---- summary -----------------------------------------------------------------

{
    echo "ringtrain device check: $(date -u '+%Y-%m-%d %H:%M UTC'), $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $GPU_NAME, $(($(date +%s) - START)) s"
    echo
    echo "| step | result | figure |"
    echo "|---|---|---|"
    for i in "${!STEPS[@]}"; do
        echo "| ${STEPS[$i]} | ${RESULTS[$i]} | ${FIGURES[$i]} |"
    done
} | tee "$LOG_DIR/summary.md"
exit "$FAILED"
