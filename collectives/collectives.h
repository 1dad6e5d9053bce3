/* ringtrain collectives: gradient allreduce for data-parallel training.
 *
 * A communicator wraps an MPI communicator (CPU buffers). After
 * coll_comm_create() every MPI call of the process is made by the
 * communicator's progress thread (the process must be initialised with
 * MPI_Init_thread(..., MPI_THREAD_SERIALIZED or higher)); compute threads
 * only queue work and wait. One exception keeps small collectives cheap: a
 * blocking call whose algorithm needs no MPI (shared memory, copy) and that
 * finds nothing queued or running runs on the calling thread, since a
 * hand-off costs more than the collective. Programs never call MPI
 * themselves.
 * Collectives run in the order they were started, which must be the same on
 * every rank.
 *
 * Buffers are persistent: the first call of a given size may allocate,
 * later calls do not. Algorithms (ring, rd, shm, copy, mpi, ...) are chosen
 * per call by bytes, ranks and topology, or forced by name through
 * coll_config_t.algorithm or the RINGTRAIN_ALLREDUCE environment variable.
 *
 * GPU buffers: coll_comm_attach_cuda() switches a communicator's allreduces
 * to device memory (NCCL, or staging through pinned host memory).
 */
#ifndef RINGTRAIN_COLLECTIVES_H
#define RINGTRAIN_COLLECTIVES_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <mpi.h>

typedef enum {
    COLL_F32 = 0,  /* float */
    COLL_F16 = 1,  /* IEEE binary16, accumulated in fp32 */
    COLL_BF16 = 2, /* bfloat16, accumulated in fp32 */
    COLL_DTYPE_COUNT
} coll_dtype_t;

typedef enum {
    COLL_SUM = 0,
    COLL_AVG = 1, /* sum, then one scale by 1/ranks */
    COLL_OP_COUNT
} coll_op_t;

/* Pass as sendbuf for an in-place allreduce (recvbuf holds the input). Passing
 * sendbuf == recvbuf is in-place as well. */
#define COLL_IN_PLACE ((const void *)1)

typedef struct coll_comm coll_comm_t;

/* Wire compression for fp32 allreduces (coll_config_t.compression): what
 * travels between ranks in the ring, and between hosts in the hierarchical
 * allreduce, is fp16 or bf16; every addition is done in fp32. Each element
 * is rounded once per hop to the wire type, so the result differs from the
 * fp32 sum by at most about ranks * u * sum_r |x_r| (u = 2^-11 for fp16,
 * 2^-8 for bf16; hier: hosts instead of ranks); fp16 also overflows to
 * +-inf beyond 65504 and below 6.1e-5 errs by up to 2^-25 absolute per hop.
 * Every rank still gets bitwise the same result.
 * Applies to the ring and hier algorithms on fp32 data only; the others
 * (rd for small vectors, shm, copy, mpi) and fp16/bf16 data run as without
 * it. See collectives/README.md. */
typedef enum {
    COLL_COMPRESS_NONE = 0,
    COLL_COMPRESS_FP16 = 1,
    COLL_COMPRESS_BF16 = 2,
    COLL_COMPRESS_COUNT
} coll_compression_t;

/* "none", "fp16", "bf16" ("unknown" otherwise). */
const char *coll_compression_name(coll_compression_t compression);
/* Parses "none", "fp16" or "bf16" (a --compression flag); returns 0 or
 * RT_EINVAL (out untouched). */
int coll_compression_parse(const char *text, coll_compression_t *out);

typedef struct {
    /* Algorithm name to force for every allreduce ("auto" or NULL: choose per
     * call; the RINGTRAIN_ALLREDUCE environment variable overrides NULL). */
    const char *algorithm;
    /* Ring pipeline segment in bytes (0: default). */
    size_t segment_bytes;
    /* Seconds a collective may wait for a peer before the communicator
     * reports which ranks are missing and fails with RT_ETIMEDOUT
     * (0: wait forever). */
    double stall_timeout;
    /* Benchmarks only: let a blocking call on an idle communicator make its
     * MPI calls on the calling thread too, as a plain MPI_Allreduce caller
     * does, so a baseline is measured without the hand-off (0: never). */
    int caller_runs_mpi;
    /* Wire compression of fp32 allreduces (default COLL_COMPRESS_NONE); must
     * be the same on every rank (checked at creation: RT_EMISMATCH). */
    coll_compression_t compression;
    /* Threads each rank computes with while collectives progress (0: none,
     * as in a benchmark; -1: its share of the host's CPUs). When the host's
     * ranks times this fill its CPUs, a wait for a peer spins only briefly
     * before yielding, as when oversubscribed: a spinning wait would take the
     * core from the rank's own backward pass. */
    int compute_threads;
} coll_config_t;

