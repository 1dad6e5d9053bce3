#!/usr/bin/env bash
# The GPU check, run ON the GPU machine (one H200, 16 cores, CUDA + NCCL,
# python3 with PyTorch and its cuDNN wheel; no Open MPI/OpenBLAS/hwloc/
# libfyaml/cmocka, no cuDNN headers and no package registry) from a copy of
# the working tree that carries .deps/debs (made here by
# bench/fetch-device-debs.sh: the .debs and cuDNN's headers). In order, each
# step bounded by `timeout` so the whole run ends within 8 minutes:
#
#   0. cuDNN: the runtime in PyTorch's wheel (torch.backends.cudnn.version()
#      and the libcudnn.so.9 torch loaded); LD_LIBRARY_PATH gets its folder,
#      and .deps/cudnn-root is assembled for the build: include/ = the
#      carried headers, lib/libcudnn.so -> that libcudnn.so.9
#   1. environment: unpack .deps/debs into .deps/root; put the libraries the
#      system lacks on LD_LIBRARY_PATH (through .deps/lib), pkg-config on the
#      .debs' .pc files (PKG_CONFIG_SYSROOT_DIR, since they say prefix=/usr),
#      Open MPI relocated with OPAL_PREFIX, shared-memory transport only
#   2. build: meson -Dcuda=enabled into build-device/, with -Dcudnn=enabled
#      -Dcudnn_root=.deps/cudnn-root where meson_options.txt has those
#      options (else without, and the table says so)
#   3. tests/gpu (every CUDA kernel vs the CPU reference, the NCCL allreduce
#      at 1 rank, ringtrain-worker --device=cuda vs cpu, independent mode,
#      checkpoints)
#   4. ringtrain-allreduce-bench --algo nccl (1 rank, device buffers)
#   4b. LeNet on Fashion-MNIST, 2 epochs, fp32 and --use_fp16: test accuracy
#      (the target: within 0.5 points); the data travel in .deps/debs
#   5. training, synthetic data, ours and PyTorch's
#      (bench/peers/train_torch.py) alternating, each case ours then peer:
#        resnet50 b128 and resnet101 b64 (the seed's job: ResNet-101, batch
#        64 per GPU), each in
#          strict fp32  ours --allow_tf32=false   PyTorch (default: TF32 off)
#          TF32         ours --allow_tf32=true    PyTorch --tf32
#          fp16         ours --use_fp16 --fp16_enable_auto_loss_scale
#                                                 PyTorch --amp --channels_last --tf32
#      A flag the worker's --help does not list makes that case "not
#      supported by this build" (PyTorch still runs). Round 1 runs every
#      case; a second round runs only if round 1's time fits in what is left
#      (rounds are dropped, never cases). Peak GPU memory per run: the
#      device memory in use (nvidia-smi, sampled every 200 ms, minus what
#      was in use before), and each side's own figure where it prints one.
#
# Time budget (BUDGET = 470 s of the 8 minutes, RESERVE = 8 s of it kept for
# the summary): steps 0-1 ~20 s (the probe's torch import also warms the
# page cache for PyTorch's runs); build at most 60 s to configure + 150 s to
# compile (the last device build took 6 s); tests/gpu at most 100 s;
# allreduce bench at most 20 s; the accuracy runs at most 2 x 40 s (two
# LeNet epochs are ~3,750 steps of well under 5 ms); training gets the rest. Each run is WARMUP=5
# + TIMED=30 steps (a few seconds of steps: start-up, cuDNN autotuning
# included, dominates), its timeout what is left less RUN_MIN=20 s for each
# run still to come in the round, at most RUN_CAP=75 s. 12 runs of ~15-20 s
# take ~200-240 s a round, so a second round fits only after a quick build.
#
# Prints two tables (also written to LOG_DIR/summary.md): the steps, and the
# cases with ours, PyTorch, the ratio, the issue's target and the memory of
# both sides. Exits 1 if a step or a run failed (a missing feature is not a
# failure), 0 otherwise; targets met or missed are in the table only.
#
#   bench/device-check.sh [--log-dir DIR]   on the GPU machine
#   bench/device-check.sh --no-gpu          here: the same steps with stand-ins
#                                           (checks the environment, build,
#                                           flags and tables): the allreduce
#                                           bench and ours run --device=cuda on
#                                           the CPU emulation of CUDA
#                                           (tests/gpu/emu), PyTorch on the CPU
#                                           (if a python3 has torch), lenet and
#                                           mlp at batch 8 for the two models;
#                                           tests/gpu skip; no ratios
#   bench/device-check.sh --unpack-only     just step 1's unpacking
#   --system-deps   use this machine's packages instead of .deps (step 1)
#   --no-build      use BUILD_DIR as it is (step 2 skipped)
#   --rounds N      at most N rounds of the cases (default 2)
#
# Environment: BUILD_DIR (default build-device), MESON (default: meson on
# PATH, else python3 -m mesonbuild.mesonmain, else the carried meson),
# PYTHON (default: the first of python3, /usr/bin/python3 that has torch),
# RINGTRAIN_DEPS_SYSTEM_LIBS=none (use every carried library even where the
# system has one: for checking the carried set on a machine that has them
# all).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
REPO=$PWD

