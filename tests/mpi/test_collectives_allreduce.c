/* MPI tests for collectives/: every allreduce algorithm and dtype against
 * Open MPI's MPI_Allreduce, plus async requests, the helpers, API misuse and
 * one allreduce larger than 2^31 bytes. Run under mpirun -np 1..5
 * (--oversubscribe); the first argument picks the part:
 *
 *   small    counts {0,1,2,3,7,n-1,n+1,100,240,241,65537,300007}, every
 *            algorithm, dtype, op, in place and out of place
 *   sequence 2000 back-to-back allreduces whose inputs change every call,
 *            cycling through sizes that take different shared-memory paths
 *            (stale or overwritten data shows up as a wrong sum)
 *   big      counts {1000003, 2^24+3}, every algorithm and dtype
 *   async    several requests in flight, test/wait, mixed with blocking calls
 *   helpers  barrier, broadcast, f64 max/min/sum, allgather, queries
 *   misuse   bad arguments -> error codes; unknown algorithm -> RT_EINVAL
 *   huge     2^30+5 fp16 elements in place (> 2^31 bytes): auto (shm), ring
 *   hier     the ranks split into fake hosts (RINGTRAIN_HOST_SPLIT 2, 2:cyclic,
 *            3): auto and hier on the small counts plus 10^6+3, every dtype,
 *            op and placement; a 600-call sequence; the topology reported
 *   compress fp16 / bf16 wire compression (ring, and hier across 2 fake
 *            hosts): integer inputs exact, random reals within the stated
 *            bound and visibly rounded, 4 KiB segments, disagreement refused
 *   idle     4 ranks as two fake hosts of two, hier, stall_timeout 0 (wait
 *            forever): host B's first rank joins 1 s late; host A's ranks,
 *            waiting in the overlapped allgather, must not spin all that
 *            time (process CPU time under a tenth of the wait)
 *   stall    rank 0 alone starts an asynchronous allreduce (stall_timeout
 *            0.2 s): it fails with RT_ETIMEDOUT on the progress thread, and
 *            every later call of rank 0 (allreduce, helper, exchange) fails
 *            at once with the same code; the ThreadSanitizer build checks
 *            that callers read the communicator's failure state safely
 *
 * Inputs are small integers (a hash of rank and index, in [-8, 8]), exact in
 * fp32, fp16 and bf16, so every partial sum is exact in any order: sums must
 * match the reference bit for bit. avg must equal round(sum * fp32(1/n)) to
 * within one unit in the last place of the dtype (fp32 2^-23, fp16 2^-10,
 * bf16 2^-7, relative). A second input set of random reals checks the fp32
 * accumulation of fp16/bf16 against a double reference within
 * n * ulp(dtype) * sum|x|. Every rank's result must also be bitwise equal to
 * every other rank's (compared by hash).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "collectives.h"
#include "common/common.h"

static int g_rank, g_size;

#define FAIL(...)                                                              \
    do {                                                                       \
        fprintf(stderr, "[rank %d] %s:%d: ", g_rank, __FILE__, __LINE__);      \
        fprintf(stderr, __VA_ARGS__);                                          \
        fputc('\n', stderr);                                                   \
        fflush(stderr);                                                        \
        MPI_Abort(MPI_COMM_WORLD, 1);                                          \
    } while (0)

#define CHECK_INT(got, want, what)                                             \
    do {                                                                       \
        long long g_ = (long long)(got), w_ = (long long)(want);               \
        if (g_ != w_)                                                          \
            FAIL("%s: got %lld, expected %lld", what, g_, w_);                 \
    } while (0)

/* ---- dtype helpers (independent of the library's conversions) ------------- */

__extension__ typedef _Float16 test_f16_t;

static uint16_t f16_from(float v)
{
    test_f16_t h = (test_f16_t)v;
    uint16_t u;
    memcpy(&u, &h, 2);
    return u;
}

static float f16_to(uint16_t u)
{
    test_f16_t h;
    memcpy(&h, &u, 2);
    return (float)h;
}

