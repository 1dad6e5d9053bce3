/* collectives: the communicator (create, destroy, topology queries), argument
 * checking for every public call, and the small helper collectives programs
 * use instead of calling MPI themselves.
 *
 * Creation is the only phase in which the calling thread talks to MPI
 * directly; afterwards every MPI call goes through coll__execute() on
 * whichever thread owns the communicator at that moment (see progress.c).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coll_internal.h"
#include "reduce.h"

#define DEFAULT_SEGMENT_BYTES ((size_t)1 << 20)
/* Segments of the messages that cross hosts (the ring and hier's exchange
 * between hosts): 64 KiB less 64 bytes, under Open MPI's TCP eager limit
 * (btl_tcp_eager_limit, 64 KiB with its header). A larger segment goes by
 * rendezvous: the sender waits for the receiver's reply before the data
 * moves, and on a loaded link that reply queues behind the other direction's
 * bulk data, so the pipeline stalls. Measured (bench/README.md, 2 x 2 pods on
 * 1 Gbit/s): hier at 64 MiB 708 ms with 1 MiB segments, 572 ms with these
 * (its link bound is 561 ms). RINGTRAIN_NET_SEGMENT_BYTES sets another (raise
 * the eager limit with it); an explicit segment_bytes applies to both. */
#define DEFAULT_NET_SEGMENT_BYTES ((size_t)65472)
#define MAX_SEGMENT_BYTES ((size_t)1 << 30)

void coll_config_init(coll_config_t *cfg)
{
    if (cfg == NULL)
        return;
    cfg->algorithm = NULL;
    cfg->segment_bytes = 0;
    cfg->stall_timeout = 0.0;
    cfg->caller_runs_mpi = 0;
    cfg->compression = COLL_COMPRESS_NONE;
    cfg->compute_threads = 0;
}

int coll__mpi_fail(const char *file, int line, const char *call, int code)
{
    char text[MPI_MAX_ERROR_STRING] = "unknown MPI error";
    int len = 0;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "MPI error %d", code);
    rt_log_error("%s:%d %s: %s", file, line, call, text);
    return RT_EMPI;
}

size_t coll_dtype_size(coll_dtype_t dtype)
{
    switch (dtype) {
    case COLL_F32:
        return 4;
    case COLL_F16:
    case COLL_BF16:
        return 2;
    default:
        return 0;
    }
}

const char *coll_dtype_name(coll_dtype_t dtype)
{
    switch (dtype) {
    case COLL_F32:
        return "float";
    case COLL_F16:
        return "half";
    case COLL_BF16:
        return "bfloat16";
    default:
        return "unknown";
    }
}

const char *coll_op_name(coll_op_t op)
{
    switch (op) {
    case COLL_SUM:
        return "sum";
    case COLL_AVG:
        return "avg";
    default:
        return "unknown";
    }
}

int coll_comm_rank(const coll_comm_t *comm) { return comm ? comm->rank : -1; }
int coll_comm_size(const coll_comm_t *comm) { return comm ? comm->size : 0; }
int coll_comm_local_rank(const coll_comm_t *comm)
{
    return comm ? comm->local_rank : -1;
}
int coll_comm_local_size(const coll_comm_t *comm)
{
    return comm ? comm->local_size : 0;
}
int coll_comm_cores_busy(const coll_comm_t *comm)
{
    return comm ? comm->cores_busy : 0;
}

int coll_comm_host_count(const coll_comm_t *comm)
{
    return comm ? comm->host_count : 0;
}

/* User reduction for fp16 / bf16 in the `mpi` algorithm (MPI has no 16-bit
 * float types): inout = in + inout, summed in fp32. */
static void op_sum_f16(void *in, void *inout, int *len, MPI_Datatype *type)
{
    (void)type;
    const void *srcs[2] = {inout, in};
    coll__reduce(COLL_F16, inout, NULL, srcs, 2, (size_t)*len, 1.0f, 0);
}

static void op_sum_bf16(void *in, void *inout, int *len, MPI_Datatype *type)
{
    (void)type;
    const void *srcs[2] = {inout, in};
    coll__reduce(COLL_BF16, inout, NULL, srcs, 2, (size_t)*len, 1.0f, 0);
}

