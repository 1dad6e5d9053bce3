/* collectives: intra-host shared-memory allreduce (optimised CPU path).
 *
 * At communicator creation the ranks of each host map one POSIX shared-memory
 * segment per host (local rank 0 creates it with a unique name, every local
 * rank maps it pre-faulted, then the name is unlinked at once, so nothing is
 * left in /dev/shm even if a rank dies). Names carry the creator's pid, a
 * counter and the time, and are created with O_EXCL (retried on a clash),
 * so hosts whose ranks share one /dev/shm (simulated pods) never attach to
 * each other's segment. shm and shm_oneshot run only when every rank is on
 * one host; hier.c uses the per-host segments through the primitives at the
 * end of this file. The segment holds a block of counters per
 * rank (each counter on its own 128-byte line, so a write to one does not
 * steal the line a peer is polling for another) and nslots rotating slots of
 * slot_bytes for each rank's input plus one result slot. Vectors are
 * processed in segments that fit a slot; slots are small (256 KiB by
 * default) so the shared traffic stays in the caches and memory sees only the
 * caller's input read and output write.
 *
 * Synchronisation: per-rank monotonic step counters (C11 atomics, release on
 * post, acquire on wait), one per stage: POSTED (my input for step s is in my
 * slot), REDUCED (my block of step s is in the result slot), DONE (I have
 * read everything of step s, its slots may be reused). No barriers. A waiter
 * spins briefly, then yields, then sleeps on the counter with a futex (the
 * poster wakes sleepers only when some exist), so oversubscribed runs (5 ranks
 * on 2 cores) make progress. Every rank runs the same sequence of shm steps,
 * so its private step number equals everybody else's. A rank remembers the
 * last DONE it read from each peer and re-reads only when that is not
 * enough, which saves a cache miss per step.
 *
 * shm — two-shot (reduce-scatter + allgather through shared memory).
 *   Accepts: all ranks on one host (or one rank: a copy), any count, in
 *   place or not, every dtype/op.
 *   Per segment of S elements, cut into n blocks (blocks.h), rank r:
 *     post(s)    copy its input blocks j != r into its slot, POSTED = s+1
 *     reduce(s)  wait POSTED of all; block r = sum over ranks in rank order
 *                (its own input read directly, peers' from their slots),
 *                written to its output and to the result slot; REDUCED = s+1
 *     copy(s)    wait REDUCED of all; copy result blocks j != r to its output;
 *                DONE = s+1
 *   Software-pipelined: post(s+1) runs before reduce(s) and copy(s-1) after
 *   it, so each wait has one stage of slack; a slot is reused after nslots
 *   steps, once every rank's DONE has passed it.
 *   Memory traffic per rank for B bytes: B read (input), B written (output),
 *   about 2(n-1)/n * B through the shared cache. Out-of-place outputs
 *   >= nt_bytes are written with non-temporal stores (no read-for-ownership).
 *   Cost: ~3 cross-core handoffs per segment + B / memory bandwidth.
 *
 * shm_oneshot — every rank reduces the whole segment itself.
 *   Accepts: the same as shm.
 *   Per segment: copy the input into its slot, POSTED = s+1; wait POSTED of
 *   all; output = sum over ranks in rank order (its own input read directly,
 *   peers' from their slots); DONE = s+1. Software-pipelined like shm: the
 *   copy of segment s+1 is posted before segment s is reduced.
 *   Memory traffic per rank for B bytes: B read and B written (input, output),
 *   B written to its slot, (n-1) * B read from peers' slots. One handoff per
 *   segment and one pass over the output.
 *   Cost: ~1 handoff per segment + (n+2) * B / memory bandwidth. With two
 *   ranks this moves as many shared bytes as shm and wins at every size
 *   (measured 1.1-1.9x); with more ranks its reads grow with n.
 *   Vectors of at most INLINE_LINES * 60 bytes skip the slot: every 64-byte
 *   line carries 60 data bytes and the step's sequence number, so a reader
 *   polls all lines at once and gets data and flag in the same transfer (one
 *   cache-line handoff instead of flag then data; a handoff costs ~150-250 ns
 *   between the cores of the test host). Two such areas alternate by step
 *   parity; an area is rewritten two steps later, when every peer has posted
 *   the step in between and so has finished reading it (ranks run steps in
 *   order). The last line's sequence number is the futex word for sleepers.
 *
 * Both sum in rank order, so every rank (and both algorithms) produce
 * bitwise the same result.
 *
 * Step table, n = 2, three segments (P = post, R = reduce, C = copy-out):
 *   shm          rank 0 and rank 1:  P0 P1 R0 P2 R1 C0 R2 C1 C2
 *                (each reduces its own block of a segment)
 *   shm_oneshot  rank 0 and rank 1:  P0 P1 R0 P2 R1 R2
 *                (each reduces every element)
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "blocks.h"
#include "coll_internal.h"
#include "reduce.h"

#define SHM_MAGIC UINT64_C(0x72696e67746d7332) /* "ringtms2" */
#define DEFAULT_SLOT_BYTES ((size_t)256 << 10)
#define DEFAULT_NSLOTS 4
#define MIN_SLOT_BYTES ((size_t)16 << 10)
#define MAX_DATA_BYTES ((size_t)32 << 20) /* fits a pod's default /dev/shm */
#define DEFAULT_NT_BYTES ((size_t)1 << 20)
#define HEADER_BYTES 128
#define INLINE_LINES 16
#define LINE_DATA 60
#define INLINE_BYTES (INLINE_LINES * LINE_DATA)

