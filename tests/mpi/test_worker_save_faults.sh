#!/usr/bin/env bash
# What the worker writes (checkpoints, --timeline, --dump_params):
#  - a path that cannot be written is refused before step 1, on every rank,
#    with errno's text: exit 2 (a regular file where the checkpoint directory
#    should be, a path under a file, an immutable or read-only directory, a
#    directory where the timeline should be, a missing directory);
#  - a write that fails later (file too large, disk full) ends every rank
#    with exit 1 within seconds: no rank is left spinning;
#  - symlinks planted at the old predictable temporary names and at the
#    destinations are never followed: their target is unchanged.
# The tests run as root, who ignores permission bits, so unwritable places
# are made with what stops root too: chattr +i, a read-only or full tmpfs
# (skipped where mounting is not allowed) and RLIMIT_FSIZE (ulimit -f) on
# rank 0 only.
set -uo pipefail
worker=$1
tmp=$(mktemp -d /tmp/ringtrain-savefaults.XXXXXX)
mounts=()
cleanup() {
    local pids
    pids=$(pgrep -f "$tmp/ringtrain-worker")
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null
    for m in "${mounts[@]}"; do umount "$m" 2>/dev/null; done
    chattr -i "$tmp/immutable" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
# A private copy of the worker, so ranks left behind can be found by path.
cp "$worker" "$tmp/ringtrain-worker"
args=(--model=mlp --batch_size=16 --num_warmup_batches=0 --num_intra_threads=1 --bind=none)
fails=0
bad() { echo "FAIL: $*"; sed 's/^/    /' "$tmp/out"; fails=$((fails + 1)); }

# Rank 0 runs with files capped at $1 KiB. The worker itself ignores
# SIGXFSZ, so the write fails with EFBIG instead of killing the rank.
cat >"$tmp/rank0-fsize" <<'EOF'
#!/usr/bin/env bash
kib=$1; shift
[ "${OMPI_COMM_WORLD_RANK:-0}" != 0 ] || ulimit -f "$kib"
exec "$@"
EOF
chmod +x "$tmp/rank0-fsize"

# job EXIT NEEDLE NP [wrapper...] -- worker-args...: the job ends with EXIT,
# its output has a line matching NEEDLE (grep's basic regex), and no rank is
# left running.
job() {
    local want=$1 needle=$2 np=$3; shift 3
    local wrap=()
    while [ "$1" != "--" ]; do wrap+=("$1"); shift; done
    shift
    local t0=$SECONDS
    timeout 60 mpirun -np "$np" --oversubscribe "${wrap[@]}" "$tmp/ringtrain-worker" \
        "${args[@]}" "$@" >"$tmp/out" 2>&1
    local rc=$? t=$((SECONDS - t0))
    sleep 0.5
    local left
    left=$(pgrep -f "$tmp/ringtrain-worker" | xargs -r ps -o pid=,stat= -p |
           awk '$2 !~ /^Z/ { printf "%s ", $1 }')
    if [ $rc -ne "$want" ] || ! grep -q -- "$needle" "$tmp/out" || [ -n "$left" ]; then
        bad "np=$np $* -> exit $rc after ${t}s (wanted $want and '$needle'); ranks left: ${left:-none}"
        return 1
    fi
    echo "ok: np=$np ${*: -1} -> exit $rc after ${t}s: $(grep -- "$needle" "$tmp/out" | head -1)"
}
# Refused before step 1: nothing was trained (a long run would time out).
before_step1() { # needle np args...
    local needle=$1 np=$2; shift 2
    job 2 "$needle" "$np" -- --num_batches=100000 "$@" || return
    ! grep -q "Running warm up" "$tmp/out" || bad "$* -> refused only after training started"
}

: >"$tmp/file"
before_step1 "--checkpoint_dir=$tmp/file: is a regular file, not a directory" 2 \
    --checkpoint_dir="$tmp/file"
before_step1 "--checkpoint_dir=$tmp/file/ck: cannot create the directory: Not a directory" 3 \
    --checkpoint_dir="$tmp/file/ck"
mkdir "$tmp/immutable"
if chattr +i "$tmp/immutable" 2>/dev/null; then
    before_step1 "--checkpoint_dir=$tmp/immutable: .*Operation not permitted" 2 \
        --checkpoint_dir="$tmp/immutable"
    chattr -i "$tmp/immutable"
else
    echo "skip: chattr +i does not work on $tmp"
fi
mkdir "$tmp/ro"
if mount -t tmpfs -o ro,size=1m ringtrain-test "$tmp/ro" 2>/dev/null; then
    mounts+=("$tmp/ro")
    before_step1 "--checkpoint_dir=$tmp/ro: .*Read-only file system" 2 --checkpoint_dir="$tmp/ro"
else
    echo "skip: cannot mount a tmpfs here (read-only directory)"
fi
before_step1 "--timeline: $tmp: is a directory" 2 --timeline="$tmp"
before_step1 "--timeline: $tmp/none/t.json: .*No such file or directory" 2 \
    --timeline="$tmp/none/t.json"
before_step1 "--dump_params: $tmp/file/p.bin: .*Not a directory" 2 --dump_params="$tmp/file/p.bin"

# A checkpoint directory the worker creates is 0700.
job 1 "--checkpoint_dir=$tmp/ck1: .*File too large" 2 "$tmp/rank0-fsize" 1024 -- \
    --num_batches=3 --checkpoint_dir="$tmp/ck1"
[ "$(stat -c %a "$tmp/ck1" 2>/dev/null)" = 700 ] ||
    bad "the created checkpoint directory is mode $(stat -c %a "$tmp/ck1" 2>&1), not 700"
[ -z "$(ls -A "$tmp/ck1" 2>/dev/null)" ] || bad "the failed save left files: $(ls -A "$tmp/ck1")"
if job 1 "--checkpoint_dir=$tmp/ck2: .*File too large" 3 "$tmp/rank0-fsize" 1024 -- \
    --num_batches=20 --checkpoint_every=2 --checkpoint_dir="$tmp/ck2"; then
    ! grep -q "total images/sec" "$tmp/out" || bad "periodic checkpoint: the run went on after the failed save"
fi
mkdir "$tmp/full"
if mount -t tmpfs -o size=2m ringtrain-test "$tmp/full" 2>/dev/null; then
    mounts+=("$tmp/full")
    job 1 "--checkpoint_dir=$tmp/full: .*No space left on device" 2 -- --num_batches=3 \
        --checkpoint_dir="$tmp/full"
else
    echo "skip: cannot mount a tmpfs here (full disk)"
fi
job 1 "--timeline: $tmp/t.json: .*File too large" 2 "$tmp/rank0-fsize" 4 -- --num_batches=3 \
    --timeline="$tmp/t.json"
job 1 "--dump_params: $tmp/p.bin: .*File too large" 3 "$tmp/rank0-fsize" 1024 -- \
    --num_batches=3 --dump_params="$tmp/p.bin"

# Symlinks at the names the old writers used (NAME.tmp.<pid>; rank 0 plants
# them for its own pid, which exec keeps) and at the destinations.
echo "precious" >"$tmp/victim"
mkdir -m 0777 "$tmp/ck3"
cat >"$tmp/plant" <<EOF
#!/usr/bin/env bash
if [ "\${OMPI_COMM_WORLD_RANK:-0}" = 0 ]; then
    for s in 2 4; do
        ln -s "$tmp/victim" "$tmp/ck3/.ckpt-00000000000\$s.rtck.tmp.\$\$"
    done
    ln -s "$tmp/victim" "$tmp/t.json.tmp.\$\$"
    ln -s "$tmp/victim" "$tmp/p.bin.tmp.\$\$"
fi
exec "\$@"
EOF
chmod +x "$tmp/plant"
ln -sf "$tmp/victim" "$tmp/ck3/ckpt-000000000004.rtck"
ln -sf "$tmp/victim" "$tmp/t.json"
ln -sf "$tmp/victim" "$tmp/p.bin"
before=$fails
if job 0 "total images/sec" 2 "$tmp/plant" -- --num_batches=4 --checkpoint_every=2 \
    --checkpoint_dir="$tmp/ck3" --timeline="$tmp/t.json" --dump_params="$tmp/p.bin"; then
    [ "$(head -c 100 "$tmp/victim" | tr -d '\0')" = precious ] ||
        bad "a planted symlink was followed: the victim now holds $(wc -c <"$tmp/victim") bytes"
    for f in "$tmp/ck3/ckpt-000000000004.rtck" "$tmp/t.json" "$tmp/p.bin"; do
        [ -f "$f" ] && [ ! -L "$f" ] || bad "$f is not a regular file after the run"
    done
    [ "$(stat -c %a "$tmp/ck3/ckpt-000000000004.rtck")" = 600 ] ||
        bad "checkpoint mode $(stat -c %a "$tmp/ck3/ckpt-000000000004.rtck"), not 600"
    grep -q "warning: .*$tmp/ck3 is writable by group or others" "$tmp/out" ||
        bad "no warning about the world-writable checkpoint directory"
    [ $fails -ne $before ] || echo "ok: planted symlinks not followed; checkpoint mode 600"
fi
[ $fails -eq 0 ] && echo "all save-fault checks passed" || exit 1
