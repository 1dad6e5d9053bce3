#!/usr/bin/env bash
# Crafted IDX files given to ringtrain-worker --data_name=fashion_mnist: a
# shape that is not the model's, a header claiming more data than the file
# holds (plain and gzip), more data than the header says, a corrupt or cut
# gzip stream, a directory and a FIFO where a file should be. Each must end
# in exit 2 with a line naming the file, within seconds (one rank, or two
# where the ranks must agree), and (in the
# sanitizer build) without a sanitizer report. A valid crafted set must
# train and evaluate, so the failures come from the crafted part.
#   test_worker_data_files.sh WORKER
set -uo pipefail
worker=$1
tmp=$(mktemp -d /tmp/ringtrain-datafiles.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0

# A valid set: 64 training and 32 test images of 28x28, labels 0..9; then
# one variant per case, each a copy with one file replaced.
python3 - "$tmp" <<'PY'
import gzip, os, struct, sys
tmp = sys.argv[1]
def images(n, h, w):
    return struct.pack(">IIII", 0x803, n, h, w) + bytes((i * 7) % 256 for i in range(n * h * w))
def labels(n):
    return struct.pack(">II", 0x801, n) + bytes(i % 10 for i in range(n))
def write(d, name, data):
    os.makedirs(os.path.join(tmp, d), exist_ok=True)
    open(os.path.join(tmp, d, name), "wb").write(data)
def valid(d, skip=()):
    files = {"train-images-idx3-ubyte": images(64, 28, 28), "train-labels-idx1-ubyte": labels(64),
             "t10k-images-idx3-ubyte": images(32, 28, 28), "t10k-labels-idx1-ubyte": labels(32)}
    for name, data in files.items():
        if name not in skip:
            write(d, name, data)
valid("good")
# The model takes 28x28: 64x64 test images (--eval), 1x1 and 64x64 training images.
valid("eval64", ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"])
write("eval64", "t10k-images-idx3-ubyte", images(1000, 64, 64))
write("eval64", "t10k-labels-idx1-ubyte", labels(1000))
for d, side in (("train1", 1), ("train64", 64)):
    valid(d, ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"])
    write(d, "train-images-idx3-ubyte", images(1000, side, side))
    write(d, "train-labels-idx1-ubyte", labels(1000))
# 116 bytes claiming 99,999,999 images (and labels); the same gzipped.
lie = struct.pack(">IIII", 0x803, 99999999, 28, 28) + bytes(100)
lie_labels = struct.pack(">II", 0x801, 99999999) + bytes(64)
for d, gz in (("lie", False), ("liegz", True)):
    valid(d, ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"])
    write(d, "train-images-idx3-ubyte" + (".gz" if gz else ""), gzip.compress(lie) if gz else lie)
    write(d, "train-labels-idx1-ubyte" + (".gz" if gz else ""),
          gzip.compress(lie_labels) if gz else lie_labels)
# More pixels than the header says.
valid("extra", ["t10k-images-idx3-ubyte"])
write("extra", "t10k-images-idx3-ubyte", images(32, 28, 28) + bytes(784))
# A gzip stream whose first deflate block has an invalid type, and one cut
# in the middle.
z = bytearray(gzip.compress(images(64, 28, 28)))
z[10] = 0xff
valid("corrupt", ["train-images-idx3-ubyte"])
write("corrupt", "train-images-idx3-ubyte.gz", bytes(z))
z = gzip.compress(images(32, 28, 28))
valid("cut", ["t10k-images-idx3-ubyte"])
write("cut", "t10k-images-idx3-ubyte.gz", z[:len(z) // 2])
valid("dir", ["train-images-idx3-ubyte"])
os.makedirs(os.path.join(tmp, "dir", "train-images-idx3-ubyte"))
valid("fifo", ["t10k-labels-idx1-ubyte"])
os.mkfifo(os.path.join(tmp, "fifo", "t10k-labels-idx1-ubyte"))
PY
[ -p "$tmp/fifo/t10k-labels-idx1-ubyte" ] || { echo "FAIL: could not make the test files"; exit 1; }

run() { # dir np args... -> $tmp/out, $rc
    local d=$1 np=$2
    shift 2
    timeout 60 mpirun -np "$np" --oversubscribe "$worker" --bind=none --model=lenet \
        --data_name=fashion_mnist --data_dir="$tmp/$d" --batch_size=8 --num_batches=2 \
        --num_warmup_batches=0 "$@" >"$tmp/out" 2>&1
    rc=$?
}
sanitizer_clean() {
    ! grep -qE "Sanitizer|runtime error:" "$tmp/out"
}
expect() { # dir np needle args...
    local d=$1 np=$2 needle=$3 t0=$SECONDS
    shift 3
    run "$d" "$np" "$@"
    if [ $rc -ne 2 ] || ! grep -qF -- "ringtrain-worker: error: $needle" "$tmp/out" ||
        ! sanitizer_clean; then
        echo "FAIL: $d np=$np $* -> exit $rc, wanted 2 and '$needle':"
        cat "$tmp/out"
        fails=$((fails + 1))
    else
        echo "ok: $d np=$np $* -> exit 2 in $((SECONDS - t0)) s: $(grep -F -- "$needle" "$tmp/out" | head -1)"
    fi
}

run good 2 --eval
if [ $rc -ne 0 ] || ! grep -q "^Accuracy @ 1 = .* \[32 examples\]" "$tmp/out" || ! sanitizer_clean; then
    echo "FAIL: the valid crafted set -> exit $rc:"; cat "$tmp/out"; fails=$((fails + 1))
else
    echo "ok: the valid crafted set trains and evaluates"
fi
t=$tmp
expect eval64 2 "$t/eval64/t10k-images-idx3-ubyte: the header says images of 1x64x64, the model takes 1x28x28" --eval
expect train1 1 "$t/train1/train-images-idx3-ubyte: the header says images of 1x1x1, the model takes 1x28x28"
expect train64 1 "$t/train64/train-images-idx3-ubyte: the header says images of 1x64x64, the model takes 1x28x28"
expect train64 1 "$t/train64/train-images-idx3-ubyte: the header says images of 1x64x64" --eval
expect lie 1 "$t/lie/train-images-idx3-ubyte: truncated: the header says 99999999 images of 28x28 (78399999216 bytes), the file has 100 after the header"
expect liegz 1 "$t/liegz/train-images-idx3-ubyte.gz: truncated: the header says 99999999 images of 28x28 (78399999216 bytes), the file has 100 after the header"
expect extra 1 "$t/extra/t10k-images-idx3-ubyte: the header says 32 images of 28x28 (25088 bytes) but the file has 25872 after the header" --eval
expect corrupt 1 "$t/corrupt/train-images-idx3-ubyte.gz: corrupt gzip data (zlib: invalid block type)"
expect cut 1 "$t/cut/t10k-images-idx3-ubyte.gz: truncated: the header says 32 images of 28x28" --eval
expect dir 1 "$t/dir/train-images-idx3-ubyte: is a directory, not a regular file"
expect fifo 2 "$t/fifo/t10k-labels-idx1-ubyte: is a FIFO (named pipe), not a regular file" --eval
[ $fails -eq 0 ] && echo "all crafted data files rejected" || exit 1