typedef struct {
    uint64_t magic;
    uint64_t slot_bytes;
    uint32_t nranks;
    uint32_t nslots;
} shm_header_t;

/* 128-byte lines: the adjacent-line prefetcher pulls pairs of 64-byte lines,
 * so 128 keeps two counters from sharing a transfer. */
typedef struct {
    _Alignas(128) _Atomic uint32_t value;
} shm_counter_t;

typedef struct {
    _Alignas(64) _Atomic uint32_t seq;
    unsigned char data[LINE_DATA];
} shm_line_t;

typedef struct {
    _Alignas(128) shm_line_t line[INLINE_LINES];
} shm_inline_t;

struct coll__shm_rank {
    shm_counter_t posted, reduced, done;
    shm_inline_t inl[2];
    _Alignas(128) _Atomic uint32_t waiters; /* peers asleep on our counters */
    int32_t pid;
};

static inline _Atomic uint32_t *ctr_of(struct coll__shm_rank *r, int which)
{
    switch (which) {
    case COLL__CTR_POSTED:
        return &r->posted.value;
    case COLL__CTR_REDUCED:
        return &r->reduced.value;
    case COLL__CTR_DONE:
        return &r->done.value;
    case COLL__CTR_INLINE0:
        return &r->inl[0].line[INLINE_LINES - 1].seq;
    default:
        return &r->inl[1].line[INLINE_LINES - 1].seq;
    }
}

static size_t env_size(const char *name, size_t fallback)
{
    const char *text = getenv(name);
    uint64_t v = 0;
    if (text == NULL || rt_parse_u64(text, 0, UINT64_MAX, 1, &v) != 0)
        return fallback;
    return (size_t)v;
}

static size_t data_offset(int nranks)
{
    return rt_align_up(HEADER_BYTES + (size_t)nranks * sizeof(struct coll__shm_rank),
                       4096);
}

/* Local rank 0: create, size, pre-fault and initialise the segment. */
static void *segment_make(char *name, size_t namelen, size_t bytes,
                          int nranks, int nslots, size_t slot_bytes)
{
    static unsigned serial;
    int fd = -1;
    for (int attempt = 0; attempt < 8 && fd < 0; attempt++) {
        snprintf(name, namelen, "/ringtrain-%ld-%u-%lx", (long)getpid(),
                 serial++, (unsigned long)(rt_now() * 1e9));
        fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        rt_log_warn("collectives: shm_open(%s): %s", name, strerror(errno));
        name[0] = '\0';
        return NULL;
    }
    void *map = MAP_FAILED;
    int err = 0;
    if (ftruncate(fd, (off_t)bytes) != 0)
        err = errno;
    else
        err = posix_fallocate(fd, 0, (off_t)bytes); /* ENOSPC, not SIGBUS */
    if (err == 0)
        map = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_POPULATE, fd, 0);
    if (err == 0 && map == MAP_FAILED)
        err = errno;
    close(fd);
    if (err != 0) {
        rt_log_warn("collectives: cannot create a %zu-byte shared-memory "
                    "segment in /dev/shm (%s); falling back to MPI algorithms",
                    bytes, strerror(err));
        shm_unlink(name);
        name[0] = '\0';
        return NULL;
    }
    memset(map, 0, bytes); /* touches every page now, not in a collective */
    shm_header_t *h = map;
    h->slot_bytes = slot_bytes;
    h->nranks = (uint32_t)nranks;
    h->nslots = (uint32_t)nslots;
    h->magic = SHM_MAGIC;
    return map;
}