/* Fills cfg with defaults. */
void coll_config_init(coll_config_t *cfg);

/* Creates a communicator over mpi_comm (duplicated internally; the caller
 * keeps ownership of mpi_comm). Collective over mpi_comm. cfg may be NULL.
 * Returns 0 or RT_E...; RT_EINVAL names the unknown algorithm on stderr. */
int coll_comm_create(coll_comm_t **out, MPI_Comm mpi_comm,
                     const coll_config_t *cfg);
/* Stops the progress thread and frees everything. Accepts NULL. Must not be
 * called with collectives in flight. Collective (frees shared segments). */
void coll_comm_destroy(coll_comm_t *comm);

int coll_comm_rank(const coll_comm_t *comm);
int coll_comm_size(const coll_comm_t *comm);
/* Ranks on this host, this rank's index among them, number of hosts. */
int coll_comm_local_rank(const coll_comm_t *comm);
int coll_comm_local_size(const coll_comm_t *comm);
int coll_comm_host_count(const coll_comm_t *comm);
/* 1 when waits yield soon because the CPUs are full (more local ranks than
 * CPUs, or compute_threads fill them; see coll_config_t), else 0. */
int coll_comm_cores_busy(const coll_comm_t *comm);
/* The compression the communicator was created with. */
coll_compression_t coll_comm_compression(const coll_comm_t *comm);

/* Size in bytes of one element of dtype (0 for an unknown dtype). */
size_t coll_dtype_size(coll_dtype_t dtype);
const char *coll_dtype_name(coll_dtype_t dtype);
const char *coll_op_name(coll_op_t op);

/* Names of every algorithm, NULL-terminated ("auto" not included). */
const char *const *coll_algorithm_names(void);
/* The algorithm that would run for this call (for logs and timelines). */
const char *coll_algorithm_for(const coll_comm_t *comm, size_t count,
                               coll_dtype_t dtype);

/* An asynchronous operation. Caller-owned; must stay valid (not moved or
 * reused) until coll_wait() returned or coll_test() reported done. */
typedef struct coll_request {
    /* Internal: managed by the communicator. */
    struct coll_comm *comm;
    const void *sendbuf;
    void *recvbuf;
    size_t count;
    int dtype;
    int op;
    int algorithm;
    int kind;
    int root;
    int event;           /* CUDA mode: slot of the ready event */
    /* Set (release) by the thread that ran the request, after status and
     * the times; whoever sees it set (acquire) may read them. */
    atomic_int done;
    int status;          /* 0 or RT_E..., valid when done */
    struct coll_request *next;
    uint64_t seq;
    /* rt_now() when the progress thread began and finished it (timelines);
     * valid when done. */
    double t_begin, t_end;
} coll_request_t;

/* Allreduce: recvbuf[i] = op over ranks of sendbuf[i], i < count. count may be
 * 0 (buffers may then be NULL). Blocking. */
int coll_allreduce(coll_comm_t *comm, const void *sendbuf, void *recvbuf,
                   size_t count, coll_dtype_t dtype, coll_op_t op);

/* Asynchronous allreduce: queues the operation for the progress thread and
 * returns at once. The buffers must not be touched until it completes. */
int coll_allreduce_start(coll_comm_t *comm, const void *sendbuf, void *recvbuf,
                         size_t count, coll_dtype_t dtype, coll_op_t op,
                         coll_request_t *req);
/* *done = 1 when the request finished; returns its status then, else 0. */
int coll_test(coll_request_t *req, int *done);
/* Blocks until the request finished; returns its status. */
int coll_wait(coll_request_t *req);

/* Small helpers for programs (all blocking, all through the progress
 * thread, so programs need no MPI calls after init). */
int coll_barrier(coll_comm_t *comm);
/* Broadcast bytes from root to every rank (any size). */
int coll_broadcast(coll_comm_t *comm, void *buf, size_t bytes, int root);
/* values[count] of doubles: elementwise max / min / sum over ranks, in place. */
int coll_allreduce_f64_max(coll_comm_t *comm, double *values, size_t count);
int coll_allreduce_f64_min(coll_comm_t *comm, double *values, size_t count);
int coll_allreduce_f64_sum(coll_comm_t *comm, double *values, size_t count);
/* all[size] receives every rank's value (rank order). */
int coll_allgather_u64(coll_comm_t *comm, uint64_t value, uint64_t *all);

/* Point-to-point exchange (parameter-server mode): posts every receive and
 * every send, returns when all completed. Between two ranks, messages match
 * in the order each side lists them. Blocking (on the progress thread). */
