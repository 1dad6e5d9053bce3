/* collectives internal: the communicator, the algorithm table and what the
 * algorithm files share. Not installed; only collectives/ and its tests
 * include it. */
#ifndef RINGTRAIN_COLLECTIVES_INTERNAL_H
#define RINGTRAIN_COLLECTIVES_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "collectives.h"
#include "common/common.h"

/* ---- algorithms ----------------------------------------------------------- */

/* Every allreduce algorithm has this signature. sendbuf == recvbuf means in
 * place (COLL_IN_PLACE is resolved before). count > 0, buffers valid, dtype
 * and op valid. Runs on the thread that currently owns the communicator
 * (the progress thread, or a blocking caller while the progress thread is
 * idle). Returns 0 or RT_E... */
typedef int (*coll__allreduce_fn)(coll_comm_t *comm, const void *sendbuf,
                                  void *recvbuf, size_t count,
                                  coll_dtype_t dtype, coll_op_t op);

enum {
    COLL__ALGO_COPY = 0,
    COLL__ALGO_RING,
    COLL__ALGO_RD,
    COLL__ALGO_SHM,
    COLL__ALGO_SHM_ONESHOT,
    COLL__ALGO_MPI,
    COLL__ALGO_HIER,
    COLL__ALGO_NCCL, /* device buffers only (CUDA mode); see cuda.c */
    COLL__ALGO_COUNT
};

typedef struct {
    const char *name;
    coll__allreduce_fn fn;
    int needs_shm; /* every rank on one host, shared segment mapped */
    const char *staged_name; /* its name when CUDA mode stages through host */
} coll__algo_t;

extern const coll__algo_t coll__algos[COLL__ALGO_COUNT];

int coll__allreduce_copy(coll_comm_t *comm, const void *sendbuf, void *recvbuf,
                         size_t count, coll_dtype_t dtype, coll_op_t op);
int coll__allreduce_ring(coll_comm_t *comm, const void *sendbuf, void *recvbuf,
                         size_t count, coll_dtype_t dtype, coll_op_t op);
int coll__allreduce_rd(coll_comm_t *comm, const void *sendbuf, void *recvbuf,
                       size_t count, coll_dtype_t dtype, coll_op_t op);
int coll__allreduce_shm(coll_comm_t *comm, const void *sendbuf, void *recvbuf,
                        size_t count, coll_dtype_t dtype, coll_op_t op);
int coll__allreduce_shm_oneshot(coll_comm_t *comm, const void *sendbuf,
                                void *recvbuf, size_t count,
                                coll_dtype_t dtype, coll_op_t op);
int coll__allreduce_mpi(coll_comm_t *comm, const void *sendbuf, void *recvbuf,
                        size_t count, coll_dtype_t dtype, coll_op_t op);
int coll__allreduce_hier(coll_comm_t *comm, const void *sendbuf, void *recvbuf,
                         size_t count, coll_dtype_t dtype, coll_op_t op);

/* ring.c: the ring over any MPI communicator (mc, this rank's rank in it,
 * its size n), in place or not. With avg, the sum is multiplied by scale
 * (which need not be 1/n: hier passes 1/total ranks). wire: the dtype sent
 * (dtype itself, or fp16/bf16 for an fp32 vector under compression). */
int coll__ring_run(coll_comm_t *comm, MPI_Comm mc, int rank, int n,
                   const void *sendbuf, void *recvbuf, size_t count,
                   coll_dtype_t dtype, coll_op_t op, float scale,
                   coll_dtype_t wire);
/* The table's entry for "nccl" on host buffers: fails (CUDA mode only). */
int coll__allreduce_nccl_unattached(coll_comm_t *comm, const void *sendbuf,
                                    void *recvbuf, size_t count,
                                    coll_dtype_t dtype, coll_op_t op);

/* select.c: the one place that chooses. */
int coll__algo_lookup(const char *name);        /* index or -1 */
int coll__algo_usable(const coll_comm_t *comm, int algo, const char **why);
int coll__select(const coll_comm_t *comm, size_t count, coll_dtype_t dtype);
/* Parses cfg->algorithm / RINGTRAIN_ALLREDUCE into comm->forced; logs the
 * valid names on an unknown one. */
int coll__select_init(coll_comm_t *comm, const char *cfg_algorithm);

/* ---- shared memory (shm.c) -------------------------------------------------- */

/* Counters each local rank publishes (shm.c lays them out). */
enum { COLL__CTR_POSTED = 0, COLL__CTR_REDUCED = 1, COLL__CTR_DONE = 2,
       COLL__CTR_INLINE0 = 3, COLL__CTR_INLINE1 = 4, COLL__CTR_COUNT = 5 };

struct coll__shm_rank;

