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
 *     2. MPI, over the j-th "slice" communicator (local rank j of every
 *        host), in place on block j: with two hosts one pipelined exchange
 *        (each side sends its block, adds the peer's), started segment by
 *        segment while phase 1 still runs, in segments of
 *        comm->net_segment_bytes (64 KiB: no rendezvous, comm.c); with more
 *        hosts the ring (ring.c). avg scales by 1/(all ranks) here. Under
 *        compression what crosses is fp16/bf16.
 *     3. shared memory: each owner copies pieces of its finished block into
 *        its slot; every other local rank copies them into recvbuf.
 *   Both shared-memory phases are software-pipelined like shm.c's two-shot
 *   (the copy for step t+1 is posted before step t is consumed), over the
 *   host's own segment (shm.c creates one per host). With two hosts phase 3
 *   also overlaps phase 2: an owner publishes each piece of its block as
 *   the exchange sums it, in a loop that only polls (hier_allgather_overlap),
 *   since a blocking wait on a local peer while its own exchange needs
 *   progress could close a cycle of waits across the hosts; it finishes
 *   with the blocking pipeline once its exchange is done. With more hosts
 *   phase 3 follows the ring (phase 1's waits never depend on the network).
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
 *   phase 2   0 <-> 2 exchange b0 sums  1 <-> 3 exchange b1 sums
 *             (each: B/2 each way, started during phase 1)
 *   phase 3   rank 0 <- b1 from rank 1  rank 1 <- b0 from rank 0
 *             rank 2 <- b1 from rank 3  rank 3 <- b0 from rank 2
 *
 * RINGTRAIN_HOST_SPLIT=K (testing aid): split each real host's ranks into K
 * fake hosts, by blocks of local ranks (K:cyclic: local rank % K), so tests
 * on one machine exercise every multi-host path: per-host segments, hier,
 * ring across "hosts". The fake hosts still share memory and an MPI
 * transport; only the topology the collectives see changes.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
        c->cores_busy = 1;
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

/* ---- phase 2 between two hosts: one pipelined exchange ----------------------- */

#define PAIR_TAG 0x4858

/* With two hosts the ring's reduce-scatter and allgather steps (each moving
 * half the block each way, with a drain between them) become one exchange:
 * each side sends its whole block to the other and adds what arrives. The
 * same bytes cross the link each way, in one pipeline with no synchronisation
 * in the middle, and it starts while phase 1 is still running: a segment is
 * sent as soon as phase 1 has finished it. Segment s of the send and of the
 * receive share a slot; the slot's sum is formed (in place, over the segment
 * just sent) once both completed. Both sides add the same two values
 * (a + b == b + a in IEEE arithmetic; under compression each first rounds
 * its own segment through the wire type, as the peer receives it), so the
 * results are bitwise equal. */
typedef struct {
    coll_comm_t *c;
    MPI_Comm mc;
    int peer;
    char *buf;      /* the block, in place */
    size_t count;   /* elements in the block */
    coll_dtype_t dtype, wire;
    float scale;
    int scale_flag;
    size_t seg;     /* elements per segment */
    size_t nseg;
    size_t next;    /* next segment to start */
    size_t ready;   /* elements phase 1 has finished */
    size_t done;    /* segments summed */
    MPI_Request req[2 * COLL__RING_DEPTH]; /* [k] receive, [D + k] send */
    size_t seg_of[COLL__RING_DEPTH];
    int pending[COLL__RING_DEPTH];         /* 0: slot free */
} pair_t;

static void pair_init(pair_t *x, coll_comm_t *c, char *buf, size_t count,
                      coll_dtype_t dtype, coll_op_t op, float scale,
                      coll_dtype_t wire)
{
    memset(x, 0, sizeof *x);
    x->c = c;
    x->mc = c->hier.slice_comm;
    x->peer = 1 - c->hier.slice_rank;
    x->buf = buf;
    x->count = count;
    x->dtype = dtype;
    x->wire = wire;
    x->scale = scale;
    x->scale_flag = op == COLL_AVG ? COLL__REDUCE_SCALE : 0;
    x->seg = c->net_segment_bytes / coll_dtype_size(dtype); /* comm.c: why */
    x->nseg = coll__seg_total(count, x->seg);
    for (int i = 0; i < 2 * COLL__RING_DEPTH; i++)
        x->req[i] = MPI_REQUEST_NULL;
}

/* Starts segment next in free slot k. */
static int pair_arm(pair_t *x, int k)
{
    const size_t esize = coll_dtype_size(x->dtype);
    const size_t wsize = coll_dtype_size(x->wire);
    size_t s = x->next++;
    size_t n = coll__seg_count(x->count, x->seg, s);
    const char *out = x->buf + s * x->seg * esize;
    x->seg_of[k] = s;
    COLL__MPI_CHECK(MPI_Irecv(x->c->tmp + (size_t)k * x->c->segment_bytes,
                              (int)(n * wsize), MPI_BYTE, x->peer, PAIR_TAG,
                              x->mc, &x->req[k]));
    if (x->wire != x->dtype) {
        char *w = x->c->wire_tmp + (size_t)k * x->seg * wsize;
        coll__convert(x->wire, w, x->dtype, out, n);
        out = w;
    }
    COLL__MPI_CHECK(MPI_Isend(out, (int)(n * wsize), MPI_BYTE, x->peer,
                              PAIR_TAG, x->mc, &x->req[COLL__RING_DEPTH + k]));
    x->pending[k] = 2;
    return 0;
}

/* Starts every segment phase 1 has finished, while slots are free. */
static int pair_start_ready(pair_t *x)
{
    for (int k = 0; k < COLL__RING_DEPTH && x->next < x->nseg; k++) {
        if (x->pending[k] != 0)
            continue;
        size_t end = (x->next + 1) * x->seg;
        if (end > x->count)
            end = x->count;
        if (end > x->ready)
            break;
        int rc = pair_arm(x, k);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* One finished request (index idx): sums its segment once both halves of
 * the slot are done, then refills free slots. */
static int pair_complete(pair_t *x, int idx)
{
    int k = idx % COLL__RING_DEPTH;
    if (--x->pending[k] > 0)
        return 0;
    const size_t esize = coll_dtype_size(x->dtype);
    size_t s = x->seg_of[k];
    size_t n = coll__seg_count(x->count, x->seg, s);
    char *own = x->buf + s * x->seg * esize;
    const char *got = x->c->tmp + (size_t)k * x->c->segment_bytes;
    if (x->wire != x->dtype) {
        coll__reduce_wire(x->wire, (float *)own, (const float *)own, got, n,
                          x->scale, x->scale_flag | COLL__REDUCE_ROUND_IN);
    } else {
        const void *srcs[2] = {own, got};
        coll__reduce(x->dtype, own, NULL, srcs, 2, n, x->scale, x->scale_flag);
    }
    x->done++;
    return pair_start_ready(x);
}

/* Phase 1 finished `ready` elements of the block: start what can start and
 * take what has completed, without blocking. */
static int pair_feed(pair_t *x, size_t ready)
{
    x->ready = ready;
    int rc = pair_start_ready(x);
    while (rc == 0) {
        int idx = MPI_UNDEFINED, flag = 0;
        COLL__MPI_CHECK(MPI_Testany(2 * COLL__RING_DEPTH, x->req, &idx, &flag,
                                    MPI_STATUS_IGNORE));
        if (!flag || idx == MPI_UNDEFINED)
            break;
        rc = pair_complete(x, idx);
    }
    return rc;
}

/* Elements of the block summed without a gap from its start: phase 3 may
 * publish them while the rest still crosses the link. */
static size_t pair_ready_elems(const pair_t *x)
{
    size_t first = x->next; /* no segment from here on has been summed */
    for (int k = 0; k < COLL__RING_DEPTH; k++)
        if (x->pending[k] != 0 && x->seg_of[k] < first)
            first = x->seg_of[k];
    size_t n = first * x->seg;
    return n < x->count ? n : x->count;
}

static int pair_finish(pair_t *x)
{
    int rc = pair_feed(x, x->count);
    while (rc == 0 && x->done < x->nseg) {
        int idx = 0;
        rc = coll__mpi_waitany(x->c, 2 * COLL__RING_DEPTH, x->req, &idx);
        if (rc == 0)
            rc = pair_complete(x, idx);
    }
    return rc;
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

/* pair: the exchange to start block piece by block piece as they are
 * reduced (NULL: none). */
static int hier_reduce_scatter(coll_comm_t *c, hier_job_t *j, pair_t *pair)
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
        if (rc == 0 && pair != NULL) {
            size_t ready = (t + 1) * j->piece;
            rc = pair_feed(pair, ready < pair->count ? ready : pair->count);
        }
    }
    return rc;
}

/* ---- phase 3: intra-host allgather of the S finished blocks ------------------ */

/* Step t's slot is free: publish this rank's finished piece t. */
static void ag_fill(coll__shm_t *sh, const hier_job_t *j, size_t t)
{
    uint32_t step = j->base + (uint32_t)t;
    size_t off, n;
    if (sh->me < j->slices && piece_of(j, sh->me, t, &off, &n))
        memcpy(coll__shm_slot(sh, sh->me, step), j->recv + off * j->esize,
               n * j->esize);
    coll__shm_post_ctr(sh, COLL__CTR_POSTED, step + 1);
}

static int ag_post(coll_comm_t *c, const hier_job_t *j, size_t t)
{
    int rc = coll__shm_wait_slot_free(c, j->base + (uint32_t)t);
    if (rc == 0)
        ag_fill(c->shm, j, t);
    return rc;
}

/* Every local rank posted step t: take the other blocks' pieces. */
static void ag_take(coll__shm_t *sh, const hier_job_t *j, size_t t)
{
    uint32_t step = j->base + (uint32_t)t;
    for (int b = 0; b < j->slices; b++) {
        size_t off, n;
        if (b == sh->me || !piece_of(j, b, t, &off, &n))
            continue;
        memcpy(j->recv + off * j->esize, coll__shm_slot(sh, b, step),
               n * j->esize);
    }
    coll__shm_post_ctr(sh, COLL__CTR_REDUCED, step + 1);
    coll__shm_post_ctr(sh, COLL__CTR_DONE, step + 1);
}

static int ag_copy(coll_comm_t *c, const hier_job_t *j, size_t t)
{
    int rc = coll__shm_wait_all_ctr(c, COLL__CTR_POSTED, j->base + (uint32_t)t + 1);
    if (rc == 0)
        ag_take(c->shm, j, t);
    return rc;
}

/* How the overlapped allgather waits when nothing moved. It must keep
 * polling the exchange (MPI), so it cannot sleep on a counter as shm.c's
 * waits do; it follows their steps otherwise: spin sh->spin rounds (or
 * yield each round where the cores are busy), then yield, and once nothing
 * has moved for OVERLAP_NAP_AFTER seconds, nap between polls: 1/16 of the
 * time waited so far (noticing the peer at most ~6% late), at most
 * OVERLAP_NAP_MAX (shm.c's futex waits time out after 2 ms), so a late
 * peer (forever with stall_timeout 0) costs no core. A healthy exchange
 * finishes a 64 KiB segment every ~0.5 ms even at 1 Gbit/s, so only a
 * stalled one naps. Returns RT_ETIMEDOUT once stall_timeout has passed,
 * else 0. */
#define OVERLAP_NAP_AFTER 1e-3
#define OVERLAP_NAP_MAX 1e-3

static int overlap_idle(coll_comm_t *c, unsigned long idle, double *since)
{
    if (idle == 0)
        *since = rt_now();
    if (idle < (unsigned long)c->shm->spin) {
        if (c->cores_busy)
            sched_yield();
        return 0;
    }
    double waited = rt_now() - *since;
    if (c->stall_timeout > 0.0 && waited > c->stall_timeout) {
        rt_log_error("collectives: rank %d waited %.1f s for its peer host's "
                     "data or a local rank's step in an allreduce; giving up "
                     "(stall_timeout)", c->rank, waited);
        return RT_ETIMEDOUT;
    }
    if (waited < OVERLAP_NAP_AFTER) {
        sched_yield();
        return 0;
    }
    double nap = waited / 16 < OVERLAP_NAP_MAX ? waited / 16 : OVERLAP_NAP_MAX;
    struct timespec ts = {0, (long)(nap * 1e9)};
    nanosleep(&ts, NULL);
    return 0;
}

/* Phase 3 while this owner's exchange still runs (two hosts): each piece
 * of the block is published as soon as the exchange has summed it, and the
 * peers' pieces taken as they appear. Nothing here blocks: the loop keeps
 * the exchange moving, so no rank waits on a local peer while its own
 * network transfer needs it (the cycle that blocking waits could close);
 * idle rounds go through overlap_idle.
 * Counts the steps it posted and took in *posted and *taken; once the
 * exchange has ended the caller finishes with blocking waits, which carry
 * the stall_timeout. */
static int hier_allgather_overlap(coll_comm_t *c, const hier_job_t *j,
                                  pair_t *pair, size_t steps, size_t *posted_out,
                                  size_t *taken_out)
{
    coll__shm_t *sh = c->shm;
    size_t posted = 0, taken = 0;
    int rc = 0;
    double idle_since = 0.0;
    for (unsigned long idle = 0; rc == 0 && taken < steps && pair->done < pair->nseg;) {
        size_t done_before = pair->done;
        int moved = 0;
        rc = pair_feed(pair, pair->count);
        if (rc != 0)
            break;
        /* Post one step ahead of the one being taken, as the blocking
         * pipeline does, once the piece is summed and its slot free. */
        size_t off, n, end = 0;
        if (posted < steps && posted <= taken + 1) {
            if (piece_of(j, sh->me, posted, &off, &n))
                end = off + n - coll__block_offset(j->count, (size_t)j->slices,
                                                   (size_t)sh->me);
            if (end <= pair_ready_elems(pair) &&
                coll__shm_test_slot_free(sh, j->base + (uint32_t)posted)) {
                ag_fill(sh, j, posted++);
                moved = 1;
            }
        }
        if (taken < posted &&
            coll__shm_test_all_ctr(sh, COLL__CTR_POSTED,
                                   j->base + (uint32_t)taken + 1)) {
            ag_take(sh, j, taken++);
            moved = 1;
        }
        if (moved || pair->done != done_before)
            idle = 0;
        else
            rc = overlap_idle(c, idle++, &idle_since);
    }
    *posted_out = posted;
    *taken_out = taken;
    return rc;
}

/* pair: this owner's exchange between two hosts, still running (NULL: none
 * or finished). */
static int hier_allgather(coll_comm_t *c, hier_job_t *j, pair_t *pair)
{
    coll__shm_t *sh = c->shm;
    j->piece = piece_elems(sh, j->esize, 1);
    size_t steps = coll__seg_total(coll__block_count(j->count, (size_t)j->slices, 0),
                                   j->piece);
    j->base = coll__shm_steps_take(sh, (uint32_t)steps);
    size_t posted = 0, t = 0;
    int rc = 0;
    if (pair != NULL) {
        rc = hier_allgather_overlap(c, j, pair, steps, &posted, &t);
        if (rc == 0)
            rc = pair_finish(pair);
    }
    /* Software pipeline: step t + 1 is posted before step t is taken. */
    for (; rc == 0 && t < steps; t++) {
        while (rc == 0 && posted < steps && posted <= t + 1)
            rc = ag_post(c, j, posted++);
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
    const int owner = comm->local_rank < slices;
    const float scale = 1.0f / (float)comm->size;
    const coll_dtype_t wire = dtype == COLL_F32 ? comm->wire : dtype;
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
    char *block = NULL;
    size_t bcount = 0;
    if (owner) {
        block = (char *)recvbuf +
                coll__block_offset(count, (size_t)slices,
                                   (size_t)comm->local_rank) * j.esize;
        bcount = coll__block_count(count, (size_t)slices,
                                   (size_t)comm->local_rank);
    }
    pair_t pair;
    pair_t *px = NULL;
    if (hosts == 2 && owner) {
        pair_init(&pair, comm, block, bcount, dtype, op, scale, wire);
        px = &pair;
    }

    int rc = 0;
    if (comm->local_size > 1)
        rc = hier_reduce_scatter(comm, &j, px);
    else if (sendbuf != recvbuf)
        memcpy(recvbuf, sendbuf, count * j.esize);
    /* With local peers, phase 3 runs alongside the exchange and ends it. */
    if (rc == 0 && px != NULL && comm->local_size == 1)
        rc = pair_finish(px);
    else if (rc == 0 && hosts > 2 && owner)
        rc = coll__ring_run(comm, comm->hier.slice_comm, comm->hier.slice_rank,
                            hosts, block, block, bcount, dtype, op, scale,
                            wire);
    if (rc == 0 && comm->local_size > 1)
        rc = hier_allgather(comm, &j, px);
    return rc;
}
