/* collectives: hierarchical allreduce for ranks spread over several hosts
 * (intra-host shared memory + an inter-host ring per slice), and the
 * RINGTRAIN_HOST_SPLIT testing aid.
 *
 * hier — intra-host reduce-scatter, inter-host ring, intra-host allgather.
 *   Accepts: any layout of ranks on hosts (uneven ones too), any count
 *   (blocks of 0 elements when count < slices), in place or not, every
 *   dtype/op, wire compression. One rank: a copy. One host (forced only):
 *   the two shared-memory phases alone.
 *   Slices: S = the fewest ranks any host has. The vector is cut into S
 *   blocks (blocks.h); local rank j < S of every host owns block j. Ranks
 *   with local rank >= S (hosts with more ranks than S) add their input in
 *   phase 1, receive the result in phase 3 and sit out phase 2.
 *   Phases, on rank (host h, local rank j):
 *     1. shared memory: block j of this host's sum (fp32 accumulation, in
 *        local-rank order) lands in recvbuf's block j. Per step, every local
 *        rank copies one piece of each block it does not own into its slot;
 *        owner j sums its own input and the peers' slots into recvbuf.
 *     2. MPI: the ring (ring.c) allreduces block j in place over the S-th
 *        "slice" communicator: local rank j of every host. avg scales by
 *        1/(all ranks) there. Under compression the ring sends fp16/bf16.
 *     3. shared memory: each owner copies pieces of its finished block into
 *        its slot; every other local rank copies them into recvbuf.
 *   Both shared-memory phases are software-pipelined like shm.c's two-shot
 *   (the copy for step t+1 is posted before step t is consumed), over the
 *   host's own segment (shm.c creates one per host).
 * Cost (H hosts, L ranks per host, S = L, B bytes; alpha/beta of the
 *   network, m = memory bandwidth):
 *     2(H-1) * ceil(B/(S*seg)) * alpha + 2(H-1)/H * B * beta + ~3B/m
 *   All S rings cross the host's link at once; together each host sends
 *   2(H-1)/H * B, against 2(N-1)/N * B (N = H*L) for a flat ring whose
 *   ranks are placed host by host: 1.5x fewer bytes at 2 hosts x 2 ranks,
 *   and 2x at 2 x many. Compression halves the network term again.
 * Result: each block is reduced on its ring owner (ring.c) and copied to
 *   everyone else, so every rank holds bitwise the same result.
 * Limits: a rank with local rank >= S waits in phase 3 for the whole ring,
 *   so a stall_timeout shorter than the inter-host phase would fire there.
 *
 * Steps for 2 hosts x 2 ranks (A: ranks 0,1; B: ranks 2,3; blocks b0, b1):
 *   phase 1   rank 0: A's sum of b0     rank 1: A's sum of b1
 *             rank 2: B's sum of b0     rank 3: B's sum of b1
 *   phase 2   ring {0,2} allreduces b0  ring {1,3} allreduces b1
 *             (each: one reduce-scatter and one allgather step of B/4)
 *   phase 3   rank 0 <- b1 from rank 1  rank 1 <- b0 from rank 0
 *             rank 2 <- b1 from rank 3  rank 3 <- b0 from rank 2
 *
 * RINGTRAIN_HOST_SPLIT=K (testing aid): split each real host's ranks into K
 * fake hosts, by blocks of local ranks (K:cyclic: local rank % K), so tests
 * on one machine exercise every multi-host path: per-host segments, hier,
 * ring across "hosts". The fake hosts still share memory and an MPI
 * transport; only the topology the collectives see changes.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blocks.h"
#include "coll_internal.h"
#include "reduce.h"

int coll__host_split(coll_comm_t *c)
{
    const char *text = getenv("RINGTRAIN_HOST_SPLIT");
    if (text == NULL || text[0] == '\0')
        return 0;
    char *end = NULL;
    long k = strtol(text, &end, 10);
    int cyclic = 0;
    if (end != text && strcmp(end, ":cyclic") == 0)
        cyclic = 1;
    else if (end == text || *end != '\0')
        k = 0;
    if (k < 1 || k > 65536) {
        if (c->rank == 0)
            rt_log_error("collectives: RINGTRAIN_HOST_SPLIT=%s: expected K or "
                         "K:cyclic with K in 1..65536 (fake hosts per real "
                         "host)", text);
        return RT_EINVAL;
    }
    int lrank = 0, lsize = 1;
    COLL__MPI_CHECK(MPI_Comm_rank(c->local_comm, &lrank));
    COLL__MPI_CHECK(MPI_Comm_size(c->local_comm, &lsize));
    c->hier.real_local_size = lsize;
    if (k > lsize)
        k = lsize;
    int color = cyclic ? (int)(lrank % k)
                       : (int)((long long)lrank * k / lsize);
    MPI_Comm sub = MPI_COMM_NULL;
    COLL__MPI_CHECK(MPI_Comm_split(c->local_comm, color, lrank, &sub));
    MPI_Comm_free(&c->local_comm);
    c->local_comm = sub;
    return 0;
}

int coll__hier_create(coll_comm_t *c)
{
    c->hier.slice_comm = MPI_COMM_NULL;
    /* min and max local size, and whether every host that needs a
     * segment has one, in one call. */
    int mine[3] = {c->local_size, -c->local_size,
                   c->local_size < 2 || c->shm != NULL};
    int all[3];
    COLL__MPI_CHECK(MPI_Allreduce(mine, all, 3, MPI_INT, MPI_MIN, c->comm));
    c->hier.slices = all[0];
    c->hier.max_local_size = -all[1];
    c->hier.shm_ok = all[2];
    c->hier.slice_rank = 0;
    /* Fake hosts share the machine's CPUs: judge oversubscription (which
     * makes waits yield) by the ranks really here. */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (c->hier.real_local_size > c->local_size && cpus > 0 &&
        c->hier.real_local_size > cpus && !c->oversubscribed) {
        c->oversubscribed = 1;
        if (c->shm != NULL && getenv("RINGTRAIN_SHM_SPIN") == NULL)
            c->shm->spin = 64; /* shm.c's choice when oversubscribed */
    }
    if (c->host_count < 2)
        return 0;
    int color = c->local_rank < c->hier.slices ? c->local_rank : MPI_UNDEFINED;
    COLL__MPI_CHECK(MPI_Comm_split(c->comm, color, c->rank, &c->hier.slice_comm));
    if (c->hier.slice_comm != MPI_COMM_NULL) {
        COLL__MPI_CHECK(MPI_Comm_set_errhandler(c->hier.slice_comm,
                                                MPI_ERRORS_RETURN));
        int n = 0;
        COLL__MPI_CHECK(MPI_Comm_rank(c->hier.slice_comm, &c->hier.slice_rank));
        COLL__MPI_CHECK(MPI_Comm_size(c->hier.slice_comm, &n));
        if (n != c->host_count) {
            rt_log_error("collectives: slice %d has %d ranks but there are %d "
                         "hosts (inconsistent host split)", c->local_rank, n,
                         c->host_count);
            return RT_EINVAL;
        }
    }
    return 0;
}