NO_GPU=0
UNPACK_ONLY=0
SYSTEM_DEPS=0
NO_BUILD=0
ROUNDS=2
LOG_DIR=""
usage_error()
{
    echo "device-check.sh: error: $1 (see --help)" >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case "$1" in
    --no-gpu) NO_GPU=1 ;;
    --unpack-only) UNPACK_ONLY=1 ;;
    --system-deps) SYSTEM_DEPS=1 ;;
    --no-build) NO_BUILD=1 ;;
    --rounds)
        [[ $# -ge 2 && "$2" =~ ^[1-9]$ ]] || usage_error "--rounds needs a number from 1 to 9"
        ROUNDS=$2
        shift
        ;;
    --log-dir)
        [ $# -ge 2 ] || usage_error "--log-dir needs a directory"
        LOG_DIR=$2
        shift
        ;;
    -h | --help)
        sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) usage_error "unknown argument '$1'" ;;
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
RESERVE=8  # kept for the summary
WARMUP=5 TIMED=30
RUN_MIN=20 RUN_CAP=75

remaining() { echo $((BUDGET - ($(date +%s) - START))); }
# Seconds a step may take: its own cap, or what is left of the budget.
step_limit()
{
    local cap=$1 left
    left=$(($(remaining) - RESERVE))
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

# ---- 0. cuDNN runtime (PyTorch's wheel) --------------------------------------

# The python that has torch: PyTorch's runs and the cuDNN probe use it.
find_python()
{
    local p
    if [ -n "${PYTHON:-}" ]; then
        echo "$PYTHON"
        return
    fi
    for p in python3 /usr/bin/python3; do
        if "$p" -c 'import torch' >/dev/null 2>&1; then
            echo "$p"
            return
        fi
    done
    echo python3
}

# Prints "torch_version cuda_version cudnn_version libcudnn_path" (0 and -
# where there is none): the library is the one torch loaded (its memory
# map), else the first libcudnn.so.9 in its site-packages.
cudnn_probe()
{
    timeout 60 "$PY" - <<'PY' 2>/dev/null
import glob, os
import torch
v = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
path = ""
try:
    with open("/proc/self/maps") as maps:
        for line in maps:
            name = line.split()[-1]
            if os.path.basename(name).startswith("libcudnn.so"):
                path = name
                break
except OSError:
    pass
if not path:
    site = os.path.dirname(os.path.dirname(torch.__file__))
    hits = sorted(glob.glob(os.path.join(site, "nvidia", "**", "libcudnn.so.9*"), recursive=True)
                  + glob.glob(os.path.join(site, "torch", "lib", "libcudnn.so.9*")))
    path = hits[0] if hits else ""
print(torch.__version__, torch.version.cuda or "none", v or 0, path or "-")
PY
}

# cuDNN's version number from a cudnn_version.h (9.19.0 -> 91900), or 0.
header_version()
{
    awk '$1 == "#define" && $2 == "CUDNN_MAJOR" {a = $3} $1 == "#define" && $2 == "CUDNN_MINOR" {b = $3}
         $1 == "#define" && $2 == "CUDNN_PATCHLEVEL" {c = $3}
         END {print (a == "" ? 0 : a * 10000 + b * 100 + c)}' "$1" 2>/dev/null || echo 0
}
dotted() { echo "$(($1 / 10000)).$(($1 / 100 % 100)).$(($1 % 100))"; }

# Sets CUDNN_ROOT (a folder with include/ and lib/ for -Dcudnn_root) and
# CUDNN_LIB_DIR (for LD_LIBRARY_PATH), or leaves them empty.
CUDNN_ROOT="" CUDNN_LIB_DIR="" CUDNN_NOTE=""
cudnn_setup()
{
    local torch_v cuda_v rt so inc hv figure result=FAIL
    [ "$NO_GPU" = 1 ] && result=n/a # the stand-in run needs no cuDNN
    read -r torch_v cuda_v rt so <<<"$(cudnn_probe)"
    inc=$DEPS/debs/cudnn/include
    [ -f "$inc/cudnn.h" ] || inc=/usr/local/cuda/include
    [ -f "$inc/cudnn.h" ] || inc=""
    if [ -z "${torch_v:-}" ]; then
        CUDNN_NOTE="$PY has no torch"
    elif [ "${so:--}" = - ] || [ "$rt" = 0 ]; then
        CUDNN_NOTE="PyTorch $torch_v (CUDA $cuda_v) has no cuDNN runtime"
    fi
    if [ -n "$CUDNN_NOTE" ] && [ "$NO_GPU" = 1 ] && [ -e /usr/local/cuda/lib64/libcudnn.so.9 ]; then
        # The stand-in run builds against this machine's own cuDNN.
        so=/usr/local/cuda/lib64/libcudnn.so.9 rt=$(header_version /usr/local/cuda/include/cudnn_version.h)
        CUDNN_NOTE="$CUDNN_NOTE; using this machine's $so"
    elif [ -n "$CUDNN_NOTE" ]; then
        record "cuDNN runtime (PyTorch's wheel)" "$result" "$CUDNN_NOTE: the build goes without cuDNN"
        return
    fi
    if [ -z "$inc" ]; then
        record "cuDNN runtime (PyTorch's wheel)" "$result" "cuDNN $(dotted "$rt") at $so, but no cudnn*.h: run bench/fetch-device-debs.sh on a machine with cuDNN's headers and carry .deps/debs"
        return
    fi
    CUDNN_LIB_DIR=$(dirname "$so")
    CUDNN_ROOT=$DEPS/cudnn-root
    rm -rf "$CUDNN_ROOT"
    mkdir -p "$CUDNN_ROOT/lib"
    ln -sfn "$inc" "$CUDNN_ROOT/include"
    ln -sfn "$so" "$CUDNN_ROOT/lib/libcudnn.so"
    ln -sfn "$so" "$CUDNN_ROOT/lib/libcudnn.so.9"
    hv=$(header_version "$inc/cudnn_version.h")
    figure="cuDNN $(dotted "$rt") ($so; PyTorch ${torch_v:-none}, CUDA ${cuda_v:-none}); headers $(dotted "$hv") from $inc"
    [ "$hv" -gt "$rt" ] && figure="$figure (newer than the runtime: a function added since $(dotted "$rt") would not resolve)"
    [ -n "$CUDNN_NOTE" ] && figure="$figure; $CUDNN_NOTE"
    record "cuDNN runtime (PyTorch's wheel)" ok "$figure"
}

# ---- 1. environment ----------------------------------------------------------

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

# This machine's own packages (--system-deps): nothing unpacked.
system_env()
{
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    MPIRUN=(mpirun --oversubscribe -np 1)
    if [ -n "${MESON:-}" ]; then
        read -r -a MESON_CMD <<<"$MESON"
    else
        MESON_CMD=(meson)
    fi
}

if [ "$UNPACK_ONLY" = 1 ]; then
    deps_unpack
    exit $?
fi

mkdir -p "$LOG_DIR"
GPU_NAME="no GPU"
if [ "$NO_GPU" = 0 ]; then
    GPU_NAME=$(timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n1)
    [ -n "$GPU_NAME" ] || GPU_NAME="nvidia-smi found no GPU"
fi
PY=$(find_python)
cudnn_setup
# Ours finds cuDNN's libraries (libcudnn.so.9 loads its engines from its
# own folder) on the library path; PyTorch's runs keep the original one.
[ -n "$CUDNN_LIB_DIR" ] && export LD_LIBRARY_PATH="$CUDNN_LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ENV_OK=1
if [ "$SYSTEM_DEPS" = 1 ]; then
    system_env
    record "environment (system packages)" ok "--system-deps: this machine's libraries and tools; meson: ${MESON_CMD[*]}"
elif deps_env; then
    record "environment (.deps)" ok "$(find "$DEPS/lib" -mindepth 1 -maxdepth 1 | wc -l) carried libraries in use; meson: ${MESON_CMD[*]}"
else
    ENV_OK=0
    record "environment (.deps)" FAIL "see the message above"
fi

# ---- 2. build ---------------------------------------------------------------

# -Dcudnn / -Dcudnn_root exist only in builds that have cuDNN convolutions;
# meson refuses unknown options, so ask meson_options.txt first.
build_options()
{
    BUILD_OPTS=(-Dcuda=enabled -Dnccl=auto)
    BUILD_NOTE=""
    if ! grep -qsE "option\( *['\"]cudnn['\"]" meson_options.txt meson.options ||
        ! grep -qsE "option\( *['\"]cudnn_root['\"]" meson_options.txt meson.options; then
        BUILD_NOTE="this tree has no cudnn option (meson_options.txt): convolutions without cuDNN"
    elif [ -n "$CUDNN_ROOT" ]; then
        BUILD_OPTS+=(-Dcudnn=enabled "-Dcudnn_root=$CUDNN_ROOT")
    else
        BUILD_OPTS+=(-Dcudnn=auto)
        BUILD_NOTE="no cuDNN runtime found (step 0): -Dcudnn=auto"
    fi
}

# What the built worker links of cuDNN (ldd), for the build's figure.
cudnn_linked()
{
    local lib
    lib=$(ldd "$BUILD_DIR/worker/ringtrain-worker" 2>/dev/null | awk '/libcudnn/ { print $1 " => " $3; exit }')
    echo "${lib:-no libcudnn linked}"
}

BUILT=0
build_options
if [ "$ENV_OK" = 0 ]; then
    record "build" FAIL "not run: no environment"
elif [ "$NO_BUILD" = 1 ]; then
    if [ -f "$BUILD_DIR/build.ninja" ]; then
        BUILT=1
        record "build" ok "--no-build: $BUILD_DIR as it is; cuDNN: $(cudnn_linked)"
    else
        record "build" FAIL "--no-build, but $BUILD_DIR has no build.ninja"
    fi
else
    t0=$(date +%s)
    {
        if [ -f "$BUILD_DIR/build.ninja" ]; then
            timeout "$(step_limit 60)" "${MESON_CMD[@]}" setup --reconfigure "$BUILD_DIR" "${BUILD_OPTS[@]}"
        else
            timeout "$(step_limit 60)" "${MESON_CMD[@]}" setup "$BUILD_DIR" "${BUILD_OPTS[@]}"
        fi && timeout "$(step_limit 150)" "${MESON_CMD[@]}" compile -C "$BUILD_DIR"
    } >"$LOG_DIR/build.log" 2>&1
    rc=$?
    name="build (meson ${BUILD_OPTS[*]/#-Dcudnn_root=*/-Dcudnn_root=.deps/cudnn-root})"
    if [ $rc = 0 ]; then
        BUILT=1
        ncu=$(grep -c 'Generating.*librtkernels_cuda.a.p/.*\.o\|Compiling CUDA object' "$LOG_DIR/build.log")
        record "$name" ok "$(($(date +%s) - t0)) s; $ncu .cu files compiled by nvcc$([ "$ncu" = 0 ] && echo ' (up to date)'); cuDNN: $(cudnn_linked)${BUILD_NOTE:+; $BUILD_NOTE}"
    else
        tail -n 30 "$LOG_DIR/build.log" >&2
        record "$name" FAIL "exit $rc after $(($(date +%s) - t0)) s; see build.log"
    fi
fi

# ---- 3. tests/gpu -----------------------------------------------------------

if [ "$BUILT" = 1 ]; then
    # A log of its own: BUILD_DIR may be a build whose own `meson test` is
    # running (the gpu-emu suite runs this script on its build), and two
    # writers of one testlog.json corrupt it.
    timeout "$(step_limit 100)" "${MESON_CMD[@]}" test -C "$BUILD_DIR" --suite gpu --no-rebuild --print-errorlogs \
        --logbase device-check-gpu >"$LOG_DIR/tests.log" 2>&1
    counts=$(python3 - "$BUILD_DIR/meson-logs/device-check-gpu.json" <<'PY'
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
    bench_bin=$BUILD_DIR/tests/gpu/ringtrain-allreduce-bench-emu BENCH_MAX=4M BENCH_NAME="allreduce bench --algo nccl (emulated)"
else
    bench_bin=$BUILD_DIR/bench/ringtrain-allreduce-bench BENCH_MAX=64M BENCH_NAME="allreduce bench --algo nccl"
fi
if [ "$BUILT" = 0 ]; then
    record "$BENCH_NAME" FAIL "not run: no build"
elif [ ! -x "$bench_bin" ]; then
    record "$BENCH_NAME" FAIL "$bench_bin was not built"
else
    timeout "$(step_limit 20)" "${MPIRUN[@]}" "$bench_bin" --algo nccl -b 8 -e "$BENCH_MAX" -f 8 -d float -o sum \
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

# ---- 4b. accuracy: LeNet on Fashion-MNIST, fp32 vs --use_fp16 ----------------

# Two epochs each, one rank; the target is fp16 within 0.5 points of fp32
# (shown, not a failure). The data travel in .deps/debs/fashion-mnist
# (fetch-device-debs.sh). --no-gpu: one epoch of the first 320 images on
# the emulation (flags and parsing only).
accuracy_of() { sed -n 's/^Accuracy @ 1 = \([0-9.]*\).*/\1/p' "$1" | tail -n1; }
FMNIST=$DEPS/debs/fashion-mnist
[ -f "$FMNIST/train-images-idx3-ubyte.gz" ] || FMNIST=/usr/share/datasets/fashion-mnist
# The first N images and labels of each Fashion-MNIST file, into DIR.
fmnist_head() # SRC DIR N
{
    python3 - "$@" <<'PY'
import gzip, os, struct, sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(dst, exist_ok=True)
for name in os.listdir(src):
    if not name.endswith("-ubyte.gz"):
        continue
    data = gzip.open(os.path.join(src, name)).read()
    dims = data[3]
    shape = list(struct.unpack(">%dI" % dims, data[4:4 + 4 * dims]))
    per = 1
    for d in shape[1:]:
        per *= d
    shape[0] = min(n, shape[0])
    body = data[4 + 4 * dims:4 + 4 * dims + shape[0] * per]
    with gzip.open(os.path.join(dst, name), "wb") as f:
        f.write(data[:4] + struct.pack(">%dI" % dims, *shape) + body)
PY
}
if [ "$NO_GPU" = 1 ]; then
    acc_worker=$BUILD_DIR/tests/gpu/ringtrain-worker-emu ACC_EPOCHS=1
    if [ -f "$FMNIST/train-images-idx3-ubyte.gz" ]; then
        fmnist_head "$FMNIST" "$LOG_DIR/fashion-mnist-320" 320 && FMNIST=$LOG_DIR/fashion-mnist-320
    fi
else
    acc_worker=$BUILD_DIR/worker/ringtrain-worker ACC_EPOCHS=2
fi
if [ "$BUILT" = 0 ] || [ ! -x "$acc_worker" ]; then
    record "LeNet fp16 accuracy" FAIL "not run: no build"
elif [ ! -f "$FMNIST/train-images-idx3-ubyte.gz" ]; then
    record "LeNet fp16 accuracy" FAIL "not run: no Fashion-MNIST (run bench/fetch-device-debs.sh where dataset-fashion-mnist is installed, carry .deps/debs)"
else
    acc=()
    for prec in fp32 fp16; do
        extra=""
        [ "$prec" = fp16 ] && extra="--use_fp16 --fp16_enable_auto_loss_scale"
        # shellcheck disable=SC2086 # the flags are words
        timeout "$(step_limit 40)" "${MPIRUN[@]}" "$acc_worker" --device=cuda --model=lenet \
            --data_name=fashion_mnist --data_dir="$FMNIST" --batch_size=32 --learning_rate=0.01 \
            --momentum=0.9 --weight_decay=0 --num_epochs="$ACC_EPOCHS" --num_warmup_batches=0 \
            --display_every=1000 --eval $extra >"$LOG_DIR/accuracy-$prec.log" 2>&1
        acc+=("$(accuracy_of "$LOG_DIR/accuracy-$prec.log")")
    done
    if [ -z "${acc[0]}" ] || [ -z "${acc[1]}" ]; then
        record "LeNet fp16 accuracy" FAIL "fp32 ${acc[0]:-no result}, fp16 ${acc[1]:-no result}; see accuracy-fp32.log, accuracy-fp16.log"
    else
        record "LeNet fp16 accuracy" ok "$(awk -v a="${acc[0]}" -v b="${acc[1]}" -v e="$ACC_EPOCHS" 'BEGIN {
            d = (b - a) * 100; printf "%s epoch(s), batch 32: fp32 %.4f, fp16 %.4f: %+.2f points (target: within 0.5, %s)", e, a, b, d, (d <= 0.5 && d >= -0.5) ? "met" : "MISSED" }')"
    fi
fi

# ---- 5. training: the cases, ours and PyTorch alternating --------------------

# Models and batches (the seed's job is ResNet-101 at batch 64 per GPU);
# --no-gpu: CPU-sized stand-ins under the same case names.
if [ "$NO_GPU" = 1 ]; then
    MODELS=(resnet50:128:lenet:8 resnet101:64:mlp:8)
    WARMUP=1 TIMED=2 RUN_CAP=120
    WORKER=$BUILD_DIR/tests/gpu/ringtrain-worker-emu PEER_DEVICE=cpu
else
    MODELS=(resnet50:128:resnet50:128 resnet101:64:resnet101:64)
    WORKER=$BUILD_DIR/worker/ringtrain-worker PEER_DEVICE=cuda
fi
PRECISIONS=(fp32 tf32 fp16)
declare -A PRECISION_NAME=([fp32]="strict fp32" [tf32]=TF32 [fp16]=fp16)
declare -A PEER_FLAGS=([fp32]="" [tf32]="--tf32" [fp16]="--amp --channels_last --tf32")
# The issue's targets: ours / PyTorch at least this (same run).
TARGET=1.0

# Ours' flags for a precision from its --help, or "n/s" where the build
# lacks the flag. Strict fp32 says --allow_tf32=false where TF32 can be on.
WORKER_HELP=""
ours_flags()
{
    local tf32=0 fp16=0 auto=""
    grep -qE -- '--allow_tf32([= ]|$)' <<<"$WORKER_HELP" && tf32=1
    grep -qE -- '--use_fp16([= ]|$)' <<<"$WORKER_HELP" && fp16=1
    # Dynamic loss scaling, as PyTorch's GradScaler does.
    grep -qE -- '--fp16_enable_auto_loss_scale([= ]|$)' <<<"$WORKER_HELP" &&
        auto=" --fp16_enable_auto_loss_scale"
    case "$1" in
    fp32) [ $tf32 = 1 ] && echo "--allow_tf32=false" || echo "" ;;
    tf32) [ $tf32 = 1 ] && echo "--allow_tf32=true" || echo "n/s" ;;
    fp16) [ $fp16 = 1 ] && echo "--use_fp16$auto" || echo "n/s" ;;
    esac
}