typedef struct {
    void *base;
    size_t bytes;
    struct coll__shm_rank *ranks; /* [nranks], each written only by its rank */
    char *data;                   /* nslots * (nranks + 1) slots */
    size_t slot_bytes;
    int nslots;
    int nranks;
    int me;
    uint32_t step;   /* next step number, the same on every rank */
    int spin;        /* pause loops before yielding */
    size_t nt_bytes; /* outputs this large use non-temporal stores */
    uint32_t *seen_done;   /* [nranks]: last DONE value read from each peer */
    const void **srcs;     /* [nranks]: scratch for the reduction */
    unsigned char *scratch; /* [nranks][inline bytes]: unpacked peer data */
} coll__shm_t;

/* Collective over comm->comm: every host with two or more ranks maps its
 * own segment. Leaves comm->shm NULL (and returns 0) when shared memory is
 * not available on some host (after warning) or this rank is alone on its
 * host. */
int coll__shm_create(coll_comm_t *comm);
void coll__shm_destroy(coll_comm_t *comm);

/* Building blocks for algorithms that combine shared memory with MPI
 * (hier.c). A step is one use of every local rank's slot; all local ranks
 * take the same steps in the same order. Posting a counter publishes a
 * step's value (release); waiting returns once every other local rank's
 * counter reached target (acquire), honouring stall_timeout. A slot may be
 * rewritten at step s once coll__shm_wait_slot_free(s) returned, which
 * needs every local rank to have posted DONE for step s - nslots. */
uint32_t coll__shm_steps_take(coll__shm_t *sh, uint32_t nsteps);
char *coll__shm_slot(const coll__shm_t *sh, int local_rank, uint32_t step);
void coll__shm_post_ctr(coll__shm_t *sh, int which, uint32_t value);
int coll__shm_wait_all_ctr(coll_comm_t *comm, int which, uint32_t target);
int coll__shm_wait_slot_free(coll_comm_t *comm, uint32_t step);
/* The same two conditions without waiting: 1 when met, else 0. */
int coll__shm_test_all_ctr(coll__shm_t *sh, int which, uint32_t target);
int coll__shm_test_slot_free(coll__shm_t *sh, uint32_t step);

/* ---- hierarchical allreduce, host split, compression (hier.c, wire.c) ------ */

typedef struct {
    /* Local ranks below `slices` (the fewest ranks any host has) each own
     * one slice of the vector and run the inter-host ring for it with the
     * same local rank of every other host, over slice_comm (MPI_COMM_NULL
     * for the others). */
    MPI_Comm slice_comm;
    int slice_rank;     /* this rank's index in slice_comm (host order) */
    int slices;
    int max_local_size; /* most ranks any host has */
    int shm_ok;         /* every host with several ranks has its segment */
    int real_local_size; /* ranks on this machine before RINGTRAIN_HOST_SPLIT */
} coll__hier_t;

/* RINGTRAIN_HOST_SPLIT (testing aid): replaces comm->local_comm with a
 * split into fake hosts. Collective over comm->comm. */
int coll__host_split(coll_comm_t *comm);
/* Collective over comm->comm, after coll__shm_create. */
int coll__hier_create(coll_comm_t *comm);
void coll__hier_destroy(coll_comm_t *comm);
/* Validates cfg->compression into comm->wire and allocates the staging
 * segments it needs (after segment_bytes is set). */
int coll__wire_create(coll_comm_t *comm, coll_compression_t compression);
void coll__wire_destroy(coll_comm_t *comm);

/* ---- the communicator --------------------------------------------------------- */

enum {
    COLL__KIND_ALLREDUCE = 0,
    COLL__KIND_BARRIER,
    COLL__KIND_BCAST,
    COLL__KIND_F64,        /* op: COLL__F64_MAX / MIN / SUM */
    COLL__KIND_ALLGATHER_U64,
    COLL__KIND_EXCHANGE,   /* sendbuf: the exchange (p2p.c) */
};

enum { COLL__F64_MAX = 0, COLL__F64_MIN, COLL__F64_SUM };

/* Pipeline depth of the MPI ring (segments in flight per direction). */
#define COLL__RING_DEPTH 4

struct coll_comm {
    MPI_Comm comm;       /* our duplicate, MPI_ERRORS_RETURN */
    MPI_Comm local_comm; /* ranks on this host */
    int rank, size;
    int local_rank, local_size, host_count;
    int forced;          /* algorithm index, or -1 for automatic */
    size_t segment_bytes;
    size_t net_segment_bytes; /* segments of MPI messages between hosts
                                 (<= segment_bytes; comm.c says why) */
    size_t mpi_chunk_bytes; /* most bytes per MPI collective call */
    double stall_timeout;
    int caller_runs_mpi; /* see coll_config_t */
    int oversubscribed;  /* more local ranks than CPUs we may run on */
    int cores_busy;      /* oversubscribed, or compute threads fill the CPUs:
                            waits yield after a short spin */
    /* RT_E... after a failure that leaves peers unsynced. Set by the owner
     * thread (usually the progress thread), read by callers before they
     * queue work without taking mu: atomic (coll__broken, coll__set_broken). */
    atomic_int broken;

