/* collectives: the two simplest allreduce algorithms.
 *
 * copy — one rank.
 *   Accepts: comm size 1 only (selection never picks it otherwise; forcing it
 *   on more ranks is refused at communicator creation).
 *   Cost: one memcpy of the vector when out of place, nothing in place; avg
 *   over one rank is the identity (scale 1/1).
 *
 * mpi — Open MPI's own MPI_Allreduce, the baseline every benchmark compares
 *   with, run through the same queue, buffers and checks as our algorithms.
 *   Accepts: anything. fp32 uses MPI_FLOAT/MPI_SUM; fp16 and bf16 use
 *   MPI_UINT16_T with a user-defined commutative op that sums in fp32
 *   (MPI has no 16-bit float types). avg = the sum, then one scale pass.
 *   Limits: vectors beyond comm->mpi_chunk_bytes (1 GiB) go in several calls
 *   so no int count overflows. Cost: whatever Open MPI's tuned component chooses;
 *   on the 2-core test host it allocates and page-faults a temporary per call
 *   at >= 64 MiB (see ../shared/BENCH.md).
 */
#include <string.h>

#include "coll_internal.h"
#include "reduce.h"

int coll__allreduce_copy(coll_comm_t *comm, const void *sendbuf, void *recvbuf,
                         size_t count, coll_dtype_t dtype, coll_op_t op)
{
    (void)comm;
    (void)op;
    if (sendbuf != recvbuf)
        memcpy(recvbuf, sendbuf, count * coll_dtype_size(dtype));
    return 0;
}

int coll__allreduce_mpi(coll_comm_t *comm, const void *sendbuf, void *recvbuf,
                        size_t count, coll_dtype_t dtype, coll_op_t op)
{
    if (comm->size == 1)
        return coll__allreduce_copy(comm, sendbuf, recvbuf, count, dtype, op);
    size_t esize = coll_dtype_size(dtype);
    MPI_Datatype type = dtype == COLL_F32 ? MPI_FLOAT : MPI_UINT16_T;
    MPI_Op mop = dtype == COLL_F32 ? MPI_SUM : comm->op_sum16[dtype];
    size_t chunk = comm->mpi_chunk_bytes / esize;
    int in_place = sendbuf == recvbuf;
    for (size_t off = 0; off < count; off += chunk) {
        size_t n = count - off < chunk ? count - off : chunk;
        const void *s = in_place ? MPI_IN_PLACE
                                 : (const char *)sendbuf + off * esize;
        COLL__MPI_CHECK(MPI_Allreduce(s, (char *)recvbuf + off * esize, (int)n,
                                      type, mop, comm->comm));
    }
    if (op == COLL_AVG) {
        const void *srcs[1] = {recvbuf};
        coll__reduce(dtype, recvbuf, NULL, srcs, 1, count,
                     1.0f / (float)comm->size, COLL__REDUCE_SCALE);
    }
    return 0;
}
