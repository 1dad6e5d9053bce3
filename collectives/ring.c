/* collectives: ring allreduce over MPI point-to-point (segmented, pipelined
 * reduce-scatter followed by allgather; Patarasuk & Yuan's bandwidth-optimal
 * schedule).
 *
 * Accepts: any ranks (one rank: a copy), any count (blocks of 0 elements when
 *   count < ranks), in place or not, fp32/fp16/bf16, sum/avg.
 * Blocks: the vector is cut into n blocks, the first count % n one element
 *   longer (blocks.h). Each block travels in segments of at most
 *   comm->segment_bytes (comm->net_segment_bytes when the ring crosses
 *   hosts), up to COLL__RING_DEPTH in flight per direction, so
 *   the reduction of one segment overlaps the transfer of the next and no MPI
 *   call moves more than one segment (int counts never overflow).
 * Cost (Hockney: alpha latency, beta time per byte, gamma reduce time per
 *   byte; B bytes, n ranks, S segment bytes):
 *     2(n-1) * ceil(B/(nS)) * alpha + 2(n-1)/n * B * beta + (n-1)/n * B * gamma
 *   Bandwidth-optimal; latency grows with n, so small vectors use rd.
 * fp16/bf16: each hop adds in fp32 and rounds to the dtype (n-1 roundings
 *   per element). avg: the last reduce-scatter step scales as it adds, so the
 *   average is rounded once more only for 16-bit types.
 * Compression (comm->wire fp16/bf16, fp32 data): segments are converted to
 *   the wire type as they are sent (staged in comm->wire_tmp) and added in
 *   fp32 as they arrive; the last reduce-scatter step rounds the owner's
 *   block through the wire type, so what it keeps equals what it sends.
 *   Moves half the bytes: 2(n-1)/n * B/2 * beta. Error bound: wire.c.
 * Any communicator: coll__ring_run takes the MPI communicator, rank and
 *   size, so hier.c runs it over one rank per host.
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
    const char *sbuf; /* elements sent to the right neighbour (dtype) */
    size_t scount;
    char *rdst;       /* where the received elements end up (dtype) */
    size_t rcount;
    const char *own;  /* reduce: rdst = own + received; NULL: plain copy */
    coll_dtype_t dtype;
    coll_dtype_t wire; /* dtype on the wire (== dtype: no conversion) */
    float scale;
    int flags;
    size_t seg_bytes; /* segment size (comm->net_segment_bytes between hosts) */
} ring_xfer_t;

/* One ring step: send x->sbuf to right while receiving x->rcount elements
 * from left, segment by segment, reducing each received segment as soon as
 * it lands. */
