/* collectives: CUDA mode (coll_comm_attach_cuda). Allreduce buffers are
 * device memory; each allreduce waits on the device for the compute-stream
 * point its start recorded, then runs on the communicator's own stream,
 * either as ncclAllReduce (nccl.c) or staged through pinned host memory:
 *
 *   host backend, one request (on the thread that owns the communicator):
 *     our stream: wait ready event; copy device -> pinned; record done
 *     host:       wait done; CPU algorithm in place on the pinned copy
 *     our stream: copy pinned -> device; record done; host waits for it
 *
 * Cost model (host backend): two copies of the vector over the host link
 * (pinned, so DMA at the link's rate) around the CPU algorithm, not
 * overlapped with each other or with the reduction; one pinned buffer,
 * grown to the largest vector seen and kept. It is the fallback for builds
 * without NCCL and the path the gpu-emu suite exercises across ranks, not a
 * fast path.
 *
 * A request runs to completion on the device before the next one starts
 * (the owner thread waits for it), so requests never overlap on our stream
 * and one staging buffer serves them all.
 *
 * Stream-ordered NCCL (coll_comm_cuda_set_stream_ordered), as llm.c orders
 * its gradient reduction:
 *
 *   compute stream:  ... bwd(bucket k) [ready k] ... bwd(k+1) [ready k+1] ...
 *   our stream:          wait ready k, ncclAllReduce k [finished k],
 *                        wait ready k+1, ncclAllReduce k+1 [finished k+1]
 *   caller at coll_wait(k): compute stream waits for finished k (device)
 *
 * The owner thread queues each request and returns at once (it waits on the
 * host only when COLL__CUDA_EVENTS requests are still unfinished, to reuse
 * a slot); the queued ones are watched from the progress thread's idle time
 * (coll__cuda_watch): finished events, NCCL's asynchronous error state and
 * stall_timeout, with the same abort as a waiting call. Cost: no host gap
 * between buckets; a failure is seen within the watch's poll interval
 * instead of at the wait.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coll_cuda.h"

int coll__cuda_fail(const char *file, int line, const char *call,
                    cudaError_t err)
{
    rt_log_error("%s:%d %s: %s", file, line, call, cudaGetErrorString(err));
    return RT_ECUDA;
}

/* A hundred polls cover a small allreduce; after that the poll rate
 * drops to tens of thousands a second, since each query enters the CUDA
 * driver, which the compute thread needs for its kernel launches. */
void coll__cuda_backoff(unsigned long iteration)
{
    if (iteration < 100)
        return;
    if (iteration < 1000) {
        sched_yield();
        return;
    }
    struct timespec ts = {0, 20000};
    nanosleep(&ts, NULL);
}

int coll__cuda_wait(coll_comm_t *c, cudaEvent_t event, const char *what)
{
    coll__cuda_t *cu = c->cuda;
    double start = rt_now();
    for (unsigned long it = 0;; it++) {
        cudaError_t e = cudaEventQuery(event);
        if (e == cudaSuccess)
            return 0;
        if (e != cudaErrorNotReady) {
            int rc = coll__cuda_fail(__FILE__, __LINE__, what, e);
            coll__nccl_abort(c);
            return rc;
        }
        if (cu->nccl) {
            int rc = coll__nccl_poll(c);
            if (rc)
                return rc;
        }
        if (c->stall_timeout > 0.0 && (it & 255) == 0 &&
            rt_now() - start > c->stall_timeout) {
            rt_log_error("collectives: rank %d waited %.1f s for %s on GPU %d "
                         "(a peer never joined, or the device is stuck); "
                         "giving up (stall_timeout)",
                         c->rank, rt_now() - start, what, cu->device);
            coll__nccl_abort(c);
            return RT_ETIMEDOUT;
        }
        coll__cuda_backoff(it);
    }
}

/* ---- attach ------------------------------------------------------------------ */

