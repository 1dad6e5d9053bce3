/* collectives internal, CUDA mode: what coll_comm_attach_cuda() adds to a
 * communicator, shared by cuda.c (attach, ordering, host staging, waiting)
 * and nccl.c (the NCCL backend). Built only with CUDA; C, on the CUDA
 * runtime's C API (the gpu-emu tests compile it against tests/gpu/emu). */
#ifndef RINGTRAIN_COLLECTIVES_CUDA_H
#define RINGTRAIN_COLLECTIVES_CUDA_H

#include <stdatomic.h>

#include <cuda_runtime_api.h>

#include "coll_internal.h"

/* Ready events in rotation. A start re-records slot k % COLL__CUDA_EVENTS;
 * if the request that last used the slot has not been run yet, it then
 * waits for a later point of the compute stream than it needed: later, never
 * wrong (the compute stream never waits for ours, so this cannot deadlock). */
#define COLL__CUDA_EVENTS 64

typedef struct coll__cuda {
    int device;
    cudaStream_t compute;   /* the caller's stream (NULL: legacy default) */
    cudaStream_t stream;    /* ours: NCCL kernels and staging copies */
    cudaEvent_t ready[COLL__CUDA_EVENTS]; /* recorded on compute at start */
    cudaEvent_t finished[COLL__CUDA_EVENTS]; /* on stream after slot k's NCCL */
    cudaEvent_t done;       /* recorded on stream after each step */
    atomic_uint next_event; /* next ready slot */
    void *host;             /* pinned staging buffer (host backend) */
    size_t host_bytes;
    void *nccl;             /* ncclComm_t (nccl.c), NULL without */
    /* Stream-ordered completion (coll_comm_cuda_set_stream_ordered): the
     * NCCL allreduces queued but not yet seen finished, oldest first (a
     * ring of slots and the times they were queued). Owner thread only. */
    int ordered;
    int pending_slot[COLL__CUDA_EVENTS];
    double pending_t0[COLL__CUDA_EVENTS];
    int pending_head, pending_count;
} coll__cuda_t;

/* "[host:rank] file:line call: <cudaGetErrorString>"; returns RT_ECUDA. */
int coll__cuda_fail(const char *file, int line, const char *call,
                    cudaError_t err);
#define COLL__CUDA_CHECK(call)                                                 \
    do {                                                                       \
        cudaError_t coll__e_ = (call);                                         \
        if (coll__e_ != cudaSuccess)                                           \
            return coll__cuda_fail(__FILE__, __LINE__, #call, coll__e_);       \
    } while (0)

/* Polls until `event` has completed on the device. With NCCL it polls the
 * communicator's asynchronous errors too; after an error, or stall_timeout
 * seconds, it reports (naming `what`), aborts the NCCL communicator and
 * returns RT_ENCCL / RT_ECUDA / RT_ETIMEDOUT. */
int coll__cuda_wait(coll_comm_t *comm, cudaEvent_t event, const char *what);
/* Pause between polls: spin first (latency), then yield, then sleep, so a
 * long wait neither holds a core nor contends with the compute thread's
 * launches. */
void coll__cuda_backoff(unsigned long iteration);

/* nccl.c (stubs returning RT_ENOTSUP in builds without NCCL). */
/* Collective: unique id from rank 0 (broadcast over MPI), non-blocking
 * ncclCommInitRankConfig, polled until ready. */
int coll__nccl_init(coll_comm_t *comm);
/* Queues ncclAllReduce on comm->cuda->stream (after its wait for the ready
 * event) and polls the communicator until the call is on the stream; the
 * caller records what follows it and waits (or not). */
int coll__nccl_allreduce(coll_comm_t *comm, const void *sendbuf,
                         void *recvbuf, size_t count, coll_dtype_t dtype,
                         coll_op_t op);
/* 0, or (after reporting and aborting) RT_ENCCL when the communicator has
 * an asynchronous error. */
int coll__nccl_poll(coll_comm_t *comm);
/* ncclCommAbort: frees the communicator and stops its kernels. */
void coll__nccl_abort(coll_comm_t *comm);
/* Collective (on each host): finalize and destroy, or abort when broken. */
void coll__nccl_destroy(coll_comm_t *comm);

#endif
