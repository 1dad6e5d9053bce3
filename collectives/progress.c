/* collectives: the progress thread, the request queue and who may run a
 * collective.
 *
 * Threading rules (MPI_THREAD_SERIALIZED): exactly one thread owns the
 * communicator at a time, marked by comm->busy under comm->mu, and only the
 * owner calls MPI or touches the shared-memory segment. Requests run in the
 * order they were started. The owner is normally the progress thread, which
 * pops queued requests (coll_allreduce_start) one by one. A blocking call
 * (coll_allreduce, the helpers) that finds the queue empty and nobody busy
 * takes ownership itself and runs on the calling thread: handing a 4-byte
 * allreduce to another thread through a condition variable costs several
 * microseconds of wake-up, more than the whole collective. A blocking call
 * that finds work queued or running queues behind it and waits, so it never
 * overtakes earlier asynchronous work.
 */
#include <sched.h>
#include <string.h>
#include <time.h>

#include "coll_internal.h"

static int exec_barrier(coll_comm_t *c)
{
    COLL__MPI_CHECK(MPI_Barrier(c->comm));
    return 0;
}

static int exec_bcast(coll_comm_t *c, char *buf, size_t bytes, int root)
{
    const size_t chunk = c->mpi_chunk_bytes;
    for (size_t off = 0; off < bytes; off += chunk) {
        size_t n = bytes - off < chunk ? bytes - off : chunk;
        COLL__MPI_CHECK(MPI_Bcast(buf + off, (int)n, MPI_BYTE, root, c->comm));
    }
    return 0;
}

static int exec_f64(coll_comm_t *c, double *values, size_t count, int op)
{
    MPI_Op mop = op == COLL__F64_MAX ? MPI_MAX
                 : op == COLL__F64_MIN ? MPI_MIN
                                       : MPI_SUM;
    size_t chunk = c->mpi_chunk_bytes / sizeof(double);
    for (size_t off = 0; off < count; off += chunk) {
        size_t n = count - off < chunk ? count - off : chunk;
        COLL__MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, values + off, (int)n,
                                      MPI_DOUBLE, mop, c->comm));
    }
    return 0;
}

static int exec_allgather_u64(coll_comm_t *c, const uint64_t *value,
                              uint64_t *all)
{
    COLL__MPI_CHECK(MPI_Allgather(value, 1, MPI_UINT64_T, all, 1,
                                  MPI_UINT64_T, c->comm));
    return 0;
}

int coll__execute(coll_comm_t *c, coll_request_t *r)
{
    int rc = coll__broken(c);
    if (rc != 0)
        return rc;
    /* Host-side results (a barrier, a broadcast, the f64 helpers) come
     * after every GPU allreduce queued before them has finished. */
    if (r->kind != COLL__KIND_ALLREDUCE && coll__cuda_watching(c)) {
        rc = coll__cuda_drain(c);
        if (rc != 0) {
            coll__set_broken(c, rc);
            return rc;
        }
    }
    switch (r->kind) {
    case COLL__KIND_ALLREDUCE:
        if (c->cuda)
            rc = coll__cuda_allreduce(c, r);
        else
            rc = coll__algos[r->algorithm].fn(c, r->sendbuf, r->recvbuf,
                                              r->count, (coll_dtype_t)r->dtype,
                                              (coll_op_t)r->op);
        break;
    case COLL__KIND_BARRIER:
        rc = exec_barrier(c);
        break;
    case COLL__KIND_BCAST:
        rc = exec_bcast(c, r->recvbuf, r->count, r->root);
        break;
    case COLL__KIND_F64:
        rc = exec_f64(c, r->recvbuf, r->count, r->op);
        break;
    case COLL__KIND_ALLGATHER_U64:
        rc = exec_allgather_u64(c, r->sendbuf, r->recvbuf);
        break;
    case COLL__KIND_EXCHANGE:
        rc = coll__exec_exchange(c, r->sendbuf);
        break;
    default:
        rc = RT_EINVAL;
        break;
    }
    /* After a timeout or an MPI, NCCL or CUDA failure the ranks no longer
     * agree on where they are; every later collective fails fast instead of
     * hanging. */
    if (rc == RT_ETIMEDOUT || rc == RT_EMPI || rc == RT_ENCCL || rc == RT_ECUDA)
        coll__set_broken(c, rc);
    return rc;
}

static void request_finish(coll_comm_t *c, coll_request_t *r, int rc)
{
    /* Caller holds c->mu. The request may be reused the moment done is
     * seen, so it is the last write. */
    (void)c;
    r->status = rc;
    atomic_store_explicit(&r->done, 1, memory_order_release);
}

/* Idle with stream-ordered allreduces queued on a GPU (caller holds c->mu,
 * nothing to run, nobody busy): looks at them once as the owner, then waits
 * for work at most COLL__WATCH_NS, so a failure is found within that. */
#define COLL__WATCH_NS 200000L

static void watch_idle(coll_comm_t *c)
{
    c->busy = 1;
    pthread_mutex_unlock(&c->mu);
    int rc = coll__cuda_watch(c);
    pthread_mutex_lock(&c->mu);
    c->busy = 0;
    if (rc < 0)
        coll__set_broken(c, rc);
    if (rc != 1 || c->head != NULL || c->stop)
        return;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += COLL__WATCH_NS;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&c->cv_work, &c->mu, &until);
}

