/* collectives: the NCCL backend of CUDA mode (see cuda.c for the ordering).
 *
 * nccl — ncclAllReduce on device buffers.
 *   Accepts: fp32, fp16, bf16; sum and avg (ncclAvg); in place or not; any
 *   count (size_t). One GPU per rank.
 *   Setup: rank 0 makes the unique id (ncclGetUniqueId), the MPI helper
 *   broadcast carries it to every rank, and each rank creates its NCCL
 *   communicator on its own device with ncclCommInitRankConfig in
 *   non-blocking mode (config.blocking = 0). Non-blocking, so no call ever
 *   sits inside NCCL where we cannot look: every call returns at once and
 *   we poll ncclCommGetAsyncError until it settles, and the completion event
 *   of each allreduce together with it. On an asynchronous error (a peer's
 *   process or link died: NCCL's proxy reports it), or after stall_timeout,
 *   the communicator is aborted (ncclCommAbort stops its kernels) and the
 *   call fails, so the caller can report and end the job instead of
 *   spinning on a dead peer.
 *   Cost: NCCL's own (ring or tree, NVLink/PCIe/network; busbw ~ the
 *   slowest link); plus, per call here, one enqueue and one host-side wait
 *   for completion before the next call is enqueued (a few microseconds of
 *   gap between back-to-back buckets) -- unless the communicator is
 *   stream-ordered (coll_comm_cuda_set_stream_ordered, see cuda.c): then
 *   calls are queued back to back and nobody waits on the host.
 *   avg: NCCL scales each input by 1/ranks before summing (floating types),
 *   so avg may differ from the host algorithms' sum-then-scale in the last
 *   bit; at one rank both are exact.
 *   Out-of-place avg runs as a device copy into the output followed by an
 *   in-place ncclAvg: NCCL 2.28.3 at one rank (seen on an H200, 2026-11-28)
 *   left the output's elements past the last multiple of 2^20 unwritten for
 *   an out-of-place ncclAvg (count 2^20+5: the last 5; in place and sum were
 *   right). The copy costs one pass over the buffer at device bandwidth.
 *   Limits: no NCCL group calls (one allreduce at a time on our stream).
 */
#include "coll_cuda.h"

#ifdef RINGTRAIN_HAVE_NCCL

#include <nccl.h>
#include <string.h>

int coll__cuda_nccl_built(void) { return 1; }

static ncclComm_t nccl_of(const coll_comm_t *c)
{
    return (ncclComm_t)c->cuda->nccl;
}

static int nccl_fail(coll_comm_t *c, const char *file, int line,
                     const char *call, ncclResult_t r)
{
    ncclComm_t comm = c->cuda ? nccl_of(c) : NULL;
    const char *last = comm ? ncclGetLastError(comm) : NULL;
    rt_log_error("%s:%d %s: %s%s%s", file, line, call, ncclGetErrorString(r),
                 last && last[0] ? ": " : "", last && last[0] ? last : "");
    return RT_ENCCL;
}

void coll__nccl_abort(coll_comm_t *c)
{
    if (c->cuda == NULL || c->cuda->nccl == NULL)
        return;
    (void)ncclCommAbort(nccl_of(c));
    c->cuda->nccl = NULL;
}

int coll__nccl_poll(coll_comm_t *c)
{
    ncclResult_t state = ncclSuccess;
    ncclResult_t r = ncclCommGetAsyncError(nccl_of(c), &state);
    if (r == ncclSuccess && (state == ncclSuccess || state == ncclInProgress))
        return 0;
    int rc = nccl_fail(c, __FILE__, __LINE__,
                       "ncclCommGetAsyncError (aborting the NCCL communicator)",
                       r != ncclSuccess ? r : state);
    coll__nccl_abort(c);
    return rc;
}

/* Polls a non-blocking communicator until its last call has finished
 * (state ncclSuccess), failing on an error or after stall_timeout. */
static int nccl_settle(coll_comm_t *c, const char *what)
{
    double start = rt_now();
    for (unsigned long it = 0;; it++) {
        ncclResult_t state = ncclSuccess;
        ncclResult_t r = ncclCommGetAsyncError(nccl_of(c), &state);
        if (r == ncclSuccess && state == ncclSuccess)
            return 0;
        if (r != ncclSuccess || state != ncclInProgress) {
            int rc = nccl_fail(c, __FILE__, __LINE__, what,
                               r != ncclSuccess ? r : state);
            coll__nccl_abort(c);
            return rc;
        }
        if (c->stall_timeout > 0.0 && (it & 255) == 0 &&
            rt_now() - start > c->stall_timeout) {
            rt_log_error("collectives: rank %d waited %.1f s for %s (a peer "
                         "never joined?); aborting NCCL (stall_timeout)",
                         c->rank, rt_now() - start, what);
            coll__nccl_abort(c);
            return RT_ETIMEDOUT;
        }
        coll__cuda_backoff(it);
    }
}

