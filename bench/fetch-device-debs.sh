#!/usr/bin/env bash
# Run HERE (Debian 12, amd64, with apt) before a device check: downloads the
# Debian packages that the GPU machine lacks into .deps/debs (ignored by git;
# carry it to the device: `carry: [".deps/debs"]`), and unpacks them into
# .deps/root so the environment can be tried on this machine first
# (bench/device-check.sh --no-gpu).
#
# The device image has CUDA, NCCL, gcc, python3 (with torch, meson, ninja) but
# no Open MPI, OpenBLAS, hwloc, libfyaml, cmocka, zlib headers or pkg-config,
# and no package registry. The list below is what ringtrain's build and
# programs need of those, runtime libraries included, and nothing that only
# optional Open MPI transports load (UCX, libfabric, verbs, PSM: their plugins
# simply do not load there; device-check.sh selects the shared-memory
# transport). meson and ninja-build come along as a fallback for an image
# without them. Total: about 20 MB of .debs (2026-11, bookworm), ~100 MB
# unpacked; the carried folder must stay under the device's 64 MiB.
#
# The device's cuDNN is the runtime in PyTorch's wheel, without headers: the
# cudnn*.h of this machine's cuDNN 9 (CUDNN_INCLUDE, default
# /usr/local/cuda/include; ~0.4 MB) go to .deps/debs/cudnn/include, where
# device-check.sh builds against them (-Dcudnn_root).
#
#   bench/fetch-device-debs.sh            # download (skips what is there), unpack
#   bench/fetch-device-debs.sh --clean    # start from an empty .deps/
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
    # Open MPI 4.1: headers + pkg-config (dev), libraries, mpirun/orted, help files
    libopenmpi-dev libopenmpi3 openmpi-bin openmpi-common
    libevent-core-2.1-7 libevent-pthreads-2.1-7 libpmix2 libmunge2
    # hwloc (Open MPI and the worker's core binding)
    libhwloc15 libhwloc-dev libudev1
    # OpenBLAS (pthread flavour: the one Debian's libopenblas-dev selects)
    libopenblas-dev libopenblas-pthread-dev libopenblas0-pthread
    libgfortran5 libquadmath0
    # the launcher's YAML parser, the unit-test framework, zlib headers
    libfyaml0 libfyaml-dev libcmocka0 libcmocka-dev zlib1g zlib1g-dev
    # pkg-config (meson finds every dependency through it)
    pkgconf pkgconf-bin libpkgconf3
    # build tools, in case the image lacks them
    meson ninja-build
)
limit_bytes=$((60 * 1024 * 1024))

if [ "$(dpkg --print-architecture)" != amd64 ]; then
    echo "fetch-device-debs.sh: error: this machine is $(dpkg --print-architecture); the device is amd64 (x86-64). Run it on an amd64 Debian 12 machine." >&2
    exit 2
fi
if [ "${1:-}" = --clean ]; then
    rm -rf .deps/debs .deps/root .deps/lib
elif [ -n "${1:-}" ]; then
    echo "fetch-device-debs.sh: error: unknown argument '$1' (use --clean or nothing)" >&2
    exit 2
fi

mkdir -p .deps/debs
cd .deps/debs
missing=()
for p in "${packages[@]}"; do
    v=$(apt-cache show --no-all-versions "$p" 2>/dev/null | awk '/^Version:/ {print $2; exit}')
    if [ -z "$v" ]; then
        echo "fetch-device-debs.sh: error: apt knows no package '$p'; run 'apt-get update' (Debian 12 sources) and retry" >&2
        exit 1
    fi
    # .deb file names escape ':' in epochs as %3a
    ls "${p}_${v/:/%3a}_"*.deb >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "fetch-device-debs.sh: downloading ${#missing[@]} packages" >&2
    apt-get download -q -o APT::Sandbox::User=root "${missing[@]}" >/dev/null
fi
for deb in ./*.deb; do
    printf '%s %s\n' "$(dpkg-deb -f "$deb" Package)" "$(dpkg-deb -f "$deb" Version)"
done >MANIFEST
cd ../..

cudnn_include=${CUDNN_INCLUDE:-/usr/local/cuda/include}
rm -rf .deps/debs/cudnn
if [ -f "$cudnn_include/cudnn.h" ] && [ -f "$cudnn_include/cudnn_version.h" ]; then
    mkdir -p .deps/debs/cudnn/include
    cp "$cudnn_include"/cudnn*.h .deps/debs/cudnn/include/
    cudnn_version=$(awk '/#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) / { v = v sep $3; sep = "." } END { print v }' \
        "$cudnn_include/cudnn_version.h")
else
    echo "fetch-device-debs.sh: warning: no cudnn.h and cudnn_version.h in $cudnn_include (set CUDNN_INCLUDE to cuDNN 9's include folder): the device build will have no cuDNN" >&2
fi

# Fashion-MNIST (Debian's dataset-fashion-mnist, 30 MB gzipped) for the
# device's LeNet fp32-vs-fp16 accuracy check.
fmnist=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
rm -rf .deps/debs/fashion-mnist
if [ -f "$fmnist/train-images-idx3-ubyte.gz" ]; then
    mkdir -p .deps/debs/fashion-mnist
    cp "$fmnist"/*-ubyte.gz .deps/debs/fashion-mnist/
else
    echo "fetch-device-debs.sh: warning: no Fashion-MNIST in $fmnist (Debian package dataset-fashion-mnist): the device's accuracy check will not run" >&2
fi

# What travels: everything under .deps/debs (the .debs, cuDNN's headers and
# Fashion-MNIST).
bytes=$(du -sb .deps/debs | cut -f1)
if [ "$bytes" -gt "$limit_bytes" ]; then
    echo "fetch-device-debs.sh: error: .deps/debs is $((bytes / 1048576)) MiB, over the $((limit_bytes / 1048576)) MiB left for it in the device's 64 MiB carry limit" >&2
    exit 1
fi

# Unpack exactly as the device will (one code path: device-check.sh's).
bench/device-check.sh --unpack-only
mib=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
headers=""
[ -n "${cudnn_version:-}" ] && headers=", the headers of cuDNN $cudnn_version"
[ -d .deps/debs/fashion-mnist ] && headers="$headers, Fashion-MNIST"
echo "fetch-device-debs.sh: $(find .deps/debs -maxdepth 1 -name "*.deb" | wc -l) packages$headers: .deps/debs is $mib MiB of the device's 64 MiB (carry: [\".deps/debs\"]), unpacked: $(du -sh .deps/root | cut -f1) in .deps/root"
