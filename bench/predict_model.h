/* bench: the performance model behind ringtrain-predict.
 *
 * An alpha-beta model of data-parallel training with bucketed gradient
 * allreduce overlapped with backward:
 *
 *   step = forward + max(backward, end of the last bucket's allreduce)
 *          + optimizer
 *
 * where bucket k (the worker's plan: closes at layer boundaries, first at
 * ~1 MiB, then at --bucket-mb) becomes ready when backward has passed its
 * last layer, and the progress thread runs buckets one after another:
 *   start_k = max(ready_k, end_{k-1})     (overlap on)
 *   start_k = max(backward, end_{k-1})    (overlap off)
 *   end_k   = start_k + allreduce(bytes_k)
 *
 * Pure functions of numbers (no MPI, no timing) so the tests can check them
 * against hand-computed values; the model-zoo parts read a built model_t.
 */
#ifndef RINGTRAIN_BENCH_PREDICT_MODEL_H
#define RINGTRAIN_BENCH_PREDICT_MODEL_H

#include <stddef.h>

#include "worker/model.h"

/* One link: alpha = latency per message (s), beta = seconds per byte. */
typedef struct {
    double alpha;
    double beta;
} predict_link_t;

/* Flat ring allreduce of `bytes` over `ranks` whose slowest link is `link`:
 * 2(p-1) steps, each moving bytes/p:  2(p-1) alpha + 2(p-1)/p bytes beta.
 * 0 for one rank or no bytes. */
double predict_ring_seconds(double bytes, int ranks, predict_link_t link);

/* Hierarchical allreduce over `nodes` x `per_node` ranks: intra-node
 * reduce-scatter ((g-1) alpha_i + (g-1)/g n beta_i), one inter-node ring per
 * slice of n/g bytes, all g rings sharing the node's link (so the link
 * carries 2(N-1)/N n bytes: 2(N-1) alpha_e + 2(N-1)/N n beta_e), intra-node
 * allgather (same as the reduce-scatter). With one node it is the intra
 * ring; with one rank per node the inter ring. */
double predict_hier_seconds(double bytes, int nodes, int per_node,
                            predict_link_t intra, predict_link_t inter);

/* The progress thread's schedule: buckets in order, each starting when it
 * is ready (overlap) or after the whole backward (no overlap) and after the
 * previous one. ready[k] are seconds from the start of backward, comm[k]
 * each bucket's allreduce time. Returns max(backward, last end): the time
 * from the start of backward to all gradients averaged. */
double predict_schedule(const double *ready, const double *comm, int buckets,
                        double backward, int overlap);

#define PREDICT_MAX_BUCKETS MODEL_MAX_BUCKETS

/* The worker's bucket plan (model_buckets_plan in worker/model.c: closes at node
 * boundaries in backward order, the first at ~1 MiB, the rest at
 * ~bucket_mb). Fills floats[k] (bucket size in floats of the grads arena)
 * and node[k] (the node whose backward completes it). Returns the count. */
int predict_buckets_plan(const model_t *m, double bucket_mb, size_t *floats,
                         int *node);

/* Multiply-add FLOPs of one node's forward for the built batch, counting
 * elementwise nodes (batch norm, relu, pooling, add) at a few FLOPs per
 * element so their share of the time is not zero. Backward is taken as
 * twice this (input and weight gradients). */
double predict_node_flops(const model_t *m, int node);

#endif