static int comm_setup_mpi(coll_comm_t *c, MPI_Comm mpi_comm)
{
    COLL__MPI_CHECK(MPI_Comm_dup(mpi_comm, &c->comm));
    COLL__MPI_CHECK(MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN));
    COLL__MPI_CHECK(MPI_Comm_rank(c->comm, &c->rank));
    COLL__MPI_CHECK(MPI_Comm_size(c->comm, &c->size));
    COLL__MPI_CHECK(MPI_Comm_split_type(c->comm, MPI_COMM_TYPE_SHARED, c->rank,
                                        MPI_INFO_NULL, &c->local_comm));
    int rc = coll__host_split(c);
    if (rc != 0)
        return rc;
    COLL__MPI_CHECK(MPI_Comm_set_errhandler(c->local_comm, MPI_ERRORS_RETURN));
    COLL__MPI_CHECK(MPI_Comm_rank(c->local_comm, &c->local_rank));
    COLL__MPI_CHECK(MPI_Comm_size(c->local_comm, &c->local_size));
    int leader = c->local_rank == 0;
    COLL__MPI_CHECK(MPI_Allreduce(&leader, &c->host_count, 1, MPI_INT, MPI_SUM,
                                  c->comm));
    COLL__MPI_CHECK(MPI_Op_create(op_sum_f16, 1, &c->op_sum16[COLL_F16]));
    COLL__MPI_CHECK(MPI_Op_create(op_sum_bf16, 1, &c->op_sum16[COLL_BF16]));
    return 0;
}

/* Every rank must force the same algorithm and cut the same segments, or
 * they would exchange differently shaped messages and hang. */
static int comm_check_agreement(coll_comm_t *c)
{
    enum { N = 5 };
    long mine[N] = {c->forced, (long)c->segment_bytes, (long)c->mpi_chunk_bytes,
                    c->compression, (long)c->net_segment_bytes};
    long lo[N], hi[N];
    COLL__MPI_CHECK(MPI_Allreduce(mine, lo, N, MPI_LONG, MPI_MIN, c->comm));
    COLL__MPI_CHECK(MPI_Allreduce(mine, hi, N, MPI_LONG, MPI_MAX, c->comm));
    int same = 1;
    for (int i = 0; i < N; i++)
        same = same && lo[i] == hi[i];
    if (!same) {
        rt_log_error("collectives: ranks disagree on the forced allreduce "
                     "algorithm, segment sizes or compression (rank %d: %s, %zu "
                     "bytes, %zu between hosts, %s); set RINGTRAIN_ALLREDUCE, "
                     "RINGTRAIN_NET_SEGMENT_BYTES and the config identically "
                     "everywhere",
                     c->rank,
                     c->forced >= 0 ? coll__algos[c->forced].name : "auto",
                     c->segment_bytes, c->net_segment_bytes,
                     coll_compression_name((coll_compression_t)c->compression));
        return RT_EMISMATCH;
    }
    return 0;
}

