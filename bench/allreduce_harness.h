/* bench: the nccl-tests-style harness behind ringtrain-allreduce-bench.
 *
 * --device cuda (implied by --algo nccl) puts the buffers on each rank's GPU
 * (by local rank) and the communicator in CUDA mode; fill and check then go
 * through a host copy, untimed.
 *
 * The harness owns the flags, buffers, warm-up, timing, the cross-rank
 * maximum of times, the untimed correctness check, the fixed table and the
 * exit status; a benchmark file only fills in bench_test_t. Every collective
 * goes through collectives/ (the harness never calls MPI itself).
 */
#ifndef RINGTRAIN_BENCH_ALLREDUCE_HARNESS_H
#define RINGTRAIN_BENCH_ALLREDUCE_HARNESS_H

#include <stddef.h>

#include "collectives.h"

typedef struct {
    size_t min_bytes, max_bytes;
    size_t step_factor; /* 0: use step_bytes */
    size_t step_bytes;
    long iters, warmup;
    int check;
    coll_dtype_t dtype;
    coll_op_t op;
    const char *algo; /* NULL: RINGTRAIN_ALLREDUCE or automatic */
    int peer;         /* also time the mpi baseline in the same process */
    coll_compression_t compression; /* ours only; the peer never compresses */
    int cuda;         /* buffers on this rank's GPU (collectives' CUDA mode) */
} bench_opts_t;

typedef struct {
    const char *name;
    /* Fill buf (count elements of opts->dtype) with rank's check input:
     * small integers, so the exact sum does not depend on the order. */
    void (*fill)(const bench_opts_t *opts, int rank, void *buf, size_t count);
    /* Number of elements of recv that differ from the expected result
     * (beyond the stated tolerance). */
    size_t (*check)(const bench_opts_t *opts, int nranks, const void *recv,
                    size_t count);
    /* busbw = algbw * bus_factor(nranks) */
    double (*bus_factor)(int nranks);
} bench_test_t;

/* Runs the benchmark; returns the process exit status (0 ok, 1 failure or
 * wrong results, 2 bad input). MPI must be initialised. */
int bench_main(int argc, char **argv, const char *prog, const bench_test_t *test);

#endif
