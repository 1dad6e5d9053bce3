#!/usr/bin/env bash
# The worker tells the collectives how many threads each rank computes with
# (--num_intra_threads; 0 = its share of the cores). Where the host's ranks
# times that fill its CPUs, waits for a peer yield after a short spin, and
# the header says so; where a core is left over, they spin as usual.
set -uo pipefail
worker=$1
tmp=$(mktemp -d /tmp/ringtrain-busy.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
# Runs in a command substitution, where `exit` would leave only the
# subshell: it returns non-zero instead, and expect() fails the test on it.
header() { # np threads -> the Variables line; fails with the log
    mpirun -np "$1" --oversubscribe "$worker" --model=trivial --batch_size=4 --num_batches=1 \
        --num_warmup_batches=0 --num_intra_threads="$2" --bind=none >"$tmp/log" 2>&1 ||
        { cat "$tmp/log"; echo "worker failed (np $1, $2 threads)"; return 1; }
    grep -m1 '^Variables:' "$tmp/log" || { cat "$tmp/log"; echo "no Variables line (np $1, $2 threads)"; return 1; }
}
expect() { # np threads yes|no
    local line
    if ! line=$(header "$1" "$2"); then
        echo "$line"
        fail=1
        return
    fi
    if [[ "$line" == *"no spare core: waits yield"* ]]; then got=yes; else got=no; fi
    echo "np $1, $2 thread(s) on $cpus CPU(s): $line"
    [ "$got" = "$3" ] || { echo "  expected waits to yield: $3"; fail=1; }
}
cpus=$(nproc)
expect 2 0 yes                   # every core of each rank's share
expect 1 "$cpus" yes             # one rank's threads fill the CPUs
if [ "$cpus" -ge 2 ]; then
    expect 1 1 no                # a core left over
    expect 2 $(( (cpus - 1) / 2 > 0 ? (cpus - 1) / 2 : 1 )) "$([ "$cpus" -ge 3 ] && echo no || echo yes)"
else
    echo "one CPU: the 'core left over' case cannot be made here"
fi
exit $fail