int coll_comm_create(coll_comm_t **out, MPI_Comm mpi_comm,
                     const coll_config_t *cfg)
{
    if (out == NULL)
        return RT_EINVAL;
    *out = NULL;
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (!inited || finalized) {
        rt_log_error("collectives: MPI is not initialised; call "
                     "MPI_Init_thread(..., MPI_THREAD_SERIALIZED, ...) first");
        return RT_EINVAL;
    }
    int provided = MPI_THREAD_SINGLE;
    MPI_Query_thread(&provided);
    if (provided < MPI_THREAD_SERIALIZED) {
        rt_log_error("collectives: MPI provides thread level %d but the "
                     "progress thread needs MPI_THREAD_SERIALIZED (%d) or "
                     "higher; initialise MPI with MPI_Init_thread(..., "
                     "MPI_THREAD_SERIALIZED, &provided)",
                     provided, MPI_THREAD_SERIALIZED);
        return RT_ENOTSUP;
    }
    if (mpi_comm == MPI_COMM_NULL)
        return RT_EINVAL;

    coll_config_t defaults;
    if (cfg == NULL) {
        coll_config_init(&defaults);
        cfg = &defaults;
    }
    if (cfg->segment_bytes != 0 &&
        (cfg->segment_bytes < 64 || cfg->segment_bytes > MAX_SEGMENT_BYTES)) {
        rt_log_error("collectives: segment_bytes %zu out of range [64, %zu]",
                     cfg->segment_bytes, MAX_SEGMENT_BYTES);
        return RT_EINVAL;
    }
    if (!(cfg->stall_timeout >= 0.0) || !isfinite(cfg->stall_timeout)) {
        rt_log_error("collectives: stall_timeout must be >= 0 seconds");
        return RT_EINVAL;
    }

    coll_comm_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return RT_ENOMEM;
    c->comm = MPI_COMM_NULL;
    c->local_comm = MPI_COMM_NULL;
    for (int d = 0; d < COLL_DTYPE_COUNT; d++)
        c->op_sum16[d] = MPI_OP_NULL;
    c->forced = -1;
    /* Multiple of 64 so every dtype's segments stay element- and
     * vector-aligned. */
    c->segment_bytes = cfg->segment_bytes ? rt_align_up(cfg->segment_bytes, 64)
                                          : DEFAULT_SEGMENT_BYTES;
    c->net_segment_bytes = cfg->segment_bytes || DEFAULT_NET_SEGMENT_BYTES > c->segment_bytes
                               ? c->segment_bytes
                               : DEFAULT_NET_SEGMENT_BYTES;
    /* A bad value fails every rank together below (agreement), never
     * leaving the others in a collective. */
    const char *net_env = getenv("RINGTRAIN_NET_SEGMENT_BYTES");
    int net_bad = 0;
    if (net_env != NULL && net_env[0] != '\0') {
        uint64_t v = 0;
        net_bad = rt_parse_u64(net_env, 64, c->segment_bytes, 1, &v) != 0;
        if (net_bad)
            rt_log_error("collectives: RINGTRAIN_NET_SEGMENT_BYTES=%s: expected "
                         "bytes in [64, %zu] (at most the segment size; K/M "
                         "suffixes allowed), or unset it", net_env,
                         c->segment_bytes);
        else
            c->net_segment_bytes = rt_align_up((size_t)v, 64);
    }
    c->stall_timeout = cfg->stall_timeout;
    c->caller_runs_mpi = cfg->caller_runs_mpi != 0;
    c->mpi_chunk_bytes = COLL__MPI_CHUNK_BYTES;
    const char *chunk_env = getenv("RINGTRAIN_MPI_CHUNK_BYTES");
    uint64_t chunk = 0;
    if (chunk_env && rt_parse_u64(chunk_env, 64, COLL__MPI_CHUNK_BYTES, 1,
                                  &chunk) == 0)
        c->mpi_chunk_bytes = rt_align_up((size_t)chunk, 64);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv_work, NULL);
    pthread_cond_init(&c->cv_done, NULL);

    c->hier.slice_comm = MPI_COMM_NULL;
    int rc = coll__wire_create(c, cfg->compression);
    if (rc != 0)
        goto fail;
    rc = comm_setup_mpi(c, mpi_comm);
    if (rc != 0)
        goto fail;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    c->oversubscribed = cpus > 0 && c->local_size > cpus;
    int ct = cfg ? cfg->compute_threads : 0;
    c->cores_busy = c->oversubscribed ||
                    (cpus > 0 && ct != 0 &&
                     (ct < 0 || (long)c->local_size * ct >= cpus));

    rc = coll__select_init(c, cfg->algorithm);
    int ok = rc == 0 && !net_bad, all_ok = 0;
    if (MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, c->comm) != MPI_SUCCESS)
        all_ok = 0;
    if (!all_ok) {
        rc = rc ? rc : RT_EINVAL;
        goto fail;
    }
    rc = comm_check_agreement(c);
    if (rc != 0)
        goto fail;

    c->tmp = rt_alloc_aligned(COLL__RING_DEPTH * c->segment_bytes, 64);
    if (c->tmp == NULL) {
        rc = RT_ENOMEM;
        goto fail;
    }
    rc = coll__shm_create(c);
    if (rc == 0)
        rc = coll__hier_create(c);
    if (rc != 0)
        goto fail;
    if (c->forced >= 0) {
        const char *why = NULL;
        if (!coll__algo_usable(c, c->forced, &why)) {
            if (c->rank == 0)
                rt_log_error("collectives: allreduce algorithm '%s' cannot run "
                             "here: %s",
                             coll__algos[c->forced].name, why);
            rc = RT_EINVAL;
            goto fail;
        }
    }
    rc = coll__progress_start(c);
    if (rc != 0)
        goto fail;
    *out = c;
    return 0;