int coll__nccl_init(coll_comm_t *c)
{
    struct {
        int32_t ok;
        int32_t pad;
        ncclUniqueId id;
    } boot;
    memset(&boot, 0, sizeof boot);
    if (c->rank == 0) {
        ncclResult_t r = ncclGetUniqueId(&boot.id);
        boot.ok = r == ncclSuccess;
        if (!boot.ok)
            nccl_fail(c, __FILE__, __LINE__, "ncclGetUniqueId", r);
    }
    int rc = coll_broadcast(c, &boot, sizeof boot, 0);
    if (rc != 0)
        return rc;
    if (!boot.ok) {
        if (c->rank != 0)
            rt_log_error("collectives: rank 0 could not make the NCCL unique "
                         "id (see its message)");
        return RT_ENCCL;
    }
    COLL__CUDA_CHECK(cudaSetDevice(c->cuda->device));
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclComm_t comm = NULL;
    ncclResult_t r = ncclCommInitRankConfig(&comm, c->size, boot.id, c->rank,
                                            &config);
    c->cuda->nccl = comm;
    if (r != ncclSuccess && r != ncclInProgress) {
        rc = nccl_fail(c, __FILE__, __LINE__, "ncclCommInitRankConfig", r);
        coll__nccl_abort(c);
        return rc;
    }
    return nccl_settle(c, "ncclCommInitRankConfig");
}

int coll__nccl_allreduce(coll_comm_t *c, const void *sendbuf, void *recvbuf,
                         size_t count, coll_dtype_t dtype, coll_op_t op)
{
    coll__cuda_t *cu = c->cuda;
    ncclDataType_t type = dtype == COLL_F32   ? ncclFloat32
                          : dtype == COLL_F16 ? ncclFloat16
                                              : ncclBfloat16;
    ncclRedOp_t rop = op == COLL_AVG ? ncclAvg : ncclSum;
    if (rop == ncclAvg && sendbuf != recvbuf && count > 0) {
        COLL__CUDA_CHECK(cudaMemcpyAsync(recvbuf, sendbuf,
                                         count * coll_dtype_size(dtype),
                                         cudaMemcpyDeviceToDevice, cu->stream));
        sendbuf = recvbuf;
    }
    ncclResult_t r = ncclAllReduce(sendbuf, recvbuf, count, type, rop,
                                   nccl_of(c), cu->stream);
    if (r != ncclSuccess && r != ncclInProgress) {
        int rc = nccl_fail(c, __FILE__, __LINE__, "ncclAllReduce", r);
        coll__nccl_abort(c);
        return rc;
    }
    /* Non-blocking: the operation is on the stream only once the
     * communicator has settled; the completion event must come after it. */
    return nccl_settle(c, "ncclAllReduce");
}

void coll__nccl_destroy(coll_comm_t *c)
{
    if (c->cuda == NULL || c->cuda->nccl == NULL)
        return;
    if (coll__broken(c)) {
        coll__nccl_abort(c);
        return;
    }
    /* Finalize flushes and waits for the peers (all ranks of a host must
     * come: coll_comm_destroy is collective); then destroy frees locally. */
    ncclResult_t r = ncclCommFinalize(nccl_of(c));
    if (r != ncclSuccess && r != ncclInProgress) {
        nccl_fail(c, __FILE__, __LINE__, "ncclCommFinalize", r);
        coll__nccl_abort(c);
        return;
    }
    if (nccl_settle(c, "ncclCommFinalize") != 0)
        return; /* aborted */
    (void)ncclCommDestroy(nccl_of(c));
    c->cuda->nccl = NULL;
}

#else /* no NCCL in this build: the host backend only */

int coll__cuda_nccl_built(void) { return 0; }

int coll__nccl_init(coll_comm_t *c)
{
    (void)c;
    return RT_ENOTSUP;
}

int coll__nccl_allreduce(coll_comm_t *c, const void *sendbuf, void *recvbuf,
                         size_t count, coll_dtype_t dtype, coll_op_t op)
{
    (void)c;
    (void)sendbuf;
    (void)recvbuf;
    (void)count;
    (void)dtype;
    (void)op;
    return RT_ENOTSUP;
}

int coll__nccl_poll(coll_comm_t *c)
{
    (void)c;
    return 0;
}

void coll__nccl_abort(coll_comm_t *c) { (void)c; }

void coll__nccl_destroy(coll_comm_t *c) { (void)c; }

#endif