void coll__hier_destroy(coll_comm_t *c)
{
    if (c->hier.slice_comm != MPI_COMM_NULL)
        MPI_Comm_free(&c->hier.slice_comm);
}

/* ---- phase 1: intra-host reduce-scatter into S blocks ------------------------ */

typedef struct {
    const char *send;
    char *recv;
    size_t count;
    size_t esize;
    coll_dtype_t dtype;
    int slices;
    size_t piece;  /* elements of one block per step */
    uint32_t base; /* step of piece 0 */
    float scale;
    int flags;
} hier_job_t;

/* Elements [*off, *off + *n) of block b that step t covers; 0 if none. */
static int piece_of(const hier_job_t *j, int b, size_t t, size_t *off,
                    size_t *n)
{
    size_t bc = coll__block_count(j->count, (size_t)j->slices, (size_t)b);
    size_t start = t * j->piece;
    if (start >= bc)
        return 0;
    *off = coll__block_offset(j->count, (size_t)j->slices, (size_t)b) + start;
    *n = bc - start < j->piece ? bc - start : j->piece;
    return 1;
}

/* Piece length: a slot holds one piece of every block, each a whole number
 * of 64-byte lines where the slot allows. */
static size_t piece_elems(const coll__shm_t *sh, size_t esize, int parts)
{
    size_t unit = 64 / esize;
    size_t p = sh->slot_bytes / ((size_t)parts * esize);
    return p >= unit ? p / unit * unit : (p ? p : 1);
}

static int rs_post(coll_comm_t *c, const hier_job_t *j, size_t t)
{
    coll__shm_t *sh = c->shm;
    uint32_t step = j->base + (uint32_t)t;
    int rc = coll__shm_wait_slot_free(c, step);
    if (rc != 0)
        return rc;
    char *slot = coll__shm_slot(sh, sh->me, step);
    for (int b = 0; b < j->slices; b++) {
        size_t off, n;
        if (b == sh->me || !piece_of(j, b, t, &off, &n))
            continue;
        memcpy(slot + (size_t)b * j->piece * j->esize, j->send + off * j->esize,
               n * j->esize);
    }
    coll__shm_post_ctr(sh, COLL__CTR_POSTED, step + 1);
    return 0;
}

static int rs_reduce(coll_comm_t *c, const hier_job_t *j, size_t t)
{
    coll__shm_t *sh = c->shm;
    uint32_t step = j->base + (uint32_t)t;
    /* Every rank waits, owner or not: a step is complete for a rank only
     * once all peers posted it (the inline one-shot relies on that). */
    int rc = coll__shm_wait_all_ctr(c, COLL__CTR_POSTED, step + 1);
    if (rc != 0)
        return rc;
    size_t off, n;
    if (sh->me < j->slices && piece_of(j, sh->me, t, &off, &n)) {
        const void **srcs = sh->srcs;
        size_t at = (size_t)sh->me * j->piece * j->esize;
        for (int p = 0; p < sh->nranks; p++)
            srcs[p] = p == sh->me ? (const void *)(j->send + off * j->esize)
                                  : (const void *)(coll__shm_slot(sh, p, step) + at);
        coll__reduce(j->dtype, j->recv + off * j->esize, NULL, srcs, sh->nranks,
                     n, j->scale, j->flags);
    }
    coll__shm_post_ctr(sh, COLL__CTR_REDUCED, step + 1);
    coll__shm_post_ctr(sh, COLL__CTR_DONE, step + 1);
    return 0;
}

