/* collectives: recursive-doubling allreduce over MPI point-to-point, for
 * small vectors (latency-bound).
 *
 * Accepts: any ranks (one rank: a copy), any count, in place or not,
 *   fp32/fp16/bf16, sum/avg. Vectors longer than one segment
 *   (comm->segment_bytes) are done segment after segment, so the only buffer
 *   is one persistent segment and no MPI call moves more than a segment.
 * Non-power-of-two ranks (Open MPI's scheme): with p2 the largest power of two
 *   <= n and rem = n - p2, the first 2*rem ranks pair up: each even rank sends
 *   its vector to the next odd rank and sits out; the p2 remaining ranks do
 *   log2(p2) exchange-and-add rounds with partner newrank ^ mask; finally each
 *   odd rank sends the result back to its even partner.
 * Cost per segment (alpha latency, beta per byte, gamma reduce per byte):
 *     (log2(p2) + 2*[rem > 0]) * alpha + (log2(p2) + 2*[rem > 0]) * B * beta
 *     + (log2(p2) + [rem > 0]) * B * gamma
 *   Latency-optimal; moves the whole vector every round, so large vectors
 *   use ring or shm.
 * Results are bitwise identical on every rank: each round adds two partial
 *   sums, and a + b == b + a in IEEE arithmetic (also when rounded to fp16/bf16).
 *   avg is applied in the last round, as the sum is formed.
 *
 * Steps for n = 5 (p2 = 4, rem = 1; newrank in brackets):
 *   pre       rank 0 -> rank 1 (1 adds)         ranks 2,3,4 idle
 *   mask 1    1[0] <-> 2[1]    3[2] <-> 4[3]
 *   mask 2    1[0] <-> 3[2]    2[1] <-> 4[3]
 *   post      rank 1 -> rank 0
 */
#include "blocks.h"
#include "coll_internal.h"
#include "reduce.h"

#define RD_TAG 0x5244

static int rd_segment(coll_comm_t *c, const char *send, char *out,
                      size_t count, coll_dtype_t dtype, coll_op_t op)
{
    const int n = c->size, r = c->rank;
    const size_t bytes = count * coll_dtype_size(dtype);
    const int b = (int)bytes;
    int p2 = 1;
    while (p2 * 2 <= n)
        p2 *= 2;
    const int rem = n - p2;
    const float scale = 1.0f / (float)n;
    const char *cur = send;
    int newrank;

    if (r < 2 * rem) {
        if (r % 2 == 0) {
            COLL__MPI_CHECK(MPI_Send(cur, b, MPI_BYTE, r + 1, RD_TAG, c->comm));
            newrank = -1;
        } else {
            COLL__MPI_CHECK(MPI_Recv(c->tmp, b, MPI_BYTE, r - 1, RD_TAG,
                                     c->comm, MPI_STATUS_IGNORE));
            const void *srcs[2] = {c->tmp, cur};
            coll__reduce(dtype, out, NULL, srcs, 2, count, 1.0f, 0);
            cur = out;
            newrank = r / 2;
        }
    } else {
        newrank = r - rem;
    }

    if (newrank >= 0) {
        for (int mask = 1; mask < p2; mask <<= 1) {
            int newpeer = newrank ^ mask;
            int peer = newpeer < rem ? newpeer * 2 + 1 : newpeer + rem;
            COLL__MPI_CHECK(MPI_Sendrecv(cur, b, MPI_BYTE, peer, RD_TAG, c->tmp,
                                         b, MPI_BYTE, peer, RD_TAG, c->comm,
                                         MPI_STATUS_IGNORE));
            int last = mask * 2 >= p2;
            const void *srcs[2] = {cur, c->tmp};
            coll__reduce(dtype, out, NULL, srcs, 2, count, scale,
                         last && op == COLL_AVG ? COLL__REDUCE_SCALE : 0);
            cur = out;
        }
    }

    if (r < 2 * rem) {
        if (r % 2 == 1)
            COLL__MPI_CHECK(MPI_Send(out, b, MPI_BYTE, r - 1, RD_TAG, c->comm));
        else
            COLL__MPI_CHECK(MPI_Recv(out, b, MPI_BYTE, r + 1, RD_TAG, c->comm,
                                     MPI_STATUS_IGNORE));
    }
    return 0;
}

int coll__allreduce_rd(coll_comm_t *comm, const void *sendbuf, void *recvbuf,
                       size_t count, coll_dtype_t dtype, coll_op_t op)
{
    if (comm->size == 1)
        return coll__allreduce_copy(comm, sendbuf, recvbuf, count, dtype, op);
    const size_t esize = coll_dtype_size(dtype);
    const size_t seg = comm->segment_bytes / esize;
    for (size_t s = 0, nseg = coll__seg_total(count, seg); s < nseg; s++) {
        size_t off = s * seg * esize;
        int rc = rd_segment(comm, (const char *)sendbuf + off,
                            (char *)recvbuf + off, coll__seg_count(count, seg, s),
                            dtype, op);
        if (rc != 0)
            return rc;
    }
    return 0;
}
