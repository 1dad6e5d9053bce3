#!/usr/bin/env bash
# Parameter-server mode: the same parameters as allreduce after 5 steps of
# mlp (within 1e-4 relative; 2 workers either way), with one server last and
# with two servers around the workers; a bad RINGTRAIN_PS_RANKS is an error
# on every rank (exit 2) naming the problem.
set -uo pipefail
worker=$1
compare="$(dirname "$0")/../tools/compare_params.py"
tmp=$(mktemp -d /tmp/ringtrain-ps.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
args=(--model=mlp --batch_size=16 --num_batches=5 --num_warmup_batches=0
      --num_intra_threads=1 --bind=none --learning_rate=0.05 --weight_decay=0.0001)
fail() { echo "FAIL: $*"; cat "$tmp/log"; exit 1; }
run() { # np ps-list out extra...
    local np=$1 list=$2 out=$3; shift 3
    RINGTRAIN_PS_RANKS=$list timeout 120 mpirun -np "$np" --oversubscribe -x RINGTRAIN_PS_RANKS \
        "$worker" "${args[@]}" --dump_params="$out" "$@" >"$tmp/log" 2>&1
}
run 2 "" "$tmp/allreduce.bin" || fail "allreduce run"
run 3 2 "$tmp/ps1.bin" --variable_update=parameter_server || fail "1 server"
grep -q "Variables:   parameter_server (1 server(s), 2 worker(s))" "$tmp/log" || fail "header"
python3 "$compare" "$tmp/ps1.bin" "$tmp/allreduce.bin" --max-rel 1e-4 || fail "1 server differs"
run 4 0,3 "$tmp/ps2.bin" --variable_update=parameter_server || fail "2 servers"
python3 "$compare" "$tmp/ps2.bin" "$tmp/allreduce.bin" --max-rel 1e-4 || fail "2 servers differ"
# The comparison can fail: one step fewer differs.
run 3 2 "$tmp/short.bin" --variable_update=parameter_server --num_batches=4 || fail "short run"
python3 "$compare" "$tmp/short.bin" "$tmp/allreduce.bin" --min-rel 1e-3 || fail "4 steps matched 5"
echo "ok: parameter_server matches allreduce (1 and 2 servers)"

bad() { # list needle
    run 3 "$1" "$tmp/x.bin" --variable_update=parameter_server
    local rc=$?
    [ $rc = 2 ] && grep -q -- "$2" "$tmp/log" || fail "RINGTRAIN_PS_RANKS='$1': exit $rc, wanted 2 and '$2'"
    echo "ok: RINGTRAIN_PS_RANKS='$1' -> exit 2: $(grep -o 'error: .*' "$tmp/log" | head -1)"
}
bad "" "needs RINGTRAIN_PS_RANKS"
bad "7" "'7' is not a rank of this 3-rank job"
bad "1,1" "rank 1 listed twice"
bad "0,1,2" "lists every rank"
bad "1,x" "'x' is not a rank"