static int hier_reduce_scatter(coll_comm_t *c, hier_job_t *j)
{
    coll__shm_t *sh = c->shm;
    j->piece = piece_elems(sh, j->esize, j->slices);
    size_t steps = coll__seg_total(coll__block_count(j->count, (size_t)j->slices, 0),
                                   j->piece);
    j->base = coll__shm_steps_take(sh, (uint32_t)steps);
    int rc = rs_post(c, j, 0);
    for (size_t t = 0; rc == 0 && t < steps; t++) {
        if (t + 1 < steps)
            rc = rs_post(c, j, t + 1);
        if (rc == 0)
            rc = rs_reduce(c, j, t);
    }
    return rc;
}

/* ---- phase 3: intra-host allgather of the S finished blocks ------------------ */

static int ag_post(coll_comm_t *c, const hier_job_t *j, size_t t)
{
    coll__shm_t *sh = c->shm;
    uint32_t step = j->base + (uint32_t)t;
    int rc = coll__shm_wait_slot_free(c, step);
    if (rc != 0)
        return rc;
    size_t off, n;
    if (sh->me < j->slices && piece_of(j, sh->me, t, &off, &n))
        memcpy(coll__shm_slot(sh, sh->me, step), j->recv + off * j->esize,
               n * j->esize);
    coll__shm_post_ctr(sh, COLL__CTR_POSTED, step + 1);
    return 0;
}

static int ag_copy(coll_comm_t *c, const hier_job_t *j, size_t t)
{
    coll__shm_t *sh = c->shm;
    uint32_t step = j->base + (uint32_t)t;
    int rc = coll__shm_wait_all_ctr(c, COLL__CTR_POSTED, step + 1);
    if (rc != 0)
        return rc;
    for (int b = 0; b < j->slices; b++) {
        size_t off, n;
        if (b == sh->me || !piece_of(j, b, t, &off, &n))
            continue;
        memcpy(j->recv + off * j->esize, coll__shm_slot(sh, b, step),
               n * j->esize);
    }
    coll__shm_post_ctr(sh, COLL__CTR_REDUCED, step + 1);
    coll__shm_post_ctr(sh, COLL__CTR_DONE, step + 1);
    return 0;
}

static int hier_allgather(coll_comm_t *c, hier_job_t *j)
{
    coll__shm_t *sh = c->shm;
    j->piece = piece_elems(sh, j->esize, 1);
    size_t steps = coll__seg_total(coll__block_count(j->count, (size_t)j->slices, 0),
                                   j->piece);
    j->base = coll__shm_steps_take(sh, (uint32_t)steps);
    int rc = ag_post(c, j, 0);
    for (size_t t = 0; rc == 0 && t < steps; t++) {
        if (t + 1 < steps)
            rc = ag_post(c, j, t + 1);
        if (rc == 0)
            rc = ag_copy(c, j, t);
    }
    return rc;
}

int coll__allreduce_hier(coll_comm_t *comm, const void *sendbuf, void *recvbuf,
                         size_t count, coll_dtype_t dtype, coll_op_t op)
{
    if (comm->size == 1)
        return coll__allreduce_copy(comm, sendbuf, recvbuf, count, dtype, op);
    const int hosts = comm->host_count, slices = comm->hier.slices;
    const float scale = 1.0f / (float)comm->size;
    hier_job_t j = {
        .send = sendbuf,
        .recv = recvbuf,
        .count = count,
        .esize = coll_dtype_size(dtype),
        .dtype = dtype,
        .slices = slices,
        .scale = scale,
        /* With one host there is no ring to scale in. */
        .flags = hosts == 1 && op == COLL_AVG ? COLL__REDUCE_SCALE : 0,
    };
    int rc = 0;
    if (comm->local_size > 1)
        rc = hier_reduce_scatter(comm, &j);
    else if (sendbuf != recvbuf)
        memcpy(recvbuf, sendbuf, count * j.esize);
    if (rc == 0 && hosts > 1 && comm->local_rank < slices) {
        size_t off = coll__block_offset(count, (size_t)slices,
                                        (size_t)comm->local_rank) * j.esize;
        size_t n = coll__block_count(count, (size_t)slices,
                                     (size_t)comm->local_rank);
        char *block = (char *)recvbuf + off;
        rc = coll__ring_run(comm, comm->hier.slice_comm, comm->hier.slice_rank,
                            hosts, block, block, n, dtype, op, scale,
                            dtype == COLL_F32 ? comm->wire : dtype);
    }
    if (rc == 0 && comm->local_size > 1)
        rc = hier_allgather(comm, &j);
    return rc;
}