fail:
    coll_comm_destroy(c);
    return rc;
}

void coll_comm_destroy(coll_comm_t *c)
{
    if (c == NULL)
        return;
    coll__progress_stop(c);
    coll__cuda_destroy(c);
    coll__shm_destroy(c);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized)
        coll__hier_destroy(c);
    coll__wire_destroy(c);
    if (!finalized) {
        for (int d = 0; d < COLL_DTYPE_COUNT; d++)
            if (c->op_sum16[d] != MPI_OP_NULL)
                MPI_Op_free(&c->op_sum16[d]);
        if (c->local_comm != MPI_COMM_NULL)
            MPI_Comm_free(&c->local_comm);
        if (c->comm != MPI_COMM_NULL)
            MPI_Comm_free(&c->comm);
    }
    rt_free_aligned(c->tmp);
    free(c->p2p_reqs);
    pthread_cond_destroy(&c->cv_done);
    pthread_cond_destroy(&c->cv_work);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void coll_abort(coll_comm_t *comm, int exit_code)
{
    MPI_Comm target = comm && comm->comm != MPI_COMM_NULL ? comm->comm
                                                          : MPI_COMM_WORLD;
    MPI_Abort(target, exit_code);
    _exit(exit_code ? exit_code : 1);
}

/* ---- argument checking ----------------------------------------------------- */

static int allreduce_prepare(coll_comm_t *c, const void *sendbuf, void *recvbuf,
                             size_t count, coll_dtype_t dtype, coll_op_t op,
                             coll_request_t *req)
{
    memset(req, 0, sizeof *req);
    req->comm = c;
    req->kind = COLL__KIND_ALLREDUCE;
    if (c == NULL) {
        rt_log_error("coll_allreduce: NULL communicator");
        return RT_EINVAL;
    }
    if ((int)dtype < 0 || dtype >= COLL_DTYPE_COUNT) {
        rt_log_error("coll_allreduce: unknown dtype %d (valid: 0 float, 1 "
                     "half, 2 bfloat16)", (int)dtype);
        return RT_EINVAL;
    }
    if ((int)op < 0 || op >= COLL_OP_COUNT) {
        rt_log_error("coll_allreduce: unknown op %d (valid: 0 sum, 1 avg)",
                     (int)op);
        return RT_EINVAL;
    }
    if (sendbuf == COLL_IN_PLACE)
        sendbuf = recvbuf;
    size_t esize = coll_dtype_size(dtype);
    if (count > SIZE_MAX / esize) {
        rt_log_error("coll_allreduce: count %zu overflows the address space",
                     count);
        return RT_ERANGE;
    }
    if (count > 0) {
        if (recvbuf == NULL || sendbuf == NULL) {
            rt_log_error("coll_allreduce: NULL %s with count %zu",
                         recvbuf == NULL ? "recvbuf" : "sendbuf", count);
            return RT_EINVAL;
        }
        uintptr_t s = (uintptr_t)sendbuf, r = (uintptr_t)recvbuf;
        size_t bytes = count * esize;
        if (s != r && s < r + bytes && r < s + bytes) {
            rt_log_error("coll_allreduce: sendbuf and recvbuf overlap but are "
                         "not the same buffer");
            return RT_EINVAL;
        }
    }
    int broken = coll__broken(c);
    if (broken != 0)
        return broken;
    req->sendbuf = sendbuf;
    req->recvbuf = recvbuf;
    req->count = count;
    req->dtype = (int)dtype;
    req->op = (int)op;
    req->algorithm = count ? coll__select(c, count, dtype) : -1;
    if (c->cuda && count)
        return coll__cuda_request_start(c, req);
    return 0;
}