static void *progress_main(void *arg)
{
    coll_comm_t *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->stop && (c->head == NULL || c->busy)) {
            if (!c->busy && c->head == NULL && coll__cuda_watching(c) && !coll__broken(c))
                watch_idle(c);
            else
                pthread_cond_wait(&c->cv_work, &c->mu);
        }
        if (c->head == NULL || c->busy)
            break; /* stop requested and nothing left to run */
        coll_request_t *r = c->head;
        c->head = r->next;
        if (c->head == NULL)
            c->tail = NULL;
        r->next = NULL;
        c->busy = 1;
        pthread_mutex_unlock(&c->mu);
        r->t_begin = rt_now();
        int rc = coll__execute(c, r);
        r->t_end = rt_now();
        pthread_mutex_lock(&c->mu);
        c->busy = 0;
        request_finish(c, r, rc);
        pthread_cond_broadcast(&c->cv_done);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

int coll__progress_start(coll_comm_t *c)
{
    if (pthread_create(&c->thread, NULL, progress_main, c) != 0) {
        rt_log_error("collectives: cannot start the progress thread");
        return RT_ESYS;
    }
    c->thread_started = 1;
    return 0;
}

void coll__progress_stop(coll_comm_t *c)
{
    if (!c->thread_started)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_broadcast(&c->cv_work);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    c->thread_started = 0;
}

/* Whether r makes no MPI call: an allreduce on shared memory, a copy, or
 * NCCL (which has its own transport). */
static int request_is_local(const coll_request_t *r)
{
    return r->kind == COLL__KIND_ALLREDUCE &&
           (r->algorithm == COLL__ALGO_COPY || r->algorithm == COLL__ALGO_NCCL ||
            coll__algos[r->algorithm].needs_shm);
}

int coll__run_blocking(coll_comm_t *c, coll_request_t *r)
{
    pthread_mutex_lock(&c->mu);
    if (c->head == NULL && !c->busy && (c->caller_runs_mpi || request_is_local(r))) {
        c->busy = 1;
        pthread_mutex_unlock(&c->mu);
        int rc = coll__execute(c, r);
        pthread_mutex_lock(&c->mu);
        c->busy = 0;
        /* Queued work, or queued GPU allreduces to watch: the progress
         * thread takes over. */
        if (c->head != NULL || coll__cuda_watching(c))
            pthread_cond_signal(&c->cv_work);
        pthread_mutex_unlock(&c->mu);
        return rc;
    }
    r->seq = c->seq++;
    r->next = NULL;
    if (c->tail)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    pthread_cond_signal(&c->cv_work);
    while (!atomic_load_explicit(&r->done, memory_order_acquire))
        pthread_cond_wait(&c->cv_done, &c->mu);
    int rc = r->status;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* A request seen done: its status, and on a GPU in stream-ordered mode the
 * compute stream ordered after it. */
int coll__request_seen_done(coll_request_t *req)
{
    coll_comm_t *c = req->comm;
    if (req->status != 0 || c == NULL || c->cuda == NULL ||
        req->kind != COLL__KIND_ALLREDUCE)
        return req->status;
    return coll__cuda_request_finish(c, req);
}

int coll_test(coll_request_t *req, int *done)
{
    if (req == NULL || done == NULL)
        return RT_EINVAL;
    *done = atomic_load_explicit(&req->done, memory_order_acquire) != 0;
    return *done ? coll__request_seen_done(req) : 0;
}

int coll_wait(coll_request_t *req)
{
    if (req == NULL)
        return RT_EINVAL;
    if (atomic_load_explicit(&req->done, memory_order_acquire))
        return coll__request_seen_done(req);
    coll_comm_t *c = req->comm;
    if (c == NULL)
        return RT_EINVAL;
    pthread_mutex_lock(&c->mu);
    while (!atomic_load_explicit(&req->done, memory_order_acquire))
        pthread_cond_wait(&c->cv_done, &c->mu);
    pthread_mutex_unlock(&c->mu);
    return coll__request_seen_done(req);
}

int coll__mpi_waitany(coll_comm_t *c, int count, MPI_Request *reqs, int *index)
{
    if (c->stall_timeout <= 0.0 && !c->cores_busy) {
        COLL__MPI_CHECK(MPI_Waitany(count, reqs, index, MPI_STATUS_IGNORE));
        return 0;
    }
    double start = rt_now();
    for (unsigned long it = 0;; it++) {
        int flag = 0;
        COLL__MPI_CHECK(MPI_Testany(count, reqs, index, &flag,
                                    MPI_STATUS_IGNORE));
        if (flag)
            return 0;
        if (c->cores_busy)
            sched_yield();
        if (c->stall_timeout > 0.0 && (it & 1023) == 0 &&
            rt_now() - start > c->stall_timeout) {
            rt_log_error("collectives: rank %d waited %.1f s for a peer's "
                         "message in an allreduce; giving up (stall_timeout)",
                         c->rank, rt_now() - start);
            return RT_ETIMEDOUT;
        }
    }
}