typedef struct {
    void *buf;     /* sends read it, receives fill it */
    size_t bytes;  /* any size (chunked) */
    int peer;      /* another rank */
} coll_msg_t;
int coll_exchange(coll_comm_t *comm, const coll_msg_t *sends, int nsends,
                  const coll_msg_t *recvs, int nrecvs);

/* ---- GPU buffers -------------------------------------------------------------
 * coll_comm_attach_cuda() puts the communicator in CUDA mode: from then on
 * the buffers of coll_allreduce() and coll_allreduce_start() are device
 * pointers on `device`, and each allreduce is ordered after the work queued
 * on `stream` (the caller's compute stream, a cudaStream_t; NULL: the legacy
 * default stream) when it was started: the start records a CUDA event there
 * and the communication waits for it on the device, so a gradient bucket can
 * be handed over while later layers' backward is still queued. When
 * coll_wait() returns (or coll_test() reports done) the result is in device
 * memory, complete, and visible to any work queued afterwards on any stream.
 * The helpers (barrier, broadcast, f64, allgather) keep taking host memory.
 *
 * Backends:
 *   nccl  ncclAllReduce (ncclSum / ncclAvg; fp32, fp16, bf16) on a stream of
 *         the communicator's; the NCCL communicator is bootstrapped through
 *         MPI (ncclGetUniqueId on rank 0, broadcast). Its asynchronous errors
 *         are polled while a call waits, and on an error (or after
 *         stall_timeout) the NCCL communicator is aborted and the call fails
 *         with RT_ENCCL (RT_ETIMEDOUT): no rank is left spinning on a dead
 *         peer. Builds with NCCL only.
 *   host  each allreduce is copied into pinned host memory, reduced there by
 *         the CPU algorithms (chosen or forced as for host buffers), and
 *         copied back.
 * COLL_CUDA_AUTO takes nccl when the build has it, unless the forced
 * algorithm (coll_config_t.algorithm / RINGTRAIN_ALLREDUCE) names a CPU one
 * or RINGTRAIN_NCCL=0 is set; the algorithm name "nccl" requires nccl.
 *
 * Collective; call once, before any allreduce, with every rank's own device
 * (one GPU per rank: NCCL refuses two ranks on one device). Returns 0;
 * RT_ENOTSUP (this build has no CUDA, or no NCCL for COLL_CUDA_NCCL);
 * RT_EINVAL (bad argument, conflicting backend and algorithm); RT_EMISMATCH
 * (ranks chose different backends); RT_ECUDA or RT_ENCCL with the
 * library's message printed. After RT_ECUDA / RT_ENCCL other ranks may be
 * blocked inside NCCL's setup: a program should then abort the job
 * (coll_abort). */
typedef enum {
    COLL_CUDA_AUTO = 0, /* nccl when available, else host */
    COLL_CUDA_NCCL = 1, /* nccl or fail */
    COLL_CUDA_HOST = 2, /* host staging and the CPU algorithms */
} coll_cuda_backend_t;

int coll_comm_attach_cuda(coll_comm_t *comm, int device, void *stream,
                          coll_cuda_backend_t backend);
/* "nccl", "host", or "none" (not in CUDA mode). */
const char *coll_comm_cuda_backend(const coll_comm_t *comm);

/* Stream-ordered completion (NCCL backend; a no-op on the host backend, 0):
 * from now on an allreduce is done for coll_wait(), coll_test() and
 * coll_allreduce() as soon as ncclAllReduce is queued on the
 * communicator's stream, and seeing it done makes the compute stream (the
 * attach call's `stream`) wait for its completion on the device
 * (cudaStreamWaitEvent): work queued there afterwards sees the result, and
 * no host thread ever waits for a bucket. Buckets then run back to back on
 * the device, each starting when its backward has and the previous one
 * finished. The progress thread, when it has nothing to queue, polls the
 * queued ones (events, ncclCommGetAsyncError, stall_timeout); an error
 * aborts the NCCL communicator (its kernels end) and fails every later
 * collective (RT_ENCCL, RT_ETIMEDOUT). Host reads of a result must follow a
 * wait for the compute stream (as any copy on it does). Request times
 * (t_begin, t_end) then span the queuing, not the transfer. Call once
 * after coll_comm_attach_cuda and before any allreduce, on every rank or on
 * none. Returns 0, or RT_EINVAL (not in CUDA mode). */
int coll_comm_cuda_set_stream_ordered(coll_comm_t *comm, int on);

/* Fatal-error path for programs: aborts every rank of the job (MPI_Abort on
 * the communicator's MPI communicator). Safe to call from any thread. */
void coll_abort(coll_comm_t *comm, int exit_code);

#endif