images_per_sec() { sed -n 's/^total images\/sec: *\([0-9.]*\).*/\1/p' "$1" | tail -n1; }

# Device memory in use while a run goes (nvidia-smi every 200 ms), less
# what was in use before it: the same measure for both sides (CUDA context,
# libraries' workspaces, caching allocators included). Empty without a GPU.
MEM_PID="" MEM_BASE=""
mem_start()
{
    MEM_PID="" MEM_BASE=""
    [ "$NO_GPU" = 0 ] && command -v nvidia-smi >/dev/null 2>&1 || return 0
    MEM_BASE=$(timeout 10 nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 2>/dev/null | head -n1)
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 -lms 200 >"$1" 2>/dev/null &
    MEM_PID=$!
}
mem_stop() # file -> MiB or empty
{
    [ -n "$MEM_PID" ] || return 0
    kill "$MEM_PID" 2>/dev/null
    wait "$MEM_PID" 2>/dev/null
    awk -v base="${MEM_BASE:-0}" '$1 ~ /^[0-9]+$/ && $1 > max { max = $1 } END { if (max != "") print max - base }' "$1"
}

# A side's own report of its peak GPU memory ("peak GPU memory (rank 0):
# ..."), shortened; empty if it prints none.
own_memory() { sed -n 's/^peak GPU memory (rank 0): *//p' "$1" | head -n1; }