    MPI_Op op_sum16[COLL_DTYPE_COUNT]; /* user ops for fp16 / bf16 */
    char *tmp;           /* COLL__RING_DEPTH segments for ring / rd */
    MPI_Request *p2p_reqs; /* coll_exchange's requests, grown once */
    size_t p2p_cap;

    coll__shm_t *shm;    /* this host's segment; NULL when alone on the host
                          * or shared memory is unavailable */
    coll__hier_t hier;
    int compression;     /* coll_compression_t */
    coll_dtype_t wire;   /* dtype fp32 ring/hier traffic travels in */
    char *wire_tmp;      /* COLL__RING_DEPTH staged send segments */

    struct coll__cuda *cuda; /* CUDA mode (coll_comm_attach_cuda), or NULL */
    int cuda_nccl;       /* CUDA mode on NCCL (else staged through host) */

    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv_work;
    pthread_cond_t cv_done;
    coll_request_t *head, *tail;
    int busy;            /* someone executes a collective right now */
    int stop;
    uint64_t seq;
};

/* The communicator's failure state: 0, or the code every later call fails
 * with. Any thread may read it; the owner sets it. */
static inline int coll__broken(coll_comm_t *c)
{
    return atomic_load_explicit(&c->broken, memory_order_acquire);
}

static inline void coll__set_broken(coll_comm_t *c, int rc)
{
    atomic_store_explicit(&c->broken, rc, memory_order_release);
}

/* progress.c: runs one request on the current owner. */
int coll__execute(coll_comm_t *comm, coll_request_t *req);
int coll__progress_start(coll_comm_t *comm);
void coll__progress_stop(coll_comm_t *comm);
/* Runs req now (inline when idle, else queued behind earlier work) and
 * waits for it. */
int coll__run_blocking(coll_comm_t *comm, coll_request_t *req);
/* A finished request's status; for a stream-ordered GPU allreduce it also
 * orders the compute stream after it (coll__cuda_request_finish). */
int coll__request_seen_done(coll_request_t *req);

/* CUDA mode (cuda.c and nccl.c in builds with CUDA, cuda_none.c without).
 * Called only once comm->cuda is set, except _nccl_built and _destroy. */
/* Caller's thread, at the start of an allreduce: records req's ready event
 * on the compute stream. */
int coll__cuda_request_start(coll_comm_t *comm, coll_request_t *req);
/* Owner thread: runs an allreduce on device buffers to completion, or in
 * stream-ordered mode (NCCL) until it is queued on the device. */
int coll__cuda_allreduce(coll_comm_t *comm, coll_request_t *req);
/* Caller's thread, once an allreduce is seen done (coll_wait, coll_test,
 * coll_allreduce): in stream-ordered mode, makes the compute stream wait on
 * the device for its completion. 0 or RT_ECUDA. */
int coll__cuda_request_finish(coll_comm_t *comm, coll_request_t *req);
/* Owner thread with nothing else to run: 1 while stream-ordered allreduces
 * are queued but not seen finished (then call again soon), else 0. */
int coll__cuda_watching(const coll_comm_t *comm);
/* ... looks at them once: 0 all finished, 1 some still running, or an
 * error (NCCL's asynchronous error or stall_timeout: reported, the NCCL
 * communicator aborted, so the device work ends). */
int coll__cuda_watch(coll_comm_t *comm);
/* ... waits (polling as coll__cuda_watch) until none is left: 0 or the
 * error. Before a collective whose result the host reads (barrier,
 * broadcast, the f64 helpers), so a failure of queued work surfaces there. */
int coll__cuda_drain(coll_comm_t *comm);
void coll__cuda_destroy(coll_comm_t *comm);
/* 1 when this build has the NCCL backend. */
int coll__cuda_nccl_built(void);

/* MPI error reporting: "[host:rank] file:line call: <MPI's message>". */
int coll__mpi_fail(const char *file, int line, const char *call, int code);
#define COLL__MPI_CHECK(call)                                                  \
    do {                                                                       \
        int coll__rc_ = (call);                                                \
        if (coll__rc_ != MPI_SUCCESS)                                          \
            return coll__mpi_fail(__FILE__, __LINE__, #call, coll__rc_);       \
    } while (0)

/* p2p.c: runs a coll_exchange on the owning thread. */
int coll__exec_exchange(coll_comm_t *c, const void *exchange);

/* Waits for MPI requests; honours comm->stall_timeout. */
int coll__mpi_waitany(coll_comm_t *comm, int count, MPI_Request *reqs,
                      int *index);

/* Largest byte count one MPI call moves by default (keeps int counts far
 * from 2^31); RINGTRAIN_MPI_CHUNK_BYTES lowers it so tests can exercise the
 * chunking with small vectors. */
#define COLL__MPI_CHUNK_BYTES ((size_t)1 << 30)

#endif
