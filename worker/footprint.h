/* ringtrain worker: the memory one rank of a run will take, estimated from
 * the flags before anything large is allocated, and the refusal (with the
 * figure and a batch that fits) when the host cannot give it. Without it a
 * batch that cannot fit fills memory until the OOM killer ends the job with
 * no word said.
 *
 * What counts (host memory, per rank): the model's arenas (parameters,
 * gradients, momentum, batch-norm state, activations, activation gradients,
 * the convolution workspace, the softmax output) when they live on the host;
 * the data set (synthetic: the global batch, as floats, on every rank;
 * Fashion-MNIST: its files' images and labels); the sampler's permutation
 * and staging batch; --eval's staging batch; a checkpoint read whole on
 * resume; the timeline's event buffer; and a fixed allowance for what the
 * runtime allocates later (kernels' thread buffers, MPI). Memory already
 * resident (the program, MPI's segments) is not counted: MemAvailable and
 * the cgroup's usage already exclude it. */
#ifndef RINGTRAIN_WORKER_FOOTPRINT_H
#define RINGTRAIN_WORKER_FOOTPRINT_H

#include <stddef.h>

#include "model.h"
#include "worker.h"

/* Runtime allocations after start-up that no table here lists. */
#define FOOTPRINT_RUNTIME_BYTES ((size_t)64 << 20)

typedef struct {
    size_t model;  /* arenas on the host (0 for a device model) */
    size_t data;   /* data set, sampler, --eval staging */
    size_t other;  /* checkpoint read on resume, timeline, runtime allowance */
    size_t total;
} footprint_t;

/* The estimate for o at `batch` per rank with `ranks` data ranks, the
 * model's arenas made by `ops` (a device model's arenas do not count). */
int footprint_estimate(const worker_options_t *o, const model_ops_t *ops, int ranks, int batch,
                       footprint_t *f);

/* 0 when `local_ranks` ranks on this host fit in what it has available
 * (or when that cannot be read); else RT_EINVAL with one line in err: the
 * figure, what the host has, and a --batch_size that fits. */
int footprint_check(const worker_options_t *o, const model_ops_t *ops, int ranks,
                    int local_ranks, char *err, size_t err_bytes);

#endif
