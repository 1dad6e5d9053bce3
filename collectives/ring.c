/* collectives: ring allreduce over MPI point-to-point (segmented, pipelined
 * reduce-scatter followed by allgather; Patarasuk & Yuan's bandwidth-optimal
 * schedule).
 *
 * Accepts: any ranks (one rank: a copy), any count (blocks of 0 elements when
 *   count < ranks), in place or not, fp32/fp16/bf16, sum/avg.
 * Blocks: the vector is cut into n blocks, the first count % n one element
 *   longer (blocks.h). Each block travels in segments of at most
 *   comm->segment_bytes, up to COLL__RING_DEPTH in flight per direction, so
 *   the reduction of one segment overlaps the transfer of the next and no MPI
 *   call moves more than one segment (int counts never overflow).
 * Cost (Hockney: alpha latency, beta time per byte, gamma reduce time per
 *   byte; B bytes, n ranks, S segment bytes):
 *     2(n-1) * ceil(B/(nS)) * alpha + 2(n-1)/n * B * beta + (n-1)/n * B * gamma
 *   Bandwidth-optimal; latency grows with n, so small vectors use rd.
 * fp16/bf16: each hop adds in fp32 and rounds to the dtype (n-1 roundings
 *   per element). avg: the last reduce-scatter step scales as it adds, so the
 *   average is rounded once more only for 16-bit types.
 * Result: every block is reduced on one rank and copied to the others, so all
 *   ranks hold bitwise identical results.
 *
 * Steps for n = 3 (block k = Bk; "+" receive and add, "<" receive):
 *   reduce-scatter   rank 0        rank 1        rank 2
 *     step 0         send B0 +B2   send B1 +B0   send B2 +B1
 *     step 1         send B2 +B1   send B0 +B2   send B1 +B0
 *   -> rank r holds block (r+1) % n reduced
 *   allgather
 *     step 0         send B1 <B0   send B2 <B1   send B0 <B2
 *     step 1         send B0 <B2   send B1 <B0   send B2 <B1
 */
#include <string.h>

#include "blocks.h"
#include "coll_internal.h"
#include "reduce.h"

#define RING_TAG 0x5249

typedef struct {
    const char *sbuf; /* bytes sent to the right neighbour */
    size_t sbytes;
    char *rdst;       /* where the received bytes end up */
    size_t rbytes;
    const char *own;  /* reduce: rdst = own + received; NULL: plain copy */
    coll_dtype_t dtype;
    float scale;
    int flags;
} ring_xfer_t;

/* One ring step: send x->sbuf to right while receiving x->rbytes from left,
 * segment by segment, reducing each received segment as soon as it lands. */
static int ring_xfer(coll_comm_t *c, const ring_xfer_t *x, int right, int left)
{
    enum { D = COLL__RING_DEPTH };
    const size_t seg = c->segment_bytes;
    const size_t esize = coll_dtype_size(x->dtype);
    const size_t nsend = coll__seg_total(x->sbytes, seg);
    const size_t nrecv = coll__seg_total(x->rbytes, seg);
    MPI_Request req[2 * D];
    size_t seg_of[2 * D];
    size_t sent = 0, posted = 0;
    int active = 0;
    for (int i = 0; i < 2 * D; i++)
        req[i] = MPI_REQUEST_NULL;

#define POST_RECV(slot)                                                        \
    do {                                                                       \
        size_t s_ = posted++;                                                  \
        size_t b_ = coll__seg_count(x->rbytes, seg, s_);                       \
        char *p_ = x->own ? c->tmp + (size_t)(slot) * seg : x->rdst + s_ * seg; \
        seg_of[slot] = s_;                                                     \
        COLL__MPI_CHECK(MPI_Irecv(p_, (int)b_, MPI_BYTE, left, RING_TAG,       \
                                  c->comm, &req[slot]));                       \
        active++;                                                              \
    } while (0)
#define POST_SEND(slot)                                                        \
    do {                                                                       \
        size_t s_ = sent++;                                                    \
        size_t b_ = coll__seg_count(x->sbytes, seg, s_);                       \
        COLL__MPI_CHECK(MPI_Isend(x->sbuf + s_ * seg, (int)b_, MPI_BYTE,       \
                                  right, RING_TAG, c->comm, &req[slot]));      \
        active++;                                                              \
    } while (0)

    for (int i = 0; i < D && posted < nrecv; i++)
        POST_RECV(i);
    for (int i = 0; i < D && sent < nsend; i++)
        POST_SEND(D + i);
    while (active > 0) {
        int idx = 0;
        int rc = coll__mpi_waitany(c, 2 * D, req, &idx);
        if (rc != 0)
            return rc;
        active--;
        if (idx < D) {
            size_t s = seg_of[idx];
            if (x->own) {
                size_t bytes = coll__seg_count(x->rbytes, seg, s);
                const void *srcs[2] = {x->own + s * seg, c->tmp + (size_t)idx * seg};
                coll__reduce(x->dtype, x->rdst + s * seg, NULL, srcs, 2,
                             bytes / esize, x->scale, x->flags);
            }
            if (posted < nrecv)
                POST_RECV(idx);
        } else if (sent < nsend) {
            POST_SEND(idx);
        }
    }
#undef POST_RECV
#undef POST_SEND
    return 0;
}

int coll__allreduce_ring(coll_comm_t *comm, const void *sendbuf, void *recvbuf,
                         size_t count, coll_dtype_t dtype, coll_op_t op)
{
    const size_t n = (size_t)comm->size;
    if (n == 1)
        return coll__allreduce_copy(comm, sendbuf, recvbuf, count, dtype, op);
    const size_t esize = coll_dtype_size(dtype);
    const size_t r = (size_t)comm->rank;
    const int right = (int)((r + 1) % n), left = (int)((r + n - 1) % n);
    const char *send = sendbuf;
    char *recv = recvbuf;

    for (size_t k = 0; k + 1 < n; k++) {
        size_t sb = (r + n - k) % n, rb = (r + 2 * n - k - 1) % n;
        ring_xfer_t x = {
            .sbuf = (k == 0 ? send : recv) + coll__block_offset(count, n, sb) * esize,
            .sbytes = coll__block_count(count, n, sb) * esize,
            .rdst = recv + coll__block_offset(count, n, rb) * esize,
            .rbytes = coll__block_count(count, n, rb) * esize,
            .own = send + coll__block_offset(count, n, rb) * esize,
            .dtype = dtype,
            .scale = 1.0f / (float)n,
            .flags = (k + 2 == n && op == COLL_AVG) ? COLL__REDUCE_SCALE : 0,
        };
        int rc = ring_xfer(comm, &x, right, left);
        if (rc != 0)
            return rc;
    }
    for (size_t k = 0; k + 1 < n; k++) {
        size_t sb = (r + 1 + n - k) % n, rb = (r + n - k) % n;
        ring_xfer_t x = {
            .sbuf = recv + coll__block_offset(count, n, sb) * esize,
            .sbytes = coll__block_count(count, n, sb) * esize,
            .rdst = recv + coll__block_offset(count, n, rb) * esize,
            .rbytes = coll__block_count(count, n, rb) * esize,
            .own = NULL,
            .dtype = dtype,
            .scale = 1.0f,
            .flags = 0,
        };
        int rc = ring_xfer(comm, &x, right, left);
        if (rc != 0)
            return rc;
    }
    return 0;
}
