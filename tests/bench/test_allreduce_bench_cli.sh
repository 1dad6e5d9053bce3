#!/usr/bin/env bash
# ringtrain-allreduce-bench as a program: bad input is a usage error (exit 2,
# one line naming the flag, on rank 0 only), never a hang; a small valid run
# prints the nccl-tests table with no wrong element and the peer table.
set -uo pipefail
bench=$1
tmp=$(mktemp -d /tmp/ringtrain-benchcli.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
bad() { # needle args...
    local needle=$1; shift
    timeout 60 mpirun -np 2 --oversubscribe "$bench" "$@" >"$tmp/out" 2>&1
    local rc=$? errors
    errors=$(grep -c "ringtrain-allreduce-bench: error:" "$tmp/out")
    if [ $rc -ne 2 ] || ! grep -qF -- "$needle" "$tmp/out" || [ "$errors" -ne 1 ]; then
        echo "FAIL: $* -> exit $rc, $errors error line(s), wanted 2, one line with '$needle':"
        cat "$tmp/out"
        fails=$((fails + 1))
    else
        echo "ok: $* -> exit 2: $(grep -F -- "$needle" "$tmp/out")"
    fi
}
bad "-b 1048576 is larger than -e 4096" -b 1M -e 4K
bad "-d int8: unknown data type" -d int8
bad "--algo foo: unknown algorithm" --algo foo
bad "unknown option --bogus" --bogus
bad "--compression fp8: use none, fp16 or bf16" --compression fp8
bad "--device tpu: use cpu or cuda" --device tpu

timeout 120 mpirun -np 2 --oversubscribe "$bench" -b 4 -e 64K -f 16 -n 3 -w 1 >"$tmp/out" 2>&1
rc=$?
rows=$(awk '!/^#/ && NF >= 13 && $0 !~ /Peer/ { n++; if ($9 != 0 || $13 != 0) bad++ } END { print n + 0, bad + 0 }' "$tmp/out")
if [ $rc -ne 0 ] || [ "$rows" != "4 0" ] || ! grep -q "^# Peer comparison" "$tmp/out"; then
    echo "FAIL: valid run: exit $rc, rows/wrong '$rows' (wanted '4 0': 4, 64, 1K, 16K), peer table?"
    cat "$tmp/out"
    fails=$((fails + 1))
else
    echo "ok: -b 4 -e 64K -f 16: 4 sizes, no wrong element, peer table"
fi
[ $fails -eq 0 ] || exit 1