static int ring_xfer(coll_comm_t *c, MPI_Comm mc, const ring_xfer_t *x,
                     int right, int left)
{
    enum { D = COLL__RING_DEPTH };
    const size_t esize = coll_dtype_size(x->dtype);
    const size_t wsize = coll_dtype_size(x->wire);
    const int convert = x->wire != x->dtype;
    const size_t seg = x->seg_bytes / esize; /* elements per segment */
    const size_t nsend = coll__seg_total(x->scount, seg);
    const size_t nrecv = coll__seg_total(x->rcount, seg);
    MPI_Request req[2 * D];
    size_t seg_of[2 * D];
    size_t sent = 0, posted = 0;
    int active = 0;
    for (int i = 0; i < 2 * D; i++)
        req[i] = MPI_REQUEST_NULL;

#define POST_RECV(slot)                                                        \
    do {                                                                       \
        size_t s_ = posted++;                                                  \
        size_t n_ = coll__seg_count(x->rcount, seg, s_);                       \
        char *p_ = x->own || convert ? c->tmp + (size_t)(slot) * c->segment_bytes \
                                     : x->rdst + s_ * seg * esize;             \
        seg_of[slot] = s_;                                                     \
        COLL__MPI_CHECK(MPI_Irecv(p_, (int)(n_ * wsize), MPI_BYTE, left,       \
                                  RING_TAG, mc, &req[slot]));                  \
        active++;                                                              \
    } while (0)
#define POST_SEND(slot)                                                        \
    do {                                                                       \
        size_t s_ = sent++;                                                    \
        size_t n_ = coll__seg_count(x->scount, seg, s_);                       \
        const char *p_ = x->sbuf + s_ * seg * esize;                           \
        if (convert) {                                                         \
            char *w_ = c->wire_tmp + (size_t)((slot) - D) * seg * wsize;       \
            coll__convert(x->wire, w_, x->dtype, p_, n_);                      \
            p_ = w_;                                                           \
        }                                                                      \
        COLL__MPI_CHECK(MPI_Isend(p_, (int)(n_ * wsize), MPI_BYTE, right,      \
                                  RING_TAG, mc, &req[slot]));                  \
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
            size_t n = coll__seg_count(x->rcount, seg, s);
            const char *got = c->tmp + (size_t)idx * c->segment_bytes;
            char *dst = x->rdst + s * seg * esize;
            if (x->own && convert) {
                coll__reduce_wire(x->wire, (float *)dst,
                                  (const float *)(x->own + s * seg * esize),
                                  got, n, x->scale, x->flags);
            } else if (x->own) {
                const void *srcs[2] = {x->own + s * seg * esize, got};
                coll__reduce(x->dtype, dst, NULL, srcs, 2, n, x->scale,
                             x->flags);
            } else if (convert) {
                coll__convert(x->dtype, dst, x->wire, got, n);
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

int coll__ring_run(coll_comm_t *comm, MPI_Comm mc, int rank, int size,
                   const void *sendbuf, void *recvbuf, size_t count,
                   coll_dtype_t dtype, coll_op_t op, float scale,
                   coll_dtype_t wire)
{
    const size_t n = (size_t)size;
    if (n == 1 || count == 0) {
        coll__allreduce_copy(comm, sendbuf, recvbuf, count, dtype, op);
        if (op == COLL_AVG && scale != 1.0f && count > 0) {
            const void *srcs[1] = {recvbuf};
            coll__reduce(dtype, recvbuf, NULL, srcs, 1, count, scale,
                         COLL__REDUCE_SCALE);
        }
        return 0;
    }
    const size_t esize = coll_dtype_size(dtype);
    const size_t r = (size_t)rank;
    const int right = (int)((r + 1) % n), left = (int)((r + n - 1) % n);
    const int convert = wire != dtype;
    const char *send = sendbuf;
    char *recv = recvbuf;
    /* A ring that crosses hosts cuts the smaller segments (comm.c). */
    const size_t seg_bytes = mc == comm->comm && comm->host_count < 2
                                 ? comm->segment_bytes
                                 : comm->net_segment_bytes;

    for (size_t k = 0; k + 1 < n; k++) {
        size_t sb = (r + n - k) % n, rb = (r + 2 * n - k - 1) % n;
        int last = k + 2 == n;
        ring_xfer_t x = {
            .sbuf = (k == 0 ? send : recv) + coll__block_offset(count, n, sb) * esize,
            .scount = coll__block_count(count, n, sb),
            .rdst = recv + coll__block_offset(count, n, rb) * esize,
            .rcount = coll__block_count(count, n, rb),
            .own = send + coll__block_offset(count, n, rb) * esize,
            .dtype = dtype,
            .wire = wire,
            .scale = scale,
            .flags = (last && op == COLL_AVG ? COLL__REDUCE_SCALE : 0) |
                     (last && convert ? COLL__REDUCE_ROUND : 0),
            .seg_bytes = seg_bytes,
        };
        int rc = ring_xfer(comm, mc, &x, right, left);
        if (rc != 0)
            return rc;
    }
    for (size_t k = 0; k + 1 < n; k++) {
        size_t sb = (r + 1 + n - k) % n, rb = (r + n - k) % n;
        ring_xfer_t x = {
            .sbuf = recv + coll__block_offset(count, n, sb) * esize,
            .scount = coll__block_count(count, n, sb),
            .rdst = recv + coll__block_offset(count, n, rb) * esize,
            .rcount = coll__block_count(count, n, rb),
            .own = NULL,
            .dtype = dtype,
            .wire = wire,
            .scale = 1.0f,
            .flags = 0,
            .seg_bytes = seg_bytes,
        };
        int rc = ring_xfer(comm, mc, &x, right, left);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int coll__allreduce_ring(coll_comm_t *comm, const void *sendbuf, void *recvbuf,
                         size_t count, coll_dtype_t dtype, coll_op_t op)
{
    return coll__ring_run(comm, comm->comm, comm->rank, comm->size, sendbuf,
                          recvbuf, count, dtype, op, 1.0f / (float)comm->size,
                          dtype == COLL_F32 ? comm->wire : dtype);
}
