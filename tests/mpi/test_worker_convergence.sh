#!/usr/bin/env bash
# Convergence: lenet on Fashion-MNIST, 2 ranks x batch 32, SGD 0.01 with
# momentum 0.9, 2 epochs -> test accuracy >= 0.88 (PyTorch, same model and
# settings at batch 64: 0.871).
set -euo pipefail
worker=$1
out=$(mktemp /tmp/ringtrain-conv.XXXXXX)
trap 'rm -f "$out"' EXIT
mpirun -np 2 --oversubscribe "$worker" --model=lenet --data_name=fashion_mnist \
    --batch_size=32 --learning_rate=0.01 --momentum=0.9 --weight_decay=0 \
    --num_epochs=2 --num_warmup_batches=0 --display_every=500 --num_intra_threads=1 \
    --eval | tee "$out"
acc=$(sed -n 's/^Accuracy @ 1 = \([0-9.]*\).*/\1/p' "$out")
[ -n "$acc" ] || { echo "no accuracy line"; exit 1; }
python3 -c "import sys; a=float('$acc'); print('accuracy', a, '(need >= 0.88)'); sys.exit(0 if a >= 0.88 else 1)"