static void cuda_free(coll__cuda_t *cu)
{
    if (cu == NULL)
        return;
    (void)cudaSetDevice(cu->device);
    if (cu->stream)
        (void)cudaStreamSynchronize(cu->stream);
    for (int i = 0; i < COLL__CUDA_EVENTS; i++) {
        if (cu->ready[i])
            (void)cudaEventDestroy(cu->ready[i]);
        if (cu->finished[i])
            (void)cudaEventDestroy(cu->finished[i]);
    }
    if (cu->done)
        (void)cudaEventDestroy(cu->done);
    if (cu->stream)
        (void)cudaStreamDestroy(cu->stream);
    if (cu->host)
        (void)cudaFreeHost(cu->host);
    free(cu);
}

/* This rank's part: device, stream, events. */
static int cuda_setup(coll__cuda_t **out, int device, void *stream)
{
    *out = NULL;
    int count = 0;
    COLL__CUDA_CHECK(cudaGetDeviceCount(&count));
    if (device < 0 || device >= count) {
        rt_log_error("collectives: CUDA device %d does not exist (%d visible)",
                     device, count);
        return RT_EINVAL;
    }
    coll__cuda_t *cu = calloc(1, sizeof *cu);
    if (cu == NULL)
        return RT_ENOMEM;
    cu->device = device;
    cu->compute = (cudaStream_t)stream;
    int rc = 0;
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess)
        e = cudaStreamCreateWithFlags(&cu->stream, cudaStreamNonBlocking);
    for (int i = 0; i < COLL__CUDA_EVENTS && e == cudaSuccess; i++) {
        e = cudaEventCreateWithFlags(&cu->ready[i], cudaEventDisableTiming);
        if (e == cudaSuccess)
            e = cudaEventCreateWithFlags(&cu->finished[i], cudaEventDisableTiming);
    }
    if (e == cudaSuccess)
        e = cudaEventCreateWithFlags(&cu->done, cudaEventDisableTiming);
    if (e != cudaSuccess) {
        rc = coll__cuda_fail(__FILE__, __LINE__,
                             "collectives: CUDA stream and events", e);
        cuda_free(cu);
        return rc;
    }
    *out = cu;
    return 0;
}

int coll_comm_attach_cuda(coll_comm_t *c, int device, void *stream,
                          coll_cuda_backend_t backend)
{
    if (c == NULL)
        return RT_EINVAL;
    if (c->cuda) {
        rt_log_error("coll_comm_attach_cuda: the communicator is already in "
                     "CUDA mode");
        return RT_EINVAL;
    }
    int forced_nccl = c->forced == COLL__ALGO_NCCL;
    int forced_cpu = c->forced >= 0 && !forced_nccl;
    const char *env = getenv("RINGTRAIN_NCCL");
    int env_off = env && strcmp(env, "0") == 0;
    int rc = 0, use_nccl = 0;
    if ((int)backend < COLL_CUDA_AUTO || backend > COLL_CUDA_HOST) {
        rt_log_error("coll_comm_attach_cuda: unknown backend %d", (int)backend);
        rc = RT_EINVAL;
    } else if ((backend == COLL_CUDA_NCCL && forced_cpu) ||
               (backend == COLL_CUDA_HOST && forced_nccl)) {
        rt_log_error("coll_comm_attach_cuda: the %s backend cannot run the "
                     "forced allreduce algorithm '%s'",
                     backend == COLL_CUDA_NCCL ? "nccl" : "host",
                     coll__algos[c->forced].name);
        rc = RT_EINVAL;
    } else {
        use_nccl = backend == COLL_CUDA_NCCL || forced_nccl ||
                   (backend == COLL_CUDA_AUTO && !forced_cpu && !env_off &&
                    coll__cuda_nccl_built());
        if (use_nccl && !coll__cuda_nccl_built()) {
            rt_log_error("collectives: this build has no NCCL backend (build "
                         "with CUDA and libnccl, meson -Dnccl=enabled), or "
                         "use the host backend");
            rc = RT_ENOTSUP;
        }
    }
    coll__cuda_t *cu = NULL;
    if (rc == 0)
        rc = cuda_setup(&cu, device, stream);

    /* Every rank learns whether all are ready and chose the same backend
     * before anyone enters NCCL's setup, which would wait for the missing. */
    double v[3] = {-(double)rc, (double)use_nccl, -(double)use_nccl};
    int arc = coll_allreduce_f64_max(c, v, 3);
    if (arc == 0 && v[0] > 0)
        arc = rc ? rc : -(int)v[0];
    if (arc == 0 && v[1] != -v[2]) {
        if (c->rank == 0)
            rt_log_error("collectives: ranks chose different CUDA backends "
                         "(nccl on some, host on others); set RINGTRAIN_NCCL "
                         "and RINGTRAIN_ALLREDUCE the same on every rank");
        arc = RT_EMISMATCH;
    }
    if (arc != 0) {
        cuda_free(cu);
        return arc;
    }
    c->cuda = cu;
    c->cuda_nccl = 0;
    if (use_nccl) {
        rc = coll__nccl_init(c);
        if (rc != 0) {
            c->cuda = NULL;
            cuda_free(cu);
            return rc;
        }
        c->cuda_nccl = 1;
    }
    return 0;
}