static uint16_t bf16_from(float v)
{
    uint32_t x;
    memcpy(&x, &v, 4);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

static float bf16_to(uint16_t u)
{
    uint32_t x = (uint32_t)u << 16;
    float v;
    memcpy(&v, &x, 4);
    return v;
}

static void store_as(coll_dtype_t dt, void *buf, size_t i, float v)
{
    if (dt == COLL_F32)
        ((float *)buf)[i] = v;
    else if (dt == COLL_F16)
        ((uint16_t *)buf)[i] = f16_from(v);
    else
        ((uint16_t *)buf)[i] = bf16_from(v);
}

static float load_as(coll_dtype_t dt, const void *buf, size_t i)
{
    if (dt == COLL_F32)
        return ((const float *)buf)[i];
    if (dt == COLL_F16)
        return f16_to(((const uint16_t *)buf)[i]);
    return bf16_to(((const uint16_t *)buf)[i]);
}

static float round_to(coll_dtype_t dt, float v)
{
    return dt == COLL_F32 ? v : dt == COLL_F16 ? f16_to(f16_from(v))
                                               : bf16_to(bf16_from(v));
}

static double ulp_rel(coll_dtype_t dt)
{
    return dt == COLL_F32 ? 0x1p-23 : dt == COLL_F16 ? 0x1p-10 : 0x1p-7;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return x;
}

/* Small integer in [-8, 8] for (seed, rank, i). */
static float int_input(uint64_t seed, int rank, size_t i)
{
    return (float)((int)(mix(seed * 1000003u + (uint64_t)rank * 7919u + i) % 17) - 8);
}

/* Random real in [-1, 1), already representable in dt. */
static float real_input(coll_dtype_t dt, uint64_t seed, int rank, size_t i)
{
    uint64_t h = mix(seed * 1000003u + (uint64_t)rank * 7919u + i + 0x5bd1e995u);
    float v = (float)((double)(h >> 11) * 0x1p-53 * 2.0 - 1.0);
    return round_to(dt, v);
}

static const char *const dtype_names[] = {"float", "half", "bfloat16"};
static const char *const op_names[] = {"sum", "avg"};

static uint64_t hash_buf(const void *buf, size_t bytes)
{
    const unsigned char *p = buf;
    uint64_t h = bytes;
    size_t i = 0;
    for (; i + 8 <= bytes; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = mix(h ^ w) + i;
    }
    return rt_fnv1a(h, p + i, bytes - i);
}

/* Every rank's hash must equal rank 0's: results are bitwise identical. */
static void check_same_everywhere(const void *buf, size_t bytes, const char *what)
{
    uint64_t h = hash_buf(buf, bytes);
    uint64_t *all = malloc((size_t)g_size * sizeof *all);
    if (all == NULL)
        FAIL("out of memory");
    MPI_Allgather(&h, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    for (int r = 1; r < g_size; r++)
        if (all[r] != all[0])
            FAIL("%s: rank %d's result differs from rank 0's (hash %016llx vs "
                 "%016llx)", what, r, (unsigned long long)all[r],
                 (unsigned long long)all[0]);
    free(all);
}

static coll_comm_t *make_comm(const char *algo)
{
    coll_config_t cfg;
    coll_config_init(&cfg);
    cfg.algorithm = algo;
    coll_comm_t *c = NULL;
    int rc = coll_comm_create(&c, MPI_COMM_WORLD, &cfg);
    if (rc != 0)
        FAIL("coll_comm_create(%s): %s", algo ? algo : "NULL", rt_strerror(rc));
    return c;
}

/* Set while RINGTRAIN_HOST_SPLIT makes the ranks look like several hosts. */
static int g_split;

/* Algorithms testable at this size: copy only runs on one rank; shm ones
 * need one host (so, not under a host split). */
static int algo_applies(const char *name)
{
    if (strcmp(name, "copy") == 0)
        return g_size == 1;
    if (strncmp(name, "shm", 3) == 0)
        return !g_split;
    /* Device buffers only: tests/gpu/test_coll_nccl.c. */
    if (strcmp(name, "nccl") == 0)
        return 0;
    return 1;
}

/* ---- exact integer test ----------------------------------------------------- */

typedef struct {
    size_t cap;
    void *send, *recv;
    float *ref;      /* reference sum (MPI_Allreduce, fp32) */
    float *mine_f32; /* this rank's inputs as fp32 */
} bufs_t;

static void bufs_init(bufs_t *b, size_t cap)
{
    b->cap = cap;
    size_t bytes = (cap ? cap : 1) * sizeof(float);
    b->send = rt_alloc_aligned(bytes, 64);
    b->recv = rt_alloc_aligned(bytes, 64);
    b->ref = rt_alloc_aligned(bytes, 64);
    b->mine_f32 = rt_alloc_aligned(bytes, 64);
    if (!b->send || !b->recv || !b->ref || !b->mine_f32)
        FAIL("cannot allocate 4 x %zu bytes", bytes);
}

static void bufs_free(bufs_t *b)
{
    rt_free_aligned(b->send);
    rt_free_aligned(b->recv);
    rt_free_aligned(b->ref);
    rt_free_aligned(b->mine_f32);
}

/* Reference for count elements of the integer inputs with this seed. */
static void make_reference(bufs_t *b, uint64_t seed, size_t count)
{
    for (size_t i = 0; i < count; i++)
        b->mine_f32[i] = int_input(seed, g_rank, i);
    for (size_t off = 0; off < count; off += (size_t)1 << 28) {
        size_t n = count - off < ((size_t)1 << 28) ? count - off : (size_t)1 << 28;
        MPI_Allreduce(b->mine_f32 + off, b->ref + off, (int)n, MPI_FLOAT,
                      MPI_SUM, MPI_COMM_WORLD);
    }
}

/* Bits of v stored as dt (fp32: the float's bits). */
static uint32_t bits_as(coll_dtype_t dt, float v)
{
    if (dt == COLL_F32) {
        uint32_t u;
        memcpy(&u, &v, 4);
        return u;
    }
    return dt == COLL_F16 ? f16_from(v) : bf16_from(v);
}

static uint32_t bits_at(coll_dtype_t dt, const void *buf, size_t i)
{
    if (dt == COLL_F32) {
        uint32_t u;
        memcpy(&u, (const char *)buf + 4 * i, 4);
        return u;
    }
    return ((const uint16_t *)buf)[i];
}

static void run_exact(coll_comm_t *c, const char *algo, bufs_t *b, size_t count,
                      coll_dtype_t dt, coll_op_t op, int in_place)
{
    /* Inputs are integers in [-8, 8] and sums in [-8n, 8n]: encode through
     * small tables (software fp16 conversion per element is slow). */
    enum { IN_SPAN = 17 };
    const int span = 8 * g_size;
    uint32_t in_bits[IN_SPAN];
    uint32_t *want_bits = malloc((size_t)(2 * span + 1) * sizeof *want_bits);
    float *want_val = malloc((size_t)(2 * span + 1) * sizeof *want_val);
    if (want_bits == NULL || want_val == NULL)
        FAIL("out of memory");
    const float scale = 1.0f / (float)g_size;
    for (int k = 0; k < IN_SPAN; k++)
        in_bits[k] = bits_as(dt, (float)(k - 8));
    for (int k = 0; k <= 2 * span; k++) {
        float sum = (float)(k - span);
        want_val[k] = round_to(dt, op == COLL_AVG ? sum * scale : sum);
        want_bits[k] = bits_as(dt, want_val[k]);
    }
    size_t esize = coll_dtype_size(dt);
    void *in = in_place ? b->recv : b->send;
    if (dt == COLL_F32)
        memcpy(in, b->mine_f32, count * 4);
    else
        for (size_t i = 0; i < count; i++)
            ((uint16_t *)in)[i] = (uint16_t)in_bits[(int)b->mine_f32[i] + 8];
    if (!in_place)
        memset(b->recv, 0xff, count * esize); /* NaN sentinel */
    int rc = coll_allreduce(c, in_place ? COLL_IN_PLACE : b->send,
                            count ? b->recv : NULL, count, dt, op);
    if (rc != 0)
        FAIL("allreduce %s %s %s count %zu %s: %s", algo, dtype_names[dt],
             op_names[op], count, in_place ? "in-place" : "out-of-place",
             rt_strerror(rc));
    for (size_t i = 0; i < count; i++) {
        int k = (int)b->ref[i] + span;
        if (bits_at(dt, b->recv, i) == want_bits[k])
            continue;
        float got = load_as(dt, b->recv, i);
        float want = want_val[k];
        double tol = op == COLL_AVG ? ulp_rel(dt) * fabs((double)want) : 0.0;
        if (!(fabs((double)got - (double)want) <= tol))
            FAIL("allreduce %s %s %s count %zu %s: element %zu is %.9g, "
                 "expected %.9g (reference MPI_Allreduce sum %.9g)",
                 algo, dtype_names[dt], op_names[op], count,
                 in_place ? "in-place" : "out-of-place", i, (double)got,
                 (double)want, (double)b->ref[i]);
    }
    if (!in_place) {
        /* The input must be untouched. */
        for (size_t i = 0; i < count; i++)
            if (bits_at(dt, b->send, i) != in_bits[(int)b->mine_f32[i] + 8])
                FAIL("allreduce %s %s count %zu: input element %zu changed",
                     algo, dtype_names[dt], count, i);
    }
    check_same_everywhere(b->recv, count * esize, algo);
    free(want_bits);
    free(want_val);
}

/* Random reals: fp32 accumulation within n * ulp * sum|x|. */
static void run_real(coll_comm_t *c, const char *algo, bufs_t *b, size_t count,
                     coll_dtype_t dt, coll_op_t op)
{
    double *mine = malloc(count * sizeof *mine);
    double *sum = malloc(count * sizeof *sum);
    double *abs_mine = malloc(count * sizeof *abs_mine);
    double *abs_sum = malloc(count * sizeof *abs_sum);
    if (!mine || !sum || !abs_mine || !abs_sum)
        FAIL("out of memory");
    for (size_t i = 0; i < count; i++) {
        float v = real_input(dt, 77, g_rank, i);
        store_as(dt, b->send, i, v);
        mine[i] = v;
        abs_mine[i] = fabs(v);
    }
    MPI_Allreduce(mine, sum, (int)count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(abs_mine, abs_sum, (int)count, MPI_DOUBLE, MPI_SUM,
                  MPI_COMM_WORLD);
    int rc = coll_allreduce(c, b->send, b->recv, count, dt, op);
    if (rc != 0)
        FAIL("allreduce %s real: %s", algo, rt_strerror(rc));
    for (size_t i = 0; i < count; i++) {
        double want = op == COLL_AVG ? sum[i] / g_size : sum[i];
        double bound = op == COLL_AVG ? abs_sum[i] / g_size : abs_sum[i];
        double tol = (double)(g_size + 1) * ulp_rel(dt) * bound + 1e-30;
        double got = load_as(dt, b->recv, i);
        if (!(fabs(got - want) <= tol))
            FAIL("allreduce %s %s %s real inputs: element %zu is %.9g, "
                 "expected %.9g within %.3g", algo, dtype_names[dt],
                 op_names[op], i, got, want, tol);
    }
    check_same_everywhere(b->recv, count * coll_dtype_size(dt), algo);
    free(mine);
    free(sum);
    free(abs_mine);
    free(abs_sum);
}

/* algos: NULL-terminated names to test (NULL: every algorithm); an entry
 * "auto" tests the automatic choice. */
static void test_counts_of(const char *const *algos, const size_t *counts,
                           int ncounts, int ops_mask, int real_too,
                           int chunked_mpi)
{
    size_t cap = 0;
    for (int k = 0; k < ncounts; k++)
        cap = counts[k] > cap ? counts[k] : cap;
    bufs_t b;
    bufs_init(&b, cap);
    const char *const *names = algos ? algos : coll_algorithm_names();
    int tested = 0;
    for (int k = 0; k < ncounts; k++) {
        size_t count = counts[k];
        make_reference(&b, (uint64_t)k + 1, count);
        for (int a = 0; names[a]; a++) {
            if (!algo_applies(names[a]))
                continue;
            coll_comm_t *c = make_comm(names[a]);
            for (int dt = 0; dt < COLL_DTYPE_COUNT; dt++)
                for (int op = 0; op < COLL_OP_COUNT; op++) {
                    if (!(ops_mask & (1 << op)))
                        continue;
                    for (int ip = 0; ip < 2; ip++) {
                        run_exact(c, names[a], &b, count, (coll_dtype_t)dt,
                                  (coll_op_t)op, ip);
                        tested++;
                    }
                }
            coll_comm_destroy(c);
        }
        if (chunked_mpi) {
            /* MPI calls cut at 4 KiB: the chunking that keeps > 2^31-byte
             * vectors within int counts, exercised on small ones. */
            setenv("RINGTRAIN_MPI_CHUNK_BYTES", "4096", 1);
            coll_comm_t *c = make_comm("mpi");
            unsetenv("RINGTRAIN_MPI_CHUNK_BYTES");
            for (int dt = 0; dt < COLL_DTYPE_COUNT; dt++)
                for (int ip = 0; ip < 2; ip++) {
                    run_exact(c, "mpi (4 KiB chunks)", &b, count,
                              (coll_dtype_t)dt, COLL_AVG, ip);
                    tested++;
                }
            coll_comm_destroy(c);
        }
    }
    if (real_too) {
        size_t count = cap < 4099 ? cap : 4099;
        for (int a = 0; names[a]; a++) {
            if (!algo_applies(names[a]))
                continue;
            coll_comm_t *c = make_comm(names[a]);
            for (int dt = 0; dt < COLL_DTYPE_COUNT; dt++)
                for (int op = 0; op < COLL_OP_COUNT; op++)
                    run_real(c, names[a], &b, count, (coll_dtype_t)dt,
                             (coll_op_t)op);
            coll_comm_destroy(c);
        }
    }
    bufs_free(&b);
    if (g_rank == 0)
        printf("np %d: %d allreduce cases passed\n", g_size, tested);
}

static void test_counts(const size_t *counts, int ncounts, int ops_mask,
                        int real_too, int chunked_mpi)
{
    test_counts_of(NULL, counts, ncounts, ops_mask, real_too, chunked_mpi);
}

static void test_small(void)
{
    size_t n = (size_t)g_size;
    /* 100 and 240 fp32 fill several inline lines (60 bytes each, 960 at
     * most); 241 is the first that is not inline. */
    size_t counts[] = {0, 1, 2, 3, 7, n - 1, n + 1, 100, 240, 241, 65537, 300007};
    test_counts(counts, (int)(sizeof counts / sizeof counts[0]), 3, 1, 1);
}

static void test_big(void)
{
    size_t counts[] = {1000003, ((size_t)1 << 24) + 3};
    test_counts(counts, 2, 3, 0, 0);
}

/* ---- sequence ------------------------------------------------------------------- */

static void test_sequence(void)
{
    const size_t counts[] = {1, 3, 100, 241, 5000, 70000, 15, 300001};
    enum { NC = sizeof counts / sizeof counts[0], ITERS = 2000 };
    const char *algos[] = {NULL, "shm", "shm_oneshot"};
    float *buf = malloc(300001 * sizeof *buf);
    if (buf == NULL)
        FAIL("out of memory");
    for (size_t a = 0; a < sizeof algos / sizeof algos[0]; a++) {
        coll_comm_t *c = make_comm(algos[a]);
        for (int it = 0; it < ITERS; it++) {
            /* Small vectors most of the time, a big one now and then. */
            size_t count = counts[(size_t)it % NC];
            if (count > 5000 && it % 50 >= NC)
                count = 7;
            for (size_t i = 0; i < count; i++)
                buf[i] = (float)((it + g_rank * 3 + (int)(i % 13)) % 17);
            int rc = coll_allreduce(c, COLL_IN_PLACE, buf, count, COLL_F32,
                                    COLL_SUM);
            if (rc != 0)
                FAIL("sequence %s iteration %d: %s", algos[a] ? algos[a] : "auto",
                     it, rt_strerror(rc));
            for (size_t i = 0; i < count; i++) {
                float want = 0;
                for (int r = 0; r < g_size; r++)
                    want += (float)((it + r * 3 + (int)(i % 13)) % 17);
                if (buf[i] != want)
                    FAIL("sequence %s iteration %d count %zu element %zu: %g, "
                         "expected %g", algos[a] ? algos[a] : "auto", it, count,
                         i, (double)buf[i], (double)want);
            }
        }
        coll_comm_destroy(c);
    }
    free(buf);
    if (g_rank == 0)
        printf("np %d: sequence passed\n", g_size);
}

/* ---- async -------------------------------------------------------------------- */

static void test_async(void)
{
    enum { NREQ = 6 };
    const size_t counts[NREQ] = {5, 1000, 65537, 300007, 1, 1 << 20};
    const char *algos[] = {NULL, "ring", "rd", "shm", "mpi"};
    for (size_t a = 0; a < sizeof algos / sizeof algos[0]; a++) {
        coll_comm_t *c = make_comm(algos[a]);
        float *buf[NREQ];
        float *ref[NREQ];
        coll_request_t req[NREQ];
        for (int k = 0; k < NREQ; k++) {
            buf[k] = malloc(counts[k] * sizeof(float));
            ref[k] = malloc(counts[k] * sizeof(float));
            if (!buf[k] || !ref[k])
                FAIL("out of memory");
            for (size_t i = 0; i < counts[k]; i++)
                ref[k][i] = int_input((uint64_t)k + 100, g_rank, i);
            MPI_Allreduce(MPI_IN_PLACE, ref[k], (int)counts[k], MPI_FLOAT,
                          MPI_SUM, MPI_COMM_WORLD);
            for (size_t i = 0; i < counts[k]; i++)
                buf[k][i] = int_input((uint64_t)k + 100, g_rank, i);
        }
        /* All in flight at once, in place (gradient buckets). */
        for (int k = 0; k < NREQ; k++) {
            int rc = coll_allreduce_start(c, COLL_IN_PLACE, buf[k], counts[k],
                                          COLL_F32, k % 2 ? COLL_AVG : COLL_SUM,
                                          &req[k]);
            if (rc != 0)
                FAIL("coll_allreduce_start %d: %s", k, rt_strerror(rc));
        }
        /* A blocking call queues behind them and must see them done first. */
        double one = 1.0;
        int rc = coll_allreduce_f64_sum(c, &one, 1);
        if (rc != 0 || one != (double)g_size)
            FAIL("blocking f64 sum behind async work: rc %d value %g, expected %d",
                 rc, one, g_size);
        int polls = 0;
        for (int k = 0; k < NREQ; k++) {
            int done = 0;
            rc = coll_test(&req[k], &done);
            if (rc != 0)
                FAIL("coll_test %d: %s", k, rt_strerror(rc));
            if (!done)
                FAIL("request %d not done although a later blocking call "
                     "returned (order broken)", k);
            polls++;
        }
        for (int k = NREQ - 1; k >= 0; k--) {
            rc = coll_wait(&req[k]);
            if (rc != 0)
                FAIL("coll_wait %d: %s", k, rt_strerror(rc));
            float scale = 1.0f / (float)g_size;
            for (size_t i = 0; i < counts[k]; i++) {
                float want = k % 2 ? ref[k][i] * scale : ref[k][i];
                if (buf[k][i] != want)
                    FAIL("async %s request %d element %zu: %.9g, expected %.9g",
                         algos[a] ? algos[a] : "auto", k, i,
                         (double)buf[k][i], (double)want);
            }
        }
        /* start / test until done, then wait again (idempotent). */
        coll_request_t r1;
        rc = coll_allreduce_start(c, COLL_IN_PLACE, buf[5], counts[5], COLL_F32,
                                  COLL_SUM, &r1);
        if (rc != 0)
            FAIL("start: %s", rt_strerror(rc));
        int done = 0;
        long spins = 0;
        while (!done) {
            rc = coll_test(&r1, &done);
            if (rc != 0)
                FAIL("coll_test: %s", rt_strerror(rc));
            spins++;
        }
        CHECK_INT(coll_wait(&r1), 0, "coll_wait after coll_test reported done");
        /* Zero-count requests complete at once. */
        coll_request_t r0;
        CHECK_INT(coll_allreduce_start(c, NULL, NULL, 0, COLL_F32, COLL_SUM, &r0),
                  0, "zero-count start");
        CHECK_INT(coll_wait(&r0), 0, "zero-count wait");
        for (int k = 0; k < NREQ; k++) {
            free(buf[k]);
            free(ref[k]);
        }
        coll_comm_destroy(c);
        (void)polls;
        (void)spins;
    }
    if (g_rank == 0)
        printf("np %d: async passed\n", g_size);
}

/* ---- helpers ------------------------------------------------------------------- */

static void test_helpers(void)
{
    coll_comm_t *c = make_comm(NULL);
    CHECK_INT(coll_comm_rank(c), g_rank, "rank");
    CHECK_INT(coll_comm_size(c), g_size, "size");
    CHECK_INT(coll_comm_host_count(c), 1, "host count (single-host test)");
    CHECK_INT(coll_comm_local_size(c), g_size, "local size");
    CHECK_INT(coll_comm_local_rank(c), g_rank, "local rank");
    CHECK_INT(coll_barrier(c), 0, "barrier");

    for (int root = 0; root < g_size; root++) {
        size_t sizes[] = {1, 4097, (size_t)3 << 20};
        for (int s = 0; s < 3; s++) {
            unsigned char *buf = malloc(sizes[s]);
            if (buf == NULL)
                FAIL("out of memory");
            for (size_t i = 0; i < sizes[s]; i++)
                buf[i] = g_rank == root ? (unsigned char)(i * 31 + (size_t)root)
                                        : 0;
            CHECK_INT(coll_broadcast(c, buf, sizes[s], root), 0, "broadcast");
            for (size_t i = 0; i < sizes[s]; i++)
                if (buf[i] != (unsigned char)(i * 31 + (size_t)root))
                    FAIL("broadcast root %d size %zu byte %zu: %u, expected %u",
                         root, sizes[s], i, buf[i],
                         (unsigned)(unsigned char)(i * 31 + (size_t)root));
            free(buf);
        }
    }
    double v[3] = {g_rank, -g_rank, 0.5};
    CHECK_INT(coll_allreduce_f64_max(c, v, 3), 0, "f64 max");
    if (v[0] != g_size - 1 || v[1] != 0 || v[2] != 0.5)
        FAIL("f64 max: %g %g %g, expected %d 0 0.5", v[0], v[1], v[2], g_size - 1);
    double w[2] = {g_rank, g_rank + 10.0};
    CHECK_INT(coll_allreduce_f64_min(c, w, 2), 0, "f64 min");
    if (w[0] != 0 || w[1] != 10)
        FAIL("f64 min: %g %g, expected 0 10", w[0], w[1]);
    double s = g_rank + 1.0;
    CHECK_INT(coll_allreduce_f64_sum(c, &s, 1), 0, "f64 sum");
    if (s != g_size * (g_size + 1) / 2.0)
        FAIL("f64 sum: %g, expected %g", s, g_size * (g_size + 1) / 2.0);
    uint64_t *all = calloc((size_t)g_size, sizeof *all);
    CHECK_INT(coll_allgather_u64(c, (uint64_t)g_rank * 1000 + 7, all), 0,
              "allgather");
    for (int r = 0; r < g_size; r++)
        CHECK_INT(all[r], (uint64_t)r * 1000 + 7, "allgather element");
    free(all);

    /* The choice is reported for every size, and names a real algorithm. */
    for (size_t count = 1; count < ((size_t)1 << 28); count *= 4) {
        const char *name = coll_algorithm_for(c, count, COLL_F32);
        int known = 0;
        for (const char *const *n = coll_algorithm_names(); *n; n++)
            known |= strcmp(*n, name) == 0;
        if (!known)
            FAIL("coll_algorithm_for(%zu) = '%s', not an algorithm", count, name);
    }
    CHECK_INT(strcmp(coll_algorithm_for(c, 0, COLL_F32), "none"), 0,
              "algorithm for count 0");
    coll_comm_destroy(c);

    /* Broadcast and f64 reductions cut into 4 KiB MPI calls. */
    setenv("RINGTRAIN_MPI_CHUNK_BYTES", "4096", 1);
    c = make_comm(NULL);
    unsetenv("RINGTRAIN_MPI_CHUNK_BYTES");
    size_t nb = 100003;
    unsigned char *bb = malloc(nb);
    double *dv = malloc(1001 * sizeof *dv);
    if (bb == NULL || dv == NULL)
        FAIL("out of memory");
    for (size_t i = 0; i < nb; i++)
        bb[i] = g_rank == g_size - 1 ? (unsigned char)(i % 251) : 0;
    CHECK_INT(coll_broadcast(c, bb, nb, g_size - 1), 0, "chunked broadcast");
    for (size_t i = 0; i < nb; i++)
        CHECK_INT(bb[i], i % 251, "chunked broadcast byte");
    for (int i = 0; i < 1001; i++)
        dv[i] = g_rank + i;
    CHECK_INT(coll_allreduce_f64_max(c, dv, 1001), 0, "chunked f64 max");
    for (int i = 0; i < 1001; i++)
        CHECK_INT(dv[i], g_size - 1 + i, "chunked f64 max element");
    free(bb);
    free(dv);
    coll_comm_destroy(c);
    coll_comm_destroy(NULL); /* accepts NULL */
    if (g_rank == 0)
        printf("np %d: helpers passed\n", g_size);
}

/* ---- misuse --------------------------------------------------------------------- */

static void test_misuse(void)
{
    coll_comm_t *c = make_comm(NULL);
    float x[4] = {1, 2, 3, 4};
    float y[4];
    CHECK_INT(coll_allreduce(c, NULL, y, 4, COLL_F32, COLL_SUM), RT_EINVAL,
              "NULL sendbuf with count 4");
    CHECK_INT(coll_allreduce(c, x, NULL, 4, COLL_F32, COLL_SUM), RT_EINVAL,
              "NULL recvbuf with count 4");
    CHECK_INT(coll_allreduce(c, COLL_IN_PLACE, NULL, 4, COLL_F32, COLL_SUM),
              RT_EINVAL, "in place on NULL with count 4");
    CHECK_INT(coll_allreduce(c, x, y, 4, (coll_dtype_t)7, COLL_SUM), RT_EINVAL,
              "unknown dtype 7");
    CHECK_INT(coll_allreduce(c, x, y, 4, (coll_dtype_t)-1, COLL_SUM), RT_EINVAL,
              "unknown dtype -1");
    CHECK_INT(coll_allreduce(c, x, y, 4, COLL_F32, (coll_op_t)9), RT_EINVAL,
              "unknown op 9");
    CHECK_INT(coll_allreduce(c, x, x + 1, 3, COLL_F32, COLL_SUM), RT_EINVAL,
              "overlapping buffers");
    CHECK_INT(coll_allreduce(NULL, x, y, 4, COLL_F32, COLL_SUM), RT_EINVAL,
              "NULL communicator");
    CHECK_INT(coll_allreduce(c, NULL, NULL, 0, COLL_F32, COLL_SUM), 0,
              "count 0 with NULL buffers");
    coll_request_t req;
    CHECK_INT(coll_allreduce_start(c, NULL, y, 4, COLL_F32, COLL_SUM, &req),
              RT_EINVAL, "async NULL sendbuf");
    CHECK_INT(coll_wait(&req), RT_EINVAL, "wait on a refused request");
    CHECK_INT(coll_allreduce_start(c, x, y, 4, COLL_F32, COLL_SUM, NULL),
              RT_EINVAL, "async NULL request");
    CHECK_INT(coll_test(NULL, NULL), RT_EINVAL, "coll_test(NULL)");
    CHECK_INT(coll_wait(NULL), RT_EINVAL, "coll_wait(NULL)");
    CHECK_INT(coll_broadcast(c, x, sizeof x, g_size), RT_EINVAL,
              "broadcast root out of range");
    CHECK_INT(coll_broadcast(c, NULL, 4, 0), RT_EINVAL, "broadcast NULL");
    CHECK_INT(coll_allreduce_f64_max(c, NULL, 2), RT_EINVAL, "f64 max NULL");
    CHECK_INT(coll_allgather_u64(c, 1, NULL), RT_EINVAL, "allgather NULL");
    CHECK_INT(coll_comm_create(NULL, MPI_COMM_WORLD, NULL), RT_EINVAL,
              "create with NULL out");
    /* The communicator still works after all that. */
    for (int i = 0; i < 4; i++)
        y[i] = (float)i;
    CHECK_INT(coll_allreduce(c, COLL_IN_PLACE, y, 4, COLL_F32, COLL_SUM), 0,
              "allreduce after misuse");
    for (int i = 0; i < 4; i++)
        if (y[i] != (float)(i * g_size))
            FAIL("allreduce after misuse: y[%d] = %g", i, (double)y[i]);
    coll_comm_destroy(c);

    /* Unknown algorithms: by config, and by environment. */
    coll_config_t cfg;
    coll_config_init(&cfg);
    cfg.algorithm = "no-such-algorithm";
    coll_comm_t *bad = NULL;
    CHECK_INT(coll_comm_create(&bad, MPI_COMM_WORLD, &cfg), RT_EINVAL,
              "forced unknown algorithm (config)");
    if (bad != NULL)
        FAIL("a failed create left a communicator behind");
    setenv("RINGTRAIN_ALLREDUCE", "bogus", 1);
    CHECK_INT(coll_comm_create(&bad, MPI_COMM_WORLD, NULL), RT_EINVAL,
              "forced unknown algorithm (RINGTRAIN_ALLREDUCE)");
    setenv("RINGTRAIN_ALLREDUCE", "ring", 1);
    CHECK_INT(coll_comm_create(&bad, MPI_COMM_WORLD, NULL), 0,
              "RINGTRAIN_ALLREDUCE=ring");
    CHECK_INT(strcmp(coll_algorithm_for(bad, 1000, COLL_F32), "ring"), 0,
              "forced ring is what runs");
    coll_comm_destroy(bad);
    unsetenv("RINGTRAIN_ALLREDUCE");
    if (g_size > 1) {
        cfg.algorithm = "copy";
        CHECK_INT(coll_comm_create(&bad, MPI_COMM_WORLD, &cfg), RT_EINVAL,
                  "copy forced on several ranks");
    }
    cfg.algorithm = NULL;
    cfg.segment_bytes = 3;
    CHECK_INT(coll_comm_create(&bad, MPI_COMM_WORLD, &cfg), RT_EINVAL,
              "segment_bytes 3");
    /* Segments between hosts: above the segment size, and not the same
     * everywhere (each rank would cut the messages differently). */
    cfg.segment_bytes = 0;
    setenv("RINGTRAIN_NET_SEGMENT_BYTES", "2M", 1);
    CHECK_INT(coll_comm_create(&bad, MPI_COMM_WORLD, &cfg), RT_EINVAL,
              "RINGTRAIN_NET_SEGMENT_BYTES=2M (above the 1 MiB segment)");
    if (bad != NULL)
        FAIL("a failed create left a communicator behind");
    if (g_size > 1) {
        setenv("RINGTRAIN_NET_SEGMENT_BYTES", g_rank == 0 ? "4096" : "8K", 1);
        CHECK_INT(coll_comm_create(&bad, MPI_COMM_WORLD, &cfg), RT_EMISMATCH,
                  "ranks with different RINGTRAIN_NET_SEGMENT_BYTES");
    }
    unsetenv("RINGTRAIN_NET_SEGMENT_BYTES");
    if (g_rank == 0)
        printf("np %d: misuse passed\n", g_size);
}

/* ---- fake hosts (RINGTRAIN_HOST_SPLIT) ----------------------------------------- */

/* Hosts and the largest host that the split gives these ranks, computed
 * here independently of the library: block split = local rank * k / n,
 * cyclic = rank % k (all ranks are on one real host in these tests). */
static void split_layout(const char *split, int *hosts, int *max_local)
{
    int k = atoi(split);
    int cyclic = strstr(split, "cyclic") != NULL;
    if (k > g_size)
        k = g_size;
    int sizes[64] = {0};
    for (int r = 0; r < g_size; r++)
        sizes[cyclic ? r % k : (int)((long long)r * k / g_size)]++;
    *hosts = 0;
    *max_local = 0;
    for (int h = 0; h < k; h++) {
        *hosts += sizes[h] > 0;
        *max_local = sizes[h] > *max_local ? sizes[h] : *max_local;
    }
}

static void test_hier(void)
{
    const char *splits[] = {"2", "2:cyclic", "3"};
    size_t n = (size_t)g_size;
    const size_t counts[] = {0, 1, 2, 3, 7, n + 1, 100, 241, 65537, 300007,
                             1000003};
    const char *const algos[] = {"auto", "hier", NULL};
    g_split = 1;
    for (size_t k = 0; k < sizeof splits / sizeof splits[0]; k++) {
        setenv("RINGTRAIN_HOST_SPLIT", splits[k], 1);
        /* Split 2:cyclic also cuts the messages between hosts into odd
         * 320-byte segments (80 floats: counts 100, 241... span several). */
        if (k == 1)
            setenv("RINGTRAIN_NET_SEGMENT_BYTES", "320", 1);
        else
            unsetenv("RINGTRAIN_NET_SEGMENT_BYTES");
        int hosts = 0, max_local = 0;
        split_layout(splits[k], &hosts, &max_local);
        coll_comm_t *c = make_comm(NULL);
        CHECK_INT(coll_comm_host_count(c), hosts, "hosts under the split");
        /* The automatic choice for a large vector: hier where ranks share
         * a host, the plain ring where every host has one rank. */
        const char *want = g_size == 1    ? "copy"
                           : max_local > 1 ? "hier"
                                           : "ring";
        const char *got = coll_algorithm_for(c, (size_t)1 << 20, COLL_F32);
        if (strcmp(got, want) != 0)
            FAIL("split %s: 4 MiB allreduce would use %s, expected %s",
                 splits[k], got, want);
        coll_comm_destroy(c);
        if (g_size > 1 && max_local > 1) {
            coll_config_t cfg;
            coll_config_init(&cfg);
            cfg.algorithm = "shm";
            coll_comm_t *bad = NULL;
            CHECK_INT(coll_comm_create(&bad, MPI_COMM_WORLD, &cfg), RT_EINVAL,
                      "shm forced across fake hosts");
        }
        test_counts_of(algos, counts, (int)(sizeof counts / sizeof counts[0]),
                       3, k == 0, 0);

        /* Back-to-back calls with inputs that change every call. */
        c = make_comm("hier");
        float *buf = malloc(70001 * sizeof *buf);
        if (buf == NULL)
            FAIL("out of memory");
        for (int it = 0; it < 600; it++) {
            size_t count = it % 3 == 0 ? 70001 : (size_t)(it % 97) + 1;
            for (size_t i = 0; i < count; i++)
                buf[i] = (float)((it + g_rank * 5 + (int)(i % 11)) % 13);
            int rc = coll_allreduce(c, COLL_IN_PLACE, buf, count, COLL_F32,
                                    COLL_SUM);
            if (rc != 0)
                FAIL("hier sequence split %s iteration %d: %s", splits[k], it,
                     rt_strerror(rc));
            for (size_t i = 0; i < count; i++) {
                float w = 0;
                for (int r = 0; r < g_size; r++)
                    w += (float)((it + r * 5 + (int)(i % 11)) % 13);
                if (buf[i] != w)
                    FAIL("hier sequence split %s iteration %d count %zu "
                         "element %zu: %g, expected %g", splits[k], it, count,
                         i, (double)buf[i], (double)w);
            }
        }
        free(buf);
        coll_comm_destroy(c);
        if (g_rank == 0)
            printf("np %d split %s: %d hosts, hier passed\n", g_size,
                   splits[k], hosts);
    }
    unsetenv("RINGTRAIN_HOST_SPLIT");
    unsetenv("RINGTRAIN_NET_SEGMENT_BYTES");
    g_split = 0;
}

/* ---- wire compression -------------------------------------------------------------- */

static coll_comm_t *make_comm_compressed(const char *algo,
                                         coll_compression_t comp,
                                         size_t segment_bytes)
{
    coll_config_t cfg;
    coll_config_init(&cfg);
    cfg.algorithm = algo;
    cfg.compression = comp;
    cfg.segment_bytes = segment_bytes;
    coll_comm_t *c = NULL;
    int rc = coll_comm_create(&c, MPI_COMM_WORLD, &cfg);
    if (rc != 0)
        FAIL("coll_comm_create(%s, %s): %s", algo,
             coll_compression_name(comp), rt_strerror(rc));
    CHECK_INT(coll_comm_compression(c), comp, "compression reported");
    return c;
}

/* Random fp32 reals against the exact (double) sum. A block's partial sum
 * is rounded to the wire type once per ring hop and once by its owner:
 * `hops` roundings of at most u * sum|x| + eta each (u: 2^-11 fp16, 2^-8
 * bf16; eta: half the subnormal spacing), plus fp32 additions (at most n of
 * them, 2^-24 * sum|x| each). When
 * hops > 0 the rounding must also be visible: some element must be off by
 * more than an fp32-only sum could be. */
static void run_compressed_real(coll_comm_t *c, const char *what, size_t count,
                                coll_compression_t comp, coll_op_t op, int hops)
{
    float *send = malloc(count * sizeof *send);
    float *recv = malloc(count * sizeof *recv);
    double *mine = malloc(count * sizeof *mine);
    double *sum = malloc(count * sizeof *sum);
    double *abs_mine = malloc(count * sizeof *abs_mine);
    double *abs_sum = malloc(count * sizeof *abs_sum);
    if (!send || !recv || !mine || !sum || !abs_mine || !abs_sum)
        FAIL("out of memory");
    for (size_t i = 0; i < count; i++) {
        /* Gradient-like magnitudes: 1e-3 .. 1 with random signs. */
        float v = real_input(COLL_F32, 91, g_rank, i);
        v = v * (float)(1 + i % 1000) * 1e-3f;
        send[i] = v;
        mine[i] = v;
        abs_mine[i] = fabs(v);
    }
    MPI_Allreduce(mine, sum, (int)count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(abs_mine, abs_sum, (int)count, MPI_DOUBLE, MPI_SUM,
                  MPI_COMM_WORLD);
    int rc = coll_allreduce(c, send, recv, count, COLL_F32, op);
    if (rc != 0)
        FAIL("%s: %s", what, rt_strerror(rc));
    /* u: relative rounding error; eta: absolute error of a rounding in the
     * subnormal range (half the spacing: fp16 2^-25, bf16 2^-134). */
    const double u = comp == COLL_COMPRESS_FP16 ? 0x1p-11 : 0x1p-8;
    const double eta = comp == COLL_COMPRESS_FP16 ? 0x1p-25 : 0x1p-134;
    const double div = op == COLL_AVG ? g_size : 1;
    double worst = 0.0; /* largest error / (u * sum|x|) */
    for (size_t i = 0; i < count; i++) {
        double want = sum[i] / div, s = abs_sum[i] / div;
        double tol = (double)hops * (u * s + eta) +
                     (double)(g_size + 1) * 0x1p-24 * s +
                     0x1p-24 * fabs(want) + 1e-30;
        double err = fabs((double)recv[i] - want);
        if (!(err <= tol))
            FAIL("%s %s %s: element %zu is %.9g, exact %.9g, error %.3g "
                 "exceeds the bound %.3g (%d roundings of u=%g)",
                 what, coll_compression_name(comp), op_names[op], i,
                 (double)recv[i], want, err, tol, hops, u);
        if (s > 0 && err / (u * s) > worst)
            worst = err / (u * s);
    }
    double all_worst = 0.0;
    MPI_Allreduce(&worst, &all_worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    /* An fp32 sum errs by at most ~n * 2^-24 * sum|x|, far below 0.05 u. */
    if (hops > 0 && all_worst < 0.05)
        FAIL("%s %s: the largest error is only %.3g u * sum|x|: the data did "
             "not travel compressed", what, coll_compression_name(comp),
             all_worst);
    check_same_everywhere(recv, count * sizeof *recv, what);
    free(send);
    free(recv);
    free(mine);
    free(sum);
    free(abs_mine);
    free(abs_sum);
}

static void test_compress(void)
{
    const coll_compression_t comps[] = {COLL_COMPRESS_FP16, COLL_COMPRESS_BF16};
    size_t n = (size_t)g_size;
    const size_t counts[] = {1, 3, n + 1, 241, 65537, 300007};
    enum { NC = sizeof counts / sizeof counts[0] };
    /* Layouts: one host (flat ring, and hier = shared memory only: no wire),
     * then two fake hosts (hier's ring between them compresses). */
    for (int split = 0; split < 2; split++) {
        if (split) {
            setenv("RINGTRAIN_HOST_SPLIT", "2", 1);
            g_split = 1;
        }
        int hosts = 0, max_local = 0;
        split_layout(split ? "2" : "1", &hosts, &max_local);
        const char *algos[] = {"ring", "hier"};
        for (int a = 0; a < 2; a++) {
            /* Roundings along a block's path: n ring hops for the flat ring,
             * one per host for hier (its intra-host sums are fp32). */
            int hops = a == 0 ? g_size : hosts;
            if (hops == 1)
                hops = 0;
            for (int k = 0; k < 2; k++) {
                for (int seg = 0; seg < 2; seg++) {
                    coll_comm_t *c = make_comm_compressed(algos[a], comps[k],
                                                          seg ? 4096 : 0);
                    char what[128];
                    snprintf(what, sizeof what, "%s%s%s", algos[a],
                             split ? " on 2 fake hosts" : "",
                             seg ? " 4 KiB segments" : "");
                    bufs_t b;
                    bufs_init(&b, counts[NC - 1]);
                    /* Small integers travel exactly in fp16 and bf16: a
                     * compressed sum must still be exact (fp32, and the
                     * 16-bit dtypes, which ignore compression). An fp32
                     * average is rounded through the wire type when data
                     * crossed it (hops > 0): run_compressed_real checks it. */
                    for (size_t ci = 0; ci < NC; ci++) {
                        make_reference(&b, ci + 7, counts[ci]);
                        for (int dt = 0; dt < COLL_DTYPE_COUNT; dt++)
                            for (int op = 0; op < COLL_OP_COUNT; op++) {
                                if (dt == COLL_F32 && op == COLL_AVG && hops)
                                    continue;
                                for (int ip = 0; ip < 2; ip++)
                                    run_exact(c, what, &b, counts[ci],
                                              (coll_dtype_t)dt, (coll_op_t)op,
                                              ip);
                            }
                    }
                    bufs_free(&b);
                    for (int op = 0; op < COLL_OP_COUNT; op++)
                        run_compressed_real(c, what, 30011, comps[k],
                                            (coll_op_t)op, hops);
                    coll_comm_destroy(c);
                }
            }
        }
        if (split) {
            unsetenv("RINGTRAIN_HOST_SPLIT");
            g_split = 0;
        }
    }

    /* Every rank must compress the same way. */
    if (g_size > 1) {
        coll_config_t cfg;
        coll_config_init(&cfg);
        cfg.compression = g_rank == 0 ? COLL_COMPRESS_FP16 : COLL_COMPRESS_NONE;
        coll_comm_t *bad = NULL;
        CHECK_INT(coll_comm_create(&bad, MPI_COMM_WORLD, &cfg), RT_EMISMATCH,
                  "compression differing between ranks");
    }
    coll_config_t cfg;
    coll_config_init(&cfg);
    cfg.compression = (coll_compression_t)7;
    coll_comm_t *bad = NULL;
    CHECK_INT(coll_comm_create(&bad, MPI_COMM_WORLD, &cfg), RT_EINVAL,
              "unknown compression 7");
    if (g_rank == 0)
        printf("np %d: compress passed\n", g_size);
}

/* ---- a late peer host: waiting costs no core ------------------------------------- */

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_idle(void)
{
    if (g_size != 4)
        FAIL("the idle part runs at 4 ranks (two fake hosts of two)");
    setenv("RINGTRAIN_HOST_SPLIT", "2", 1);
    coll_config_t cfg;
    coll_config_init(&cfg);
    cfg.algorithm = "hier";
    cfg.stall_timeout = 0.0; /* wait forever */
    coll_comm_t *c = NULL;
    int rc = coll_comm_create(&c, MPI_COMM_WORLD, &cfg);
    if (rc != 0)
        FAIL("coll_comm_create(hier, 2 fake hosts): %s", rt_strerror(rc));
    const size_t count = (size_t)1 << 18;
    float *buf = malloc(count * sizeof *buf);
    if (buf == NULL)
        FAIL("out of memory");
    const double late = 1.0;
    double times[2] = {0, 0}; /* wall, CPU */
    for (int round = 0; round < 2; round++) { /* round 0 warms up */
        for (size_t i = 0; i < count; i++)
            buf[i] = int_input(7, g_rank, i);
        MPI_Barrier(MPI_COMM_WORLD);
        if (round == 1 && g_rank == 2)
            usleep((useconds_t)(late * 1e6));
        double w0 = rt_now(), c0 = cpu_seconds();
        rc = coll_allreduce(c, COLL_IN_PLACE, buf, count, COLL_F32, COLL_SUM);
        times[0] = rt_now() - w0;
        times[1] = cpu_seconds() - c0;
        if (rc != 0)
            FAIL("hier allreduce with a late peer host: %s", rt_strerror(rc));
        for (size_t i = 0; i < count; i++) {
            float want = 0;
            for (int r = 0; r < g_size; r++)
                want += int_input(7, r, i);
            if (buf[i] != want)
                FAIL("element %zu: %g, expected %g", i, (double)buf[i], (double)want);
        }
    }
    double all[8];
    MPI_Gather(times, 2, MPI_DOUBLE, all, 2, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    if (g_rank == 0)
        for (int r = 0; r < g_size; r++)
            printf("rank %d: %.2f s in the allreduce, %.2f s of CPU\n", r, all[2 * r],
                   all[2 * r + 1]);
    /* Ranks 0 and 1 (host A) wait for rank 2 in the overlapped allgather. */
    if (g_rank < 2 && times[1] > 0.1 * times[0])
        FAIL("rank %d used %.2f s of CPU in %.2f s waiting for a late peer host "
             "(stall_timeout 0): the wait spins instead of sleeping",
             g_rank, times[1], times[0]);
    free(buf);
    coll_comm_destroy(c);
    unsetenv("RINGTRAIN_HOST_SPLIT");
    if (g_rank == 0)
        printf("np %d: idle passed\n", g_size);
}

/* ---- a stalled peer breaks the communicator ------------------------------------ */

static void test_stall(void)
{
    if (g_size < 2)
        FAIL("the stall part needs two or more ranks");
    coll_config_t cfg;
    coll_config_init(&cfg);
    /* Shared memory: the stalled call leaves no MPI request behind. */
    cfg.algorithm = "shm_oneshot";
    cfg.stall_timeout = 0.2;
    coll_comm_t *c = NULL;
    int rc = coll_comm_create(&c, MPI_COMM_WORLD, &cfg);
    if (rc != 0)
        FAIL("coll_comm_create(shm_oneshot, stall_timeout 0.2): %s", rt_strerror(rc));
    if (g_rank == 0) {
        float x[64] = {0}, y[64];
        coll_request_t lone, later;
        CHECK_INT(coll_allreduce_start(c, x, y, 64, COLL_F32, COLL_SUM, &lone), 0,
                  "start of the allreduce no peer joins");
        /* No wait, test or lock here: the next start reads the failure
         * state while (or after) the progress thread writes it. */
        usleep(600 * 1000);
        rc = coll_allreduce_start(c, x, y, 64, COLL_F32, COLL_SUM, &later);
        if (rc == 0)
            rc = coll_wait(&later);
        CHECK_INT(rc, RT_ETIMEDOUT, "an allreduce started after the stall");
        CHECK_INT(coll_wait(&lone), RT_ETIMEDOUT, "the stalled allreduce");
        CHECK_INT(coll_allreduce(c, x, y, 64, COLL_F32, COLL_SUM), RT_ETIMEDOUT,
                  "a blocking allreduce on the broken communicator");
        CHECK_INT(coll_barrier(c), RT_ETIMEDOUT, "a barrier on the broken communicator");
        coll_msg_t msg = {.peer = 1, .buf = x, .bytes = sizeof x};
        CHECK_INT(coll_exchange(c, &msg, 1, NULL, 0), RT_ETIMEDOUT,
                  "an exchange on the broken communicator");
    }
    /* The other ranks never joined; they meet rank 0 again here. */
    MPI_Barrier(MPI_COMM_WORLD);
    coll_comm_destroy(c);
    if (g_rank == 0)
        printf("np %d: stall passed\n", g_size);
}

/* ---- > 2^31 bytes ------------------------------------------------------------------- */

/* Every rank gets buf, or all skip together (exit 77): a rank that left
 * alone would leave the others waiting in their first collective. Not
 * zeroed (rt_alloc_aligned would touch all 2 GiB first): the test fills it. */
static uint16_t *huge_alloc_or_skip(size_t bytes)
{
    void *buf = NULL;
    if (posix_memalign(&buf, 4096, bytes) != 0)
        buf = NULL;
    int have = buf != NULL, all = 0;
    MPI_Allreduce(&have, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (all)
        return buf;
    int *each = malloc((size_t)g_size * sizeof *each);
    if (each == NULL)
        FAIL("out of memory");
    MPI_Gather(&have, 1, MPI_INT, each, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (g_rank == 0) {
        printf("cannot allocate %zu bytes on rank(s)", bytes);
        for (int r = 0; r < g_size; r++)
            if (!each[r])
                printf(" %d", r);
        printf("; skipped on every rank\n");
        fflush(stdout);
    }
    free(each);
    free(buf);
    MPI_Finalize();
    exit(77);
}

static void test_huge(void)
{
    const size_t count = ((size_t)1 << 30) + 5; /* fp16: 2 GiB + 10 bytes */
    uint16_t *buf = huge_alloc_or_skip(count * 2);
    /* shm (the default here) and ring; `mpi` cuts the same call into 1 GiB
     * MPI_Allreduce calls, and the 4 KiB-chunk runs of `small` test that
     * loop, so Open MPI's own 20-second 2 GiB allreduce is not repeated. */
    const char *algos[] = {NULL, "ring"};
    enum { PERIOD = 11, BLOCK = PERIOD * 4096 };
    uint16_t *want = malloc(BLOCK * sizeof *want);
    if (want == NULL)
        FAIL("out of memory");
    for (size_t a = 0; a < sizeof algos / sizeof algos[0]; a++) {
        coll_comm_t *c = make_comm(algos[a]);
        /* Rank-dependent small integers with period 11. */
        for (int k = 0; k < PERIOD; k++) {
            buf[k] = f16_from((float)((k + 3 * g_rank) % PERIOD - 5));
            float sum = 0;
            for (int r = 0; r < g_size; r++)
                sum += (float)((k + 3 * r) % PERIOD - 5);
            want[k] = f16_from(sum);
        }
        for (size_t k = PERIOD; k < BLOCK; k++)
            want[k] = want[k % PERIOD];
        for (size_t filled = PERIOD; filled < count;) {
            size_t n = filled < count - filled ? filled : count - filled;
            memcpy(buf + filled, buf, n * sizeof *buf);
            filled += n;
        }
        double t0 = rt_now();
        int rc = coll_allreduce(c, COLL_IN_PLACE, buf, count, COLL_F16, COLL_SUM);
        double t = rt_now() - t0;
        if (rc != 0)
            FAIL("huge allreduce (%s): %s", algos[a] ? algos[a] : "auto",
                 rt_strerror(rc));
        for (size_t off = 0; off < count; off += BLOCK) {
            size_t n = count - off < BLOCK ? count - off : BLOCK;
            if (memcmp(buf + off, want, n * sizeof *buf) == 0)
                continue;
            for (size_t i = 0; i < n; i++)
                if (buf[off + i] != want[i])
                    FAIL("huge allreduce (%s) element %zu: 0x%04x, expected "
                         "0x%04x", algos[a] ? algos[a] : "auto", off + i,
                         buf[off + i], want[i]);
        }
        if (g_rank == 0)
            printf("np %d: %zu-byte fp16 allreduce (%s) correct, %.2f s\n",
                   g_size, count * 2,
                   algos[a] ? algos[a] : coll_algorithm_for(c, count, COLL_F16), t);
        coll_comm_destroy(c);
    }
    free(want);
    free(buf);
}

int main(int argc, char **argv)
{
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    if (provided < MPI_THREAD_SERIALIZED) {
        if (g_rank == 0)
            printf("MPI lacks MPI_THREAD_SERIALIZED; skipped\n");
        MPI_Finalize();
        return 77;
    }
    const char *part = argc > 1 ? argv[1] : "small";
    if (strcmp(part, "small") == 0)
        test_small();
    else if (strcmp(part, "big") == 0)
        test_big();
    else if (strcmp(part, "sequence") == 0)
        test_sequence();
    else if (strcmp(part, "async") == 0)
        test_async();
    else if (strcmp(part, "helpers") == 0)
        test_helpers();
    else if (strcmp(part, "misuse") == 0)
        test_misuse();
    else if (strcmp(part, "huge") == 0)
        test_huge();
    else if (strcmp(part, "hier") == 0)
        test_hier();
    else if (strcmp(part, "compress") == 0)
        test_compress();
    else if (strcmp(part, "stall") == 0)
        test_stall();
    else if (strcmp(part, "idle") == 0)
        test_idle();
    else
        FAIL("unknown part '%s' (small, big, sequence, async, helpers, misuse, "
             "huge, hier, compress, stall, idle)", part);
    MPI_Finalize();
    return 0;
}
