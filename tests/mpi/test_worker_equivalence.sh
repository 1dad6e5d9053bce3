#!/usr/bin/env bash
# Data-parallel equivalence: 2 ranks x batch 16 == 1 rank x batch 32 after 5
# steps (mlp and lenet: no batch norm), same initial parameters and data.
# Also checks the comparison can fail: 4 steps vs 5 steps must differ.
# --variable_update=independent exchanges no gradients: rank 0 of 2 x batch
# 16 ends exactly where 1 rank x batch 16 does (same first shard of the
# data), and away from the 2-rank allreduce run.
# On one host the selector always takes shared memory (shm_oneshot), so mlp
# runs again at 3 x batch 10 and 5 x batch 6 against 1 x batch 30 with each
# cross-rank algorithm forced: ring, rd (neither a power of two) and hier, for
# which RINGTRAIN_HOST_SPLIT=2 makes the ranks two fake hosts (2+1 and 3+2
# ranks: ranks beyond the smallest host's count sit out the inter-host phase).
set -euo pipefail
worker=$1
compare="$(dirname "$0")/../tools/compare_params.py"
tmp=$(mktemp -d /tmp/ringtrain-equiv.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
run() { # np batch steps out [flags]
    mpirun -np "$1" --oversubscribe "$worker" --model="$model" --batch_size="$2" "${@:5}" \
        --num_batches="$3" --num_warmup_batches=0 --display_every=1 \
        --learning_rate=0.05 --weight_decay=0.0001 --num_intra_threads=1 \
        --bind=none --dump_params="$4" >"$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }
}
for model in mlp lenet; do
    run 1 32 5 "$tmp/one.bin"
    run 2 16 5 "$tmp/two.bin"
    run 1 32 4 "$tmp/four.bin"
    echo "$model: 2x16 vs 1x32 after 5 steps"
    python3 "$compare" "$tmp/two.bin" "$tmp/one.bin" --max-rel 1e-4
    echo "$model: 4 steps vs 5 steps (must differ)"
    python3 "$compare" "$tmp/four.bin" "$tmp/one.bin" --min-rel 1e-3
    run 1 16 5 "$tmp/one16.bin"
    run 2 16 5 "$tmp/indep.bin" --variable_update=independent
    grep -q "^Variables:   independent" "$tmp/log" || { cat "$tmp/log"; exit 1; }
    echo "$model: independent rank 0 of 2x16 vs 1x16 (no gradient exchange)"
    python3 "$compare" "$tmp/indep.bin" "$tmp/one16.bin" --max-rel 1e-6
    echo "$model: independent 2x16 vs allreduce 2x16 (must differ)"
    python3 "$compare" "$tmp/indep.bin" "$tmp/two.bin" --min-rel 1e-3
done

model=mlp
run 1 30 5 "$tmp/one30.bin"
for algo in ring rd hier; do
    for np in 3 5; do
        split=
        [ "$algo" = hier ] && split=2
        RINGTRAIN_HOST_SPLIT=$split run "$np" $((30 / np)) 5 "$tmp/$algo$np.bin" --allreduce="$algo"
        hosts=1
        [ -n "$split" ] && hosts=2
        grep -q "^Ranks: *$np on $hosts host(s)" "$tmp/log" &&
            grep -q "^Variables:   allreduce (.*, $algo)\$" "$tmp/log" ||
            { cat "$tmp/log"; echo "$model: $np ranks did not run $algo on $hosts host(s)"; exit 1; }
        echo "$model: ${np}x$((30 / np)) ($algo on $hosts host(s)) vs 1x30 after 5 steps"
        python3 "$compare" "$tmp/$algo$np.bin" "$tmp/one30.bin" --max-rel 1e-4
    done
done