/* ---- per request --------------------------------------------------------------- */

int coll__cuda_request_start(coll_comm_t *c, coll_request_t *r)
{
    coll__cuda_t *cu = c->cuda;
    unsigned slot = atomic_fetch_add_explicit(&cu->next_event, 1u,
                                              memory_order_relaxed) %
                    COLL__CUDA_EVENTS;
    r->event = (int)slot;
    COLL__CUDA_CHECK(cudaEventRecord(cu->ready[slot], cu->compute));
    return 0;
}

static int staged_allreduce(coll_comm_t *c, coll_request_t *r)
{
    coll__cuda_t *cu = c->cuda;
    coll_dtype_t dtype = (coll_dtype_t)r->dtype;
    size_t bytes = r->count * coll_dtype_size(dtype);
    if (bytes > cu->host_bytes) {
        /* Grown in 1 MiB steps and kept: a training run's buckets reach
         * their largest size in the first step. */
        size_t want = rt_align_up(bytes, (size_t)1 << 20);
        if (cu->host)
            (void)cudaFreeHost(cu->host);
        cu->host = NULL;
        cu->host_bytes = 0;
        COLL__CUDA_CHECK(cudaMallocHost(&cu->host, want));
        cu->host_bytes = want;
    }
    COLL__CUDA_CHECK(cudaMemcpyAsync(cu->host, r->sendbuf, bytes,
                                     cudaMemcpyDeviceToHost, cu->stream));
    COLL__CUDA_CHECK(cudaEventRecord(cu->done, cu->stream));
    int rc = coll__cuda_wait(c, cu->done, "the copy of an allreduce to host");
    if (rc != 0)
        return rc;
    rc = coll__algos[r->algorithm].fn(c, cu->host, cu->host, r->count, dtype,
                                      (coll_op_t)r->op);
    if (rc != 0)
        return rc;
    COLL__CUDA_CHECK(cudaMemcpyAsync(r->recvbuf, cu->host, bytes,
                                     cudaMemcpyHostToDevice, cu->stream));
    COLL__CUDA_CHECK(cudaEventRecord(cu->done, cu->stream));
    return coll__cuda_wait(c, cu->done, "the copy of an allreduce to device");
}

int coll_comm_cuda_set_stream_ordered(coll_comm_t *c, int on)
{
    if (c == NULL || c->cuda == NULL) {
        rt_log_error("coll_comm_cuda_set_stream_ordered: the communicator is "
                     "not in CUDA mode (coll_comm_attach_cuda first)");
        return RT_EINVAL;
    }
    c->cuda->ordered = on != 0;
    return 0;
}

/* Stream-ordered: remembers slot as queued at t0 (the ring has room). */
static void pending_push(coll__cuda_t *cu, int slot, double t0)
{
    int at = (cu->pending_head + cu->pending_count) % COLL__CUDA_EVENTS;
    cu->pending_slot[at] = slot;
    cu->pending_t0[at] = t0;
    cu->pending_count++;
}

int coll__cuda_watching(const coll_comm_t *c)
{
    return c->cuda != NULL && c->cuda->pending_count > 0;
}