int coll_allreduce(coll_comm_t *comm, const void *sendbuf, void *recvbuf,
                   size_t count, coll_dtype_t dtype, coll_op_t op)
{
    coll_request_t req;
    int rc = allreduce_prepare(comm, sendbuf, recvbuf, count, dtype, op, &req);
    if (rc != 0 || count == 0)
        return rc;
    req.status = coll__run_blocking(comm, &req);
    return coll__request_seen_done(&req);
}

int coll_allreduce_start(coll_comm_t *comm, const void *sendbuf, void *recvbuf,
                         size_t count, coll_dtype_t dtype, coll_op_t op,
                         coll_request_t *req)
{
    if (req == NULL) {
        rt_log_error("coll_allreduce_start: NULL request");
        return RT_EINVAL;
    }
    int rc = allreduce_prepare(comm, sendbuf, recvbuf, count, dtype, op, req);
    if (rc != 0 || count == 0) {
        req->status = rc;
        atomic_store_explicit(&req->done, 1, memory_order_release);
        return rc;
    }
    pthread_mutex_lock(&comm->mu);
    req->seq = comm->seq++;
    if (comm->tail)
        comm->tail->next = req;
    else
        comm->head = req;
    comm->tail = req;
    pthread_cond_signal(&comm->cv_work);
    pthread_mutex_unlock(&comm->mu);
    return 0;
}

const char *coll_algorithm_for(const coll_comm_t *comm, size_t count,
                               coll_dtype_t dtype)
{
    if (comm == NULL || (int)dtype < 0 || dtype >= COLL_DTYPE_COUNT)
        return "none";
    if (count == 0)
        return "none";
    const coll__algo_t *a = &coll__algos[coll__select(comm, count, dtype)];
    return comm->cuda ? a->staged_name : a->name;
}

const char *coll_comm_cuda_backend(const coll_comm_t *comm)
{
    if (comm == NULL || comm->cuda == NULL)
        return "none";
    return comm->cuda_nccl ? "nccl" : "host";
}

/* ---- helpers ------------------------------------------------------------------- */

static int run_helper(coll_comm_t *c, int kind, const void *sendbuf,
                      void *recvbuf, size_t count, int op, int root)
{
    if (c == NULL)
        return RT_EINVAL;
    int broken = coll__broken(c);
    if (broken != 0)
        return broken;
    coll_request_t req;
    memset(&req, 0, sizeof req);
    req.comm = c;
    req.kind = kind;
    req.sendbuf = sendbuf;
    req.recvbuf = recvbuf;
    req.count = count;
    req.op = op;
    req.root = root;
    req.algorithm = -1;
    return coll__run_blocking(c, &req);
}

int coll_barrier(coll_comm_t *comm)
{
    return run_helper(comm, COLL__KIND_BARRIER, NULL, NULL, 0, 0, 0);
}

int coll_broadcast(coll_comm_t *comm, void *buf, size_t bytes, int root)
{
    if (comm == NULL || (bytes > 0 && buf == NULL) || root < 0 ||
        root >= comm->size)
        return RT_EINVAL;
    if (bytes == 0)
        return 0;
    return run_helper(comm, COLL__KIND_BCAST, NULL, buf, bytes, 0, root);
}

static int f64_allreduce(coll_comm_t *comm, double *values, size_t count,
                         int op)
{
    if (comm == NULL || (count > 0 && values == NULL))
        return RT_EINVAL;
    if (count == 0)
        return 0;
    return run_helper(comm, COLL__KIND_F64, NULL, values, count, op, 0);
}

int coll_allreduce_f64_max(coll_comm_t *comm, double *values, size_t count)
{
    return f64_allreduce(comm, values, count, COLL__F64_MAX);
}

int coll_allreduce_f64_min(coll_comm_t *comm, double *values, size_t count)
{
    return f64_allreduce(comm, values, count, COLL__F64_MIN);
}

int coll_allreduce_f64_sum(coll_comm_t *comm, double *values, size_t count)
{
    return f64_allreduce(comm, values, count, COLL__F64_SUM);
}

int coll_allgather_u64(coll_comm_t *comm, uint64_t value, uint64_t *all)
{
    if (comm == NULL || all == NULL)
        return RT_EINVAL;
    return run_helper(comm, COLL__KIND_ALLGATHER_U64, &value, all, 1, 0, 0);
}