static void *segment_attach(const char *name, size_t *bytes)
{
    int fd = shm_open(name, O_RDWR, 0);
    if (fd < 0) {
        rt_log_warn("collectives: shm_open(%s): %s", name, strerror(errno));
        return NULL;
    }
    struct stat st;
    void *map = MAP_FAILED;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
        *bytes = (size_t)st.st_size;
        map = mmap(NULL, *bytes, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_POPULATE, fd, 0);
    }
    close(fd);
    if (map == MAP_FAILED) {
        rt_log_warn("collectives: cannot map %s: %s", name, strerror(errno));
        return NULL;
    }
    return map;
}

int coll__shm_create(coll_comm_t *c)
{
    c->shm = NULL;
    if (c->size < 2)
        return 0;
    /* Every host with two or more ranks gets its own segment (the
     * hierarchical allreduce uses them); a rank alone on its host needs
     * none but still votes below, since the vote is over every rank. */
    const int nranks = c->local_size;
    const int local = nranks >= 2;
    const char *disable = getenv("RINGTRAIN_SHM");
    int want = !(disable && strcmp(disable, "0") == 0);

    char name[96] = "";
    void *map = NULL;
    size_t bytes = 0;
    if (local && c->local_rank == 0 && want) {
        size_t slot = env_size("RINGTRAIN_SHM_SLOT_BYTES", DEFAULT_SLOT_BYTES);
        size_t nslots = env_size("RINGTRAIN_SHM_SLOTS", DEFAULT_NSLOTS);
        if (nslots < 3)
            nslots = 3; /* the pipeline keeps three steps in flight */
        if (nslots > 64)
            nslots = 64;
        slot = rt_align_up(slot < MIN_SLOT_BYTES ? MIN_SLOT_BYTES : slot, 4096);
        while (slot > MIN_SLOT_BYTES &&
               nslots * (size_t)(nranks + 1) * slot > MAX_DATA_BYTES)
            slot /= 2;
        bytes = data_offset(nranks) + nslots * (size_t)(nranks + 1) * slot;
        map = segment_make(name, sizeof name, bytes, nranks, (int)nslots, slot);
    }
    if (local)
        COLL__MPI_CHECK(MPI_Bcast(name, (int)sizeof name, MPI_CHAR, 0,
                                  c->local_comm));
    if (local && c->local_rank != 0 && name[0] != '\0') {
        map = segment_attach(name, &bytes);
        if (map != NULL && ((shm_header_t *)map)->magic != SHM_MAGIC) {
            munmap(map, bytes);
            map = NULL;
        }
    }
    int ok = want && (!local || map != NULL), all_ok = 0;
    int rc = MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, c->comm);
    if (c->local_rank == 0 && name[0] != '\0')
        shm_unlink(name); /* everyone has attached (or given up) */
    if (rc != MPI_SUCCESS) {
        if (map)
            munmap(map, bytes);
        return coll__mpi_fail(__FILE__, __LINE__, "MPI_Allreduce", rc);
    }
    if (!all_ok) {
        if (map)
            munmap(map, bytes);
        if (c->rank == 0 && want)
            rt_log_warn("collectives: shared memory unavailable on some rank; "
                        "using MPI algorithms only");
        return 0;
    }
    if (!local)
        return 0;

    const shm_header_t *h = map;
    coll__shm_t *sh = calloc(1, sizeof *sh);
    if (sh != NULL) {
        sh->seen_done = calloc((size_t)nranks, sizeof *sh->seen_done);
        sh->srcs = calloc((size_t)nranks, sizeof *sh->srcs);
        sh->scratch = rt_alloc_aligned((size_t)nranks * INLINE_BYTES, 64);
    }
    if (sh == NULL || sh->seen_done == NULL || sh->srcs == NULL ||
        sh->scratch == NULL) {
        if (sh) {
            free(sh->seen_done);
            free(sh->srcs);
            rt_free_aligned(sh->scratch);
        }
        free(sh);
        munmap(map, bytes);
        return RT_ENOMEM;
    }
    sh->base = map;
    sh->bytes = bytes;
    sh->ranks = (struct coll__shm_rank *)((char *)map + HEADER_BYTES);
    sh->data = (char *)map + data_offset(nranks);
    sh->slot_bytes = (size_t)h->slot_bytes;
    sh->nslots = (int)h->nslots;
    sh->nranks = nranks;
    sh->me = c->local_rank;
    sh->step = 0;
    /* ~0.5 ms of pause loops (26 ns each here) before yielding. On a busy
     * host a peer is often preempted for less than that, and sleeping hands
     * the core to the competitor: with ~100 us, 64 MiB allreduces took
     * 19-24 ms instead of 8-21 ms under load. (Open MPI polls forever.)
     * Where the CPUs are full (oversubscribed, or the ranks' compute threads
     * fill them, cores_busy) the spin is ~2 us: a wait then runs beside its
     * own rank's backward pass, and spinning takes that core from it. */
    sh->spin = (int)env_size("RINGTRAIN_SHM_SPIN", c->cores_busy ? 64 : 20000);
    sh->nt_bytes = env_size("RINGTRAIN_SHM_NT_BYTES", DEFAULT_NT_BYTES);
    sh->ranks[sh->me].pid = (int32_t)getpid();
    c->shm = sh;
    return 0;
}