# Per case and side: figures of every round, space-separated.
declare -A IPS MEM OWN_MEM NOTE
RUNS_LEFT=0
# One run of one side: sets IPS/MEM/OWN_MEM (appends) or NOTE.
run_side() # case precision side round
{
    local case=$1 prec=$2 side=$3 round=$4
    local model batch key="$1 $2 $3" log="$LOG_DIR/$side-${1/ b/-b}-$2-r$4.log" cmd=() lim
    IFS=: read -r _ _ model batch <<<"${CASE_SPEC[$case]}"
    if [ "$side" = ours ]; then
        local flags
        flags=$(ours_flags "$prec")
        if [ "$flags" = n/s ]; then
            NOTE[$key]="not supported by this build"
            return
        fi
        # shellcheck disable=SC2206 # the flags are words
        cmd=("${MPIRUN[@]}" "$WORKER" --device=cuda --model="$model" --batch_size="$batch"
             --num_batches="$TIMED" --num_warmup_batches="$WARMUP" --display_every=10 $flags)
    else
        local ld=(-u LD_LIBRARY_PATH) flags=${PEER_FLAGS[$prec]}
        [ "$ORIG_LD_LIBRARY_PATH" != __unset__ ] && ld=("LD_LIBRARY_PATH=$ORIG_LD_LIBRARY_PATH")
        if [ "$PEER_DEVICE" = cpu ]; then
            # The GPU's precision flags need a GPU: one fp32 run a model.
            [ "$HAVE_TORCH" = 1 ] || { NOTE[$key]="no torch here ($PY)"; return; }
            [ "$prec" = fp32 ] || { NOTE[$key]="CPU stand-in: strict fp32 only"; return; }
            flags=""
        fi
        # shellcheck disable=SC2206
        cmd=(env -u OPAL_PREFIX "${ld[@]}" PYTHONUNBUFFERED=1 "$PY" bench/peers/train_torch.py
             --device "$PEER_DEVICE" --model "$model" --batch_size "$batch" --num_batches "$TIMED"
             --num_warmup_batches "$WARMUP" --display_every 10 --num_intra_threads 16 $flags)
    fi
    # What is left, less RUN_MIN for each run still to come in this round.
    lim=$(($(remaining) - RESERVE - RUN_MIN * (RUNS_LEFT > 1 ? RUNS_LEFT - 1 : 0)))
    [ "$lim" -gt "$RUN_CAP" ] && lim=$RUN_CAP
    [ "$lim" -lt "$RUN_MIN" ] && lim=$RUN_MIN
    lim=$(step_limit "$lim")
    echo "+ timeout $lim ${cmd[*]}" >"$log"
    mem_start "$log.mem"
    timeout --kill-after=5 "$lim" "${cmd[@]}" >>"$log" 2>&1
    local rc=$? ips
    local mem
    mem=$(mem_stop "$log.mem")
    ips=$(images_per_sec "$log")
    if [ $rc = 0 ] && [ -n "$ips" ]; then
        IPS[$key]="${IPS[$key]:-}${IPS[$key]:+ }$ips"
        [ -n "$mem" ] && MEM[$key]="${MEM[$key]:-}${MEM[$key]:+ }$mem"
        OWN_MEM[$key]=$(own_memory "$log")
        printf 'device-check: %-40s %s images/sec%s\n' "$key r$round" "$ips" "${mem:+, $mem MiB}" >&2
    else
        local why="exit $rc"
        [ $rc = 124 ] || [ $rc = 137 ] && why="timed out after $lim s"
        NOTE[$key]="FAIL r$round: $why: $(grep -m1 -i 'error' "$log" | cut -c1-100)"
        FAILED=1
        printf 'device-check: %-40s FAIL %s; see %s\n' "$key r$round" "$why" "$log" >&2
    fi
}