int coll__cuda_watch(coll_comm_t *c)
{
    coll__cuda_t *cu = c->cuda;
    COLL__CUDA_CHECK(cudaSetDevice(cu->device));
    while (cu->pending_count > 0) {
        int slot = cu->pending_slot[cu->pending_head];
        cudaError_t e = cudaEventQuery(cu->finished[slot]);
        if (e == cudaSuccess) {
            cu->pending_head = (cu->pending_head + 1) % COLL__CUDA_EVENTS;
            cu->pending_count--;
            continue;
        }
        if (e != cudaErrorNotReady) {
            int rc = coll__cuda_fail(__FILE__, __LINE__, "a queued ncclAllReduce", e);
            coll__nccl_abort(c);
            return rc;
        }
        int rc = cu->nccl ? coll__nccl_poll(c) : RT_ENCCL;
        if (rc)
            return rc;
        double waited = rt_now() - cu->pending_t0[cu->pending_head];
        if (c->stall_timeout > 0.0 && waited > c->stall_timeout) {
            rt_log_error("collectives: rank %d: a queued allreduce on GPU %d has not "
                         "finished after %.1f s (a peer never joined, or the device is "
                         "stuck); aborting NCCL (stall_timeout)",
                         c->rank, cu->device, waited);
            coll__nccl_abort(c);
            return RT_ETIMEDOUT;
        }
        return 1;
    }
    return 0;
}

int coll__cuda_drain(coll_comm_t *c)
{
    for (unsigned long it = 0;; it++) {
        int rc = coll__cuda_watch(c);
        if (rc <= 0)
            return rc;
        coll__cuda_backoff(it);
    }
}

/* NCCL: queue, then wait on the host, or (stream-ordered) only remember. */
static int nccl_allreduce(coll_comm_t *c, coll_request_t *r)
{
    coll__cuda_t *cu = c->cuda;
    if (cu->nccl == NULL)
        return RT_ENCCL; /* aborted earlier; c->broken says so */
    if (cu->ordered && cu->pending_count == COLL__CUDA_EVENTS) {
        /* Every slot unfinished: wait for the oldest to reuse its event. */
        int rc = coll__cuda_wait(c, cu->finished[cu->pending_slot[cu->pending_head]],
                                 "a queued ncclAllReduce");
        if (rc)
            return rc;
        cu->pending_head = (cu->pending_head + 1) % COLL__CUDA_EVENTS;
        cu->pending_count--;
    }
    double t0 = rt_now();
    int rc = coll__nccl_allreduce(c, r->sendbuf, r->recvbuf, r->count,
                                  (coll_dtype_t)r->dtype, (coll_op_t)r->op);
    if (rc)
        return rc;
    COLL__CUDA_CHECK(cudaEventRecord(cu->finished[r->event], cu->stream));
    if (!cu->ordered)
        return coll__cuda_wait(c, cu->finished[r->event], "ncclAllReduce");
    pending_push(cu, r->event, t0);
    return 0;
}

int coll__cuda_allreduce(coll_comm_t *c, coll_request_t *r)
{
    coll__cuda_t *cu = c->cuda;
    /* The current device is per thread; the owner may be the progress
     * thread, which never chose one. */
    COLL__CUDA_CHECK(cudaSetDevice(cu->device));
    COLL__CUDA_CHECK(cudaStreamWaitEvent(cu->stream, cu->ready[r->event], 0));
    if (r->algorithm == COLL__ALGO_NCCL)
        return nccl_allreduce(c, r);
    return staged_allreduce(c, r);
}

int coll__cuda_request_finish(coll_comm_t *c, coll_request_t *r)
{
    coll__cuda_t *cu = c->cuda;
    if (!cu->ordered || r->algorithm != COLL__ALGO_NCCL || r->count == 0)
        return 0;
    COLL__CUDA_CHECK(cudaStreamWaitEvent(cu->compute, cu->finished[r->event], 0));
    return 0;
}

void coll__cuda_destroy(coll_comm_t *c)
{
    if (c->cuda == NULL)
        return;
    (void)cudaSetDevice(c->cuda->device);
    /* Queued allreduces end (or fail and abort NCCL) before finalizing. */
    if (!coll__broken(c)) {
        int rc = coll__cuda_drain(c);
        if (rc)
            coll__set_broken(c, rc);
    }
    coll__nccl_destroy(c);
    cuda_free(c->cuda);
    c->cuda = NULL;
    c->cuda_nccl = 0;
}