void coll__shm_destroy(coll_comm_t *c)
{
    if (c->shm == NULL)
        return;
    munmap(c->shm->base, c->shm->bytes);
    free(c->shm->seen_done);
    free(c->shm->srcs);
    rt_free_aligned(c->shm->scratch);
    free(c->shm);
    c->shm = NULL;
}

/* ---- counters --------------------------------------------------------------- */

static inline int reached(uint32_t value, uint32_t target)
{
    return (int32_t)(value - target) >= 0;
}

static inline void cpu_relax(void) { __builtin_ia32_pause(); }

static const char *const ctr_names[COLL__CTR_COUNT] = {
    "posted", "reduced", "done", "inline data", "inline data"};

static void shm_post(coll__shm_t *sh, int which, uint32_t value)
{
    struct coll__shm_rank *me = &sh->ranks[sh->me];
    _Atomic uint32_t *ctr = ctr_of(me, which);
    atomic_store_explicit(ctr, value, memory_order_seq_cst);
    if (atomic_load_explicit(&me->waiters, memory_order_seq_cst) != 0)
        syscall(SYS_futex, (uint32_t *)ctr, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static int __attribute__((noinline))
shm_wait_slow(coll_comm_t *c, coll__shm_t *sh, int peer, int which,
              uint32_t target)
{
    struct coll__shm_rank *pr = &sh->ranks[peer];
    _Atomic uint32_t *ctr = ctr_of(pr, which);
    double start = rt_now();
    for (unsigned it = 0;; it++) {
        if (it < 16) {
            sched_yield();
        } else {
            /* Announce the sleep, then re-check: the poster stores the
             * counter before it reads waiters (both seq_cst), so either it
             * sees us or we see its value. The timeout bounds any miss. */
            atomic_fetch_add_explicit(&pr->waiters, 1, memory_order_seq_cst);
            uint32_t v = atomic_load_explicit(ctr, memory_order_seq_cst);
            if (!reached(v, target)) {
                struct timespec ts = {0, 2 * 1000 * 1000};
                syscall(SYS_futex, (uint32_t *)ctr, FUTEX_WAIT, v, &ts, NULL, 0);
            }
            atomic_fetch_sub_explicit(&pr->waiters, 1, memory_order_seq_cst);
        }
        if (reached(atomic_load_explicit(ctr, memory_order_acquire), target))
            return 0;
        if (c->stall_timeout > 0.0 && (it & 15) == 15) {
            double waited = rt_now() - start;
            if (waited > c->stall_timeout) {
                rt_log_error("collectives: rank %d waited %.1f s for local rank "
                             "%d (pid %d) to reach shm step %u (%s); it has not "
                             "joined this allreduce (stall_timeout)",
                             c->rank, waited, peer, (int)pr->pid, target,
                             ctr_names[which]);
                return RT_ETIMEDOUT;
            }
        }
    }
}

static inline int shm_wait(coll_comm_t *c, coll__shm_t *sh, int peer,
                           int which, uint32_t target)
{
    _Atomic uint32_t *ctr = ctr_of(&sh->ranks[peer], which);
    if (reached(atomic_load_explicit(ctr, memory_order_acquire), target))
        return 0;
    for (int i = 0; i < sh->spin; i++) {
        cpu_relax();
        if (reached(atomic_load_explicit(ctr, memory_order_acquire), target))
            return 0;
    }
    return shm_wait_slow(c, sh, peer, which, target);
}

static int shm_wait_all(coll_comm_t *c, coll__shm_t *sh, int which,
                        uint32_t target)
{
    for (int p = 0; p < sh->nranks; p++) {
        if (p == sh->me)
            continue;
        int rc = shm_wait(c, sh, p, which, target);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Slot reuse: every peer has finished step target - 1. Usually known from an
 * earlier read, so no cache miss. */
static int shm_wait_done(coll_comm_t *c, coll__shm_t *sh, uint32_t target)
{
    for (int p = 0; p < sh->nranks; p++) {
        if (p == sh->me || reached(sh->seen_done[p], target))
            continue;
        int rc = shm_wait(c, sh, p, COLL__CTR_DONE, target);
        if (rc != 0)
            return rc;
        sh->seen_done[p] = atomic_load_explicit(&sh->ranks[p].done.value,
                                                memory_order_acquire);
    }
    return 0;
}

static inline char *in_slot(const coll__shm_t *sh, int rank, uint32_t step)
{
    size_t slot = step % (uint32_t)sh->nslots;
    return sh->data + (slot * (size_t)(sh->nranks + 1) + (size_t)rank) *
                          sh->slot_bytes;
}

static inline char *res_slot(const coll__shm_t *sh, uint32_t step)
{
    return in_slot(sh, sh->nranks, step);
}

/* ---- two-shot ------------------------------------------------------------------ */

typedef struct {
    const char *send;
    char *recv;
    size_t count;
    size_t seg;      /* elements per segment */
    size_t esize;
    coll_dtype_t dtype;
    float scale;
    int rflags;      /* reduce flags */
    int cflags;      /* copy flags */
    uint32_t base;   /* step of segment 0 */
} shm_job_t;

/* Elements per segment: a slot, cut so that the n blocks of a full segment
 * are whole multiples of 64 bytes (aligned vectors, no false sharing). */
static size_t shm_seg_elems(const coll__shm_t *sh, size_t esize)
{
    size_t unit = (size_t)sh->nranks * 64;
    size_t bytes = sh->slot_bytes >= unit ? sh->slot_bytes / unit * unit
                                          : sh->slot_bytes;
    return bytes / esize;
}

static int twoshot_post(coll_comm_t *c, coll__shm_t *sh, const shm_job_t *j,
                        size_t s)
{
    uint32_t step = j->base + (uint32_t)s;
    int rc = shm_wait_done(c, sh, step - (uint32_t)sh->nslots + 1);
    if (rc != 0)
        return rc;
    size_t scount = coll__seg_count(j->count, j->seg, s);
    size_t n = (size_t)sh->nranks, me = (size_t)sh->me;
    size_t boff = coll__block_offset(scount, n, me) * j->esize;
    size_t bend = boff + coll__block_count(scount, n, me) * j->esize;
    const char *src = j->send + s * j->seg * j->esize;
    char *slot = in_slot(sh, sh->me, step);
    memcpy(slot, src, boff);
    memcpy(slot + bend, src + bend, scount * j->esize - bend);
    shm_post(sh, COLL__CTR_POSTED, step + 1);
    return 0;
}

static int twoshot_reduce(coll_comm_t *c, coll__shm_t *sh, const shm_job_t *j,
                          size_t s)
{
    uint32_t step = j->base + (uint32_t)s;
    int rc = shm_wait_all(c, sh, COLL__CTR_POSTED, step + 1);
    if (rc != 0)
        return rc;
    size_t scount = coll__seg_count(j->count, j->seg, s);
    size_t n = (size_t)sh->nranks, me = (size_t)sh->me;
    size_t boff = coll__block_offset(scount, n, me);
    size_t bcount = coll__block_count(scount, n, me);
    size_t seg_off = s * j->seg;
    const void **srcs = sh->srcs;
    for (int p = 0; p < sh->nranks; p++)
        srcs[p] = p == sh->me ? (const void *)(j->send + (seg_off + boff) * j->esize)
                              : (const void *)(in_slot(sh, p, step) + boff * j->esize);
    coll__reduce(j->dtype, j->recv + (seg_off + boff) * j->esize,
                 res_slot(sh, step) + boff * j->esize, srcs, sh->nranks,
                 bcount, j->scale, j->rflags);
    shm_post(sh, COLL__CTR_REDUCED, step + 1);
    return 0;
}

static int twoshot_copy(coll_comm_t *c, coll__shm_t *sh, const shm_job_t *j,
                        size_t s)
{
    uint32_t step = j->base + (uint32_t)s;
    int rc = shm_wait_all(c, sh, COLL__CTR_REDUCED, step + 1);
    if (rc != 0)
        return rc;
    size_t scount = coll__seg_count(j->count, j->seg, s);
    size_t n = (size_t)sh->nranks, me = (size_t)sh->me;
    size_t boff = coll__block_offset(scount, n, me) * j->esize;
    size_t bend = boff + coll__block_count(scount, n, me) * j->esize;
    char *dst = j->recv + s * j->seg * j->esize;
    const char *res = res_slot(sh, step);
    coll__copy(dst, res, boff, j->cflags);
    coll__copy(dst + bend, res + bend, scount * j->esize - bend, j->cflags);
    shm_post(sh, COLL__CTR_DONE, step + 1);
    return 0;
}

static void job_init(shm_job_t *j, const coll__shm_t *sh, const void *sendbuf,
                     void *recvbuf, size_t count, coll_dtype_t dtype,
                     coll_op_t op)
{
    j->send = sendbuf;
    j->recv = recvbuf;
    j->count = count;
    j->esize = coll_dtype_size(dtype);
    j->dtype = dtype;
    j->seg = shm_seg_elems(sh, j->esize);
    j->scale = 1.0f / (float)sh->nranks;
    j->rflags = op == COLL_AVG ? COLL__REDUCE_SCALE : 0;
    j->cflags = 0;
    /* Streaming stores skip the read-for-ownership of output lines; in place
     * those lines were just read as input and sit in the cache, where a
     * plain store is cheaper and leaves them there for the next reader. */
    if (count * j->esize >= sh->nt_bytes && sendbuf != recvbuf) {
        j->rflags |= COLL__REDUCE_NT;
        j->cflags |= COLL__REDUCE_NT;
    }
    j->base = sh->step;
}

int coll__allreduce_shm(coll_comm_t *comm, const void *sendbuf, void *recvbuf,
                        size_t count, coll_dtype_t dtype, coll_op_t op)
{
    if (comm->size == 1)
        return coll__allreduce_copy(comm, sendbuf, recvbuf, count, dtype, op);
    coll__shm_t *sh = comm->shm;
    shm_job_t j;
    job_init(&j, sh, sendbuf, recvbuf, count, dtype, op);
    size_t nseg = coll__seg_total(count, j.seg);
    sh->step = j.base + (uint32_t)nseg;
    int rc = twoshot_post(comm, sh, &j, 0);
    for (size_t s = 0; rc == 0 && s < nseg; s++) {
        if (s + 1 < nseg)
            rc = twoshot_post(comm, sh, &j, s + 1);
        if (rc == 0)
            rc = twoshot_reduce(comm, sh, &j, s);
        if (rc == 0 && s > 0)
            rc = twoshot_copy(comm, sh, &j, s - 1);
    }
    if (rc == 0)
        rc = twoshot_copy(comm, sh, &j, nseg - 1);
    return rc;
}

/* ---- one-shot ------------------------------------------------------------------ */

/* A vector of at most INLINE_BYTES, in lines that carry their own flag. */
static int oneshot_inline(coll_comm_t *comm, coll__shm_t *sh,
                          const shm_job_t *j)
{
    const uint32_t step = j->base, want = step + 1;
    const int area = (int)(step & 1);
    const int which = area ? COLL__CTR_INLINE1 : COLL__CTR_INLINE0;
    const size_t bytes = j->count * j->esize;
    const int nlines = (int)((bytes + LINE_DATA - 1) / LINE_DATA);
    struct coll__shm_rank *me = &sh->ranks[sh->me];
    shm_line_t *mine = me->inl[area].line;
    const unsigned char *src = (const unsigned char *)j->send;
    for (int k = 0; k < nlines; k++) {
        size_t off = (size_t)k * LINE_DATA;
        size_t n = bytes - off < LINE_DATA ? bytes - off : LINE_DATA;
        memcpy(mine[k].data, src + off, n);
        atomic_store_explicit(&mine[k].seq, want, memory_order_release);
    }
    /* The futex word: always the last line, whatever nlines is. */
    shm_post(sh, which, want);
    /* Keep the other counters within 2^31 of the step for later waits. */
    atomic_store_explicit(&me->posted.value, want, memory_order_relaxed);
    atomic_store_explicit(&me->reduced.value, want, memory_order_relaxed);

    /* Poll every line of every peer in one loop, so the transfers overlap. */
    int ready = 0;
    for (int spin = 0; spin <= sh->spin && !ready; spin++) {
        ready = 1;
        for (int p = 0; p < sh->nranks; p++) {
            if (p == sh->me)
                continue;
            const shm_line_t *lines = sh->ranks[p].inl[area].line;
            for (int k = 0; k < nlines; k++)
                ready &= atomic_load_explicit(&lines[k].seq,
                                              memory_order_acquire) == want;
        }
        if (!ready)
            cpu_relax();
    }
    if (!ready) {
        /* The last line is written last: once it is seen, all are. */
        int rc = shm_wait_all(comm, sh, which, want);
        if (rc != 0)
            return rc;
    }

    /* Unpack each peer's lines next to each other (private scratch). */
    const void **srcs = sh->srcs;
    for (int p = 0; p < sh->nranks; p++) {
        if (p == sh->me) {
            srcs[p] = src;
            continue;
        }
        unsigned char *dst = sh->scratch + (size_t)p * INLINE_BYTES;
        const shm_line_t *lines = sh->ranks[p].inl[area].line;
        for (int k = 0; k < nlines; k++) {
            size_t off = (size_t)k * LINE_DATA;
            size_t n = bytes - off < LINE_DATA ? bytes - off : LINE_DATA;
            memcpy(dst + off, lines[k].data, n);
        }
        srcs[p] = dst;
    }
    coll__reduce(j->dtype, j->recv, NULL, srcs, sh->nranks, j->count, j->scale,
                 j->rflags);
    shm_post(sh, COLL__CTR_DONE, want);
    return 0;
}

static int oneshot_post(coll_comm_t *c, coll__shm_t *sh, const shm_job_t *j,
                        size_t s)
{
    uint32_t step = j->base + (uint32_t)s;
    int rc = shm_wait_done(c, sh, step - (uint32_t)sh->nslots + 1);
    if (rc != 0)
        return rc;
    size_t scount = coll__seg_count(j->count, j->seg, s);
    memcpy(in_slot(sh, sh->me, step), j->send + s * j->seg * j->esize,
           scount * j->esize);
    shm_post(sh, COLL__CTR_POSTED, step + 1);
    return 0;
}

static int oneshot_reduce(coll_comm_t *c, coll__shm_t *sh, const shm_job_t *j,
                          size_t s)
{
    uint32_t step = j->base + (uint32_t)s;
    int rc = shm_wait_all(c, sh, COLL__CTR_POSTED, step + 1);
    if (rc != 0)
        return rc;
    size_t scount = coll__seg_count(j->count, j->seg, s);
    size_t off = s * j->seg * j->esize;
    const void **srcs = sh->srcs;
    for (int p = 0; p < sh->nranks; p++)
        srcs[p] = p == sh->me ? (const void *)(j->send + off)
                              : (const void *)in_slot(sh, p, step);
    coll__reduce(j->dtype, j->recv + off, NULL, srcs, sh->nranks, scount,
                 j->scale, j->rflags);
    /* Keep REDUCED in step with the others so a later two-shot never
     * compares against a counter 2^31 steps stale. */
    atomic_store_explicit(&sh->ranks[sh->me].reduced.value, step + 1,
                          memory_order_release);
    shm_post(sh, COLL__CTR_DONE, step + 1);
    return 0;
}

int coll__allreduce_shm_oneshot(coll_comm_t *comm, const void *sendbuf,
                                void *recvbuf, size_t count,
                                coll_dtype_t dtype, coll_op_t op)
{
    if (comm->size == 1)
        return coll__allreduce_copy(comm, sendbuf, recvbuf, count, dtype, op);
    coll__shm_t *sh = comm->shm;
    shm_job_t j;
    job_init(&j, sh, sendbuf, recvbuf, count, dtype, op);
    /* Plain stores: streaming ones measured no faster here (equal at 64-256
     * MiB, 10-15% slower at 1-4 MiB) and would evict the output. */
    j.rflags &= ~COLL__REDUCE_NT;
    if (count * j.esize <= INLINE_BYTES) {
        sh->step = j.base + 1;
        return oneshot_inline(comm, sh, &j);
    }
    j.seg = sh->slot_bytes / j.esize;
    size_t nseg = coll__seg_total(count, j.seg);
    sh->step = j.base + (uint32_t)nseg;
    /* Software pipeline: segment s+1 is in the slot before s is reduced, so
     * a peer that is a little behind finds its next input ready. */
    int rc = oneshot_post(comm, sh, &j, 0);
    for (size_t s = 0; rc == 0 && s < nseg; s++) {
        if (s + 1 < nseg)
            rc = oneshot_post(comm, sh, &j, s + 1);
        if (rc == 0)
            rc = oneshot_reduce(comm, sh, &j, s);
    }
    return rc;
}

/* ---- primitives for composite algorithms (hier.c) ---------------------------- */

uint32_t coll__shm_steps_take(coll__shm_t *sh, uint32_t nsteps)
{
    uint32_t base = sh->step;
    sh->step = base + nsteps;
    return base;
}

char *coll__shm_slot(const coll__shm_t *sh, int local_rank, uint32_t step)
{
    return in_slot(sh, local_rank, step);
}

void coll__shm_post_ctr(coll__shm_t *sh, int which, uint32_t value)
{
    shm_post(sh, which, value);
}

int coll__shm_wait_all_ctr(coll_comm_t *c, int which, uint32_t target)
{
    return shm_wait_all(c, c->shm, which, target);
}

int coll__shm_wait_slot_free(coll_comm_t *c, uint32_t step)
{
    coll__shm_t *sh = c->shm;
    return shm_wait_done(c, sh, step - (uint32_t)sh->nslots + 1);
}

int coll__shm_test_all_ctr(coll__shm_t *sh, int which, uint32_t target)
{
    for (int p = 0; p < sh->nranks; p++)
        if (p != sh->me &&
            !reached(atomic_load_explicit(ctr_of(&sh->ranks[p], which),
                                          memory_order_acquire), target))
            return 0;
    return 1;
}

int coll__shm_test_slot_free(coll__shm_t *sh, uint32_t step)
{
    uint32_t target = step - (uint32_t)sh->nslots + 1;
    for (int p = 0; p < sh->nranks; p++) {
        if (p == sh->me || reached(sh->seen_done[p], target))
            continue;
        sh->seen_done[p] = atomic_load_explicit(&sh->ranks[p].done.value,
                                                memory_order_acquire);
        if (!reached(sh->seen_done[p], target))
            return 0;
    }
    return 1;
}