declare -A CASE_SPEC
CASES=()
for spec in "${MODELS[@]}"; do
    IFS=: read -r name batch _ _ <<<"$spec"
    CASE_SPEC["$name b$batch"]=$spec
    CASES+=("$name b$batch")
done

run_round() # round
{
    local case prec side
    RUNS_LEFT=$((${#CASES[@]} * ${#PRECISIONS[@]} * 2))
    for case in "${CASES[@]}"; do
        for prec in "${PRECISIONS[@]}"; do
            for side in ours peer; do
                if [ "$(remaining)" -le "$RESERVE" ]; then
                    NOTE["$case $prec $side"]="${NOTE["$case $prec $side"]:-not run: the 8-minute budget ran out}"
                else
                    run_side "$case" "$prec" "$side" "$1"
                fi
                RUNS_LEFT=$((RUNS_LEFT - 1))
            done
        done
    done
}

HAVE_TORCH=0
"$PY" -c 'import torch' >/dev/null 2>&1 && HAVE_TORCH=1
ROUNDS_RUN=0
ROUND_NOTE=""
if [ "$BUILT" = 1 ] && [ -x "$WORKER" ]; then
    WORKER_HELP=$(timeout 30 "${MPIRUN[@]}" "$WORKER" --help 2>&1)
    for ((round = 1; round <= ROUNDS; round++)); do
        t0=$(date +%s)
        run_round "$round"
        ROUNDS_RUN=$round
        took=$(($(date +%s) - t0))
        if [ "$round" -lt "$ROUNDS" ] && [ $(($(remaining) - RESERVE)) -lt $((took * 11 / 10)) ]; then
            ROUND_NOTE="; round $((round + 1)) dropped: it would take ~$took s, $(($(remaining) - RESERVE)) s left"
            break
        fi
    done
else
    ROUND_NOTE="; not run: no worker ($WORKER)"
    FAILED=1
fi

# ---- summary -----------------------------------------------------------------

# Of space-separated figures (none: nothing).
median() { tr ' ' '\n' | sort -g | awk 'NF { v[++n] = $1 } END { if (n) printf "%.1f", n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }'; }
largest() { tr ' ' '\n' | sort -g | awk 'NF { v = $1 } END { printf "%s", v }'; }

# One row of the case table.
case_row() # case precision
{
    local k="$1 $2" ours peer ratio="" target="" om pm note=""
    ours=$(median <<<"${IPS[$k ours]:-}")
    peer=$(median <<<"${IPS[$k peer]:-}")
    if [ "$NO_GPU" = 0 ] && [ -n "$ours" ] && [ -n "$peer" ]; then
        ratio=$(awk -v a="$ours" -v b="$peer" 'BEGIN { printf "%.2fx", a / b }')
        target=$(awk -v a="$ours" -v b="$peer" -v t="$TARGET" 'BEGIN { print (a / b >= t ? "met" : "missed") }')
        target=">= ${TARGET}x: $target"
    fi
    om=$(largest <<<"${MEM[$k ours]:-}")
    pm=$(largest <<<"${MEM[$k peer]:-}")
    if [ -n "$om" ] && [ -n "$pm" ]; then
        target="${target:+$target; }memory <= PyTorch's: $([ "$om" -le "$pm" ] && echo met || echo missed)"
    fi
    [ -n "${NOTE[$k ours]:-}" ] && note="ours: ${NOTE[$k ours]}"
    [ -n "${NOTE[$k peer]:-}" ] && note="${note:+$note; }PyTorch: ${NOTE[$k peer]}"
    om="${om:+$om MiB}${OWN_MEM[$k ours]:+ (own: ${OWN_MEM[$k ours]})}"
    pm="${pm:+$pm MiB}${OWN_MEM[$k peer]:+ (own: ${OWN_MEM[$k peer]})}"
    echo "| $1 ${PRECISION_NAME[$2]} | ${ours:-—} | ${peer:-—} | ${ratio:-—} | ${target:-—} |" \
        "${om:-—} | ${pm:-—} | ${note:-} |"
}

{
    echo "ringtrain device check: $(date -u '+%Y-%m-%d %H:%M UTC'), $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $GPU_NAME, $(($(date +%s) - START)) s of a $BUDGET s budget"
    echo
    echo "| step | result | figure |"
    echo "|---|---|---|"
    for i in "${!STEPS[@]}"; do
        echo "| ${STEPS[$i]} | ${RESULTS[$i]} | ${FIGURES[$i]} |"
    done
    echo
    if [ "$NO_GPU" = 1 ]; then
        echo "Training stand-ins (--no-gpu): ours --device=cuda on the CPU emulation, PyTorch on the CPU, lenet b8 for resnet50 b128 and mlp b8 for resnet101 b64; $ROUNDS_RUN round(s)$ROUND_NOTE; no ratios."
    else
        echo "Training, synthetic data, 1 GPU: images/sec, the median of $ROUNDS_RUN round(s)$ROUND_NOTE, $WARMUP warm-up + $TIMED timed steps a run, ours then PyTorch in each case. Flags: strict fp32 ours --allow_tf32=false, PyTorch TF32 off; TF32 ours --allow_tf32=true, PyTorch --tf32; fp16 ours --use_fp16 --fp16_enable_auto_loss_scale, PyTorch --amp --channels_last --tf32 (autocast + GradScaler). Memory: peak device memory in use during the run (nvidia-smi), each side's own figure in parentheses."
    fi
    echo
    echo "| case | ours | PyTorch | ratio | target | ours GPU memory | PyTorch GPU memory | notes |"
    echo "|---|---|---|---|---|---|---|---|"
    for case in "${CASES[@]}"; do
        for prec in "${PRECISIONS[@]}"; do
            case_row "$case" "$prec"
        done
    done
} | tee "$LOG_DIR/summary.md"
exit "$FAILED"
