/* GPU test for the collectives' CUDA mode: allreduce on device buffers
 * through the NCCL backend (argument "nccl") or the host-staged backend
 * ("host"), under mpirun -np N. Exit 77 (skipped) without a CUDA device, or
 * for nccl when this host has fewer devices than ranks (NCCL takes one GPU
 * per rank). Checks:
 *
 *   values   fp32, fp16, bf16 x sum, avg x counts {0, 1, 3, 1000, 65537,
 *            2^20+5} x out of place and in place, blocking and async: rank
 *            r's element i is ((7i + 13r) mod 9) - 4, so every sum is exact in
 *            every dtype and order: sums must match bit for bit; avg within
 *            one unit in the last place of the dtype (NCCL scales each input
 *            by 1/n before summing, the host algorithms scale the sum). An
 *            out-of-place output starts as NaN, so a skipped element shows.
 *   ordering 64 additions queued on the compute stream right before an
 *            asynchronous start must all be in the reduced input (the start
 *            orders the communication after them on the device), and work
 *            queued after coll_wait must see the result.
 *   many     100 requests in flight at once (more than the ready-event ring
 *            holds), each on its own slice written just before its start.
 *   misuse   "nccl" on host buffers, a second attach, a backend that
 *            contradicts the forced algorithm: RT_EINVAL, no crash.
 *   fault    (argument "nccl-fault", the emulation only: it injects an
 *            asynchronous NCCL error from the 3rd allreduce on) the wait
 *            reports RT_ENCCL instead of spinning, later calls fail at once,
 *            and destroy returns (the NCCL communicator was aborted).
 *   hang     (argument "nccl-hang", the emulation only: NCCL_EMU_HANG_AT=3
 *            makes the 3rd allreduce never finish, with no error) the wait
 *            gives up after stall_timeout (0.5 s here) with RT_ETIMEDOUT and
 *            aborts NCCL, which ends the hung work; later calls fail.
 *
 * "nccl-ordered", "nccl-ordered-fault" and "nccl-ordered-hang" run the same
 * with coll_comm_cuda_set_stream_ordered(): values, ordering (work queued
 * after coll_wait sees the result, through the compute stream's wait on
 * the device) and many in flight as above; a fault is reported by the wait
 * of the call that hit it; a hang is found by the progress thread while it
 * idles: the wait returned at once, and the next host-side collective (a
 * barrier) reports RT_ETIMEDOUT after stall_timeout.
 *
 * The same file runs in the gpu-emu suite against tests/gpu/emu (a one-rank
 * NCCL that is a copy, and a CPU "device"), where it checks the plumbing:
 * events, staging, waits, argument checks. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "collectives.h"
#include "common/common.h"
#include "kernels.h"

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

static float input_value(int rank, size_t i)
{
    return (float)((int)((i * 7 + (size_t)rank * 13) % 9) - 4);
}

static void put(coll_dtype_t dt, void *buf, size_t i, float v)
{
    if (dt == COLL_F32)
        ((float *)buf)[i] = v;
    else
        ((uint16_t *)buf)[i] = dt == COLL_F16 ? f16_from(v) : bf16_from(v);
}

static float get(coll_dtype_t dt, const void *buf, size_t i)
{
    if (dt == COLL_F32)
        return ((const float *)buf)[i];
    uint16_t u = ((const uint16_t *)buf)[i];
    return dt == COLL_F16 ? f16_to(u) : bf16_to(u);
}

static float round_to(coll_dtype_t dt, float v)
{
    return dt == COLL_F32 ? v : dt == COLL_F16 ? f16_to(f16_from(v))
                                               : bf16_to(bf16_from(v));
}

static void upload(void *dev, const void *host, size_t bytes)
{
    CHECK_INT(kernels_cuda_copy_to_device(dev, host, bytes), 0, "upload");
}

static void download(void *host, const void *dev, size_t bytes)
{
    CHECK_INT(kernels_cuda_synchronize(), 0, "kernels_cuda_synchronize");
    CHECK_INT(kernels_cuda_copy_to_host(host, dev, bytes), 0, "download");
}

/* ---- values ------------------------------------------------------------------ */

static void check_values(coll_comm_t *c, coll_dtype_t dt, coll_op_t op,
                         size_t count, int in_place, int async, void *host,
                         void *dsend, void *drecv)
{
    size_t esize = coll_dtype_size(dt), bytes = count * esize;
    for (size_t i = 0; i < count; i++)
        put(dt, host, i, input_value(g_rank, i));
    upload(in_place ? drecv : dsend, host, bytes);
    if (!in_place) {
        memset(host, 0xff, bytes); /* NaN in every dtype */
        upload(drecv, host, bytes);
    }
    const void *send = in_place ? COLL_IN_PLACE : dsend;
    if (async) {
        coll_request_t req;
        CHECK_INT(coll_allreduce_start(c, send, drecv, count, dt, op, &req), 0,
                  "coll_allreduce_start");
        CHECK_INT(coll_wait(&req), 0, "coll_wait");
    } else {
        CHECK_INT(coll_allreduce(c, send, drecv, count, dt, op), 0,
                  "coll_allreduce");
    }
    if (count == 0)
        return;
    download(host, drecv, bytes);
    const double ulp = dt == COLL_F32 ? 0x1p-23 : dt == COLL_F16 ? 0x1p-10 : 0x1p-7;
    const float scale = 1.0f / (float)g_size;
    for (size_t i = 0; i < count; i++) {
        float sum = 0.0f;
        for (int r = 0; r < g_size; r++)
            sum += input_value(r, i);
        float want = round_to(dt, op == COLL_AVG ? sum * scale : sum);
        float got = get(dt, host, i);
        double tol = op == COLL_AVG ? ulp * fabs((double)want) : 0.0;
        if (!(fabs((double)got - (double)want) <= tol))
            FAIL("%s %s count %zu %s %s: element %zu = %.9g, expected %.9g",
                 coll_dtype_name(dt), coll_op_name(op), count,
                 in_place ? "in place" : "out of place",
                 async ? "async" : "blocking", i, (double)got, (double)want);
    }
}

static void test_values(coll_comm_t *c)
{
    static const size_t counts[] = {0, 1, 3, 1000, 65537, ((size_t)1 << 20) + 5};
    size_t cap = counts[sizeof counts / sizeof counts[0] - 1];
    void *host = malloc(cap * 4);
    void *dsend = kernels_cuda_buffer_alloc(cap * 4);
    void *drecv = kernels_cuda_buffer_alloc(cap * 4);
    if (!host || !dsend || !drecv)
        FAIL("out of memory");
    int tested = 0;
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++)
        for (int dt = 0; dt < COLL_DTYPE_COUNT; dt++)
            for (int op = 0; op < COLL_OP_COUNT; op++)
                for (int ip = 0; ip < 2; ip++) {
                    int async = (int)((k + (size_t)dt + (size_t)op + (size_t)ip) & 1);
                    check_values(c, (coll_dtype_t)dt, (coll_op_t)op, counts[k],
                                 ip, async, host, dsend, drecv);
                    tested++;
                }
    if (g_rank == 0)
        printf("values: %d allreduces (3 dtypes, sum/avg, 6 counts, in/out of "
               "place) exact\n", tested);
    kernels_cuda_buffer_free(dsend);
    kernels_cuda_buffer_free(drecv);
    free(host);
}

/* ---- ordering ------------------------------------------------------------------ */

static void test_ordering(coll_comm_t *c)
{
    /* Long enough that on a GPU the adds are still running when the start
     * returns: without the ready event the communication would read
     * their input early. */
    const size_t count = (size_t)4 << 20;
    const int adds = 64;
    float *host = malloc(count * sizeof(float));
    float *ones = malloc(count * sizeof(float));
    float *buf = kernels_cuda_buffer_alloc(count * sizeof(float));
    float *dones = kernels_cuda_buffer_alloc(count * sizeof(float));
    if (!host || !ones || !buf || !dones)
        FAIL("out of memory");
    for (size_t i = 0; i < count; i++) {
        host[i] = input_value(g_rank, i);
        ones[i] = 1.0f;
    }
    upload(buf, host, count * sizeof(float));
    upload(dones, ones, count * sizeof(float));
    for (int a = 0; a < adds; a++)
        add_inplace_cuda(buf, dones, count);
    coll_request_t req;
    CHECK_INT(coll_allreduce_start(c, COLL_IN_PLACE, buf, count, COLL_F32,
                                   COLL_SUM, &req),
              0, "start after queued adds");
    CHECK_INT(coll_wait(&req), 0, "wait");
    add_inplace_cuda(buf, dones, count); /* after the wait: sees the result */
    download(host, buf, count * sizeof(float));
    for (size_t i = 0; i < count; i++) {
        float want = 1.0f;
        for (int r = 0; r < g_size; r++)
            want += input_value(r, i) + (float)adds;
        if (host[i] != want)
            FAIL("ordering: element %zu = %.9g, expected %.9g (the allreduce "
                 "did not wait for the compute stream, or later work did not "
                 "see its result)", i, (double)host[i], (double)want);
    }
    if (g_rank == 0)
        printf("ordering: %d queued adds before the start were reduced; work "
               "after the wait saw the result\n", adds);
    kernels_cuda_buffer_free(buf);
    kernels_cuda_buffer_free(dones);
    free(host);
    free(ones);
}

/* ---- many in flight ------------------------------------------------------------ */

static void test_many(coll_comm_t *c)
{
    enum { REQS = 100 };
    const size_t slice = 4099;
    size_t total = slice * REQS;
    float *host = malloc(total * sizeof(float));
    float *buf = kernels_cuda_buffer_alloc(total * sizeof(float));
    float *delta = kernels_cuda_buffer_alloc(slice * sizeof(float));
    coll_request_t *reqs = calloc(REQS, sizeof *reqs);
    if (!host || !buf || !delta || !reqs)
        FAIL("out of memory");
    for (size_t i = 0; i < total; i++)
        host[i] = input_value(g_rank, i);
    upload(buf, host, total * sizeof(float));
    for (size_t i = 0; i < slice; i++)
        host[i] = 2.0f;
    upload(delta, host, slice * sizeof(float));
    for (int k = 0; k < REQS; k++) {
        add_inplace_cuda(buf + (size_t)k * slice, delta, slice);
        CHECK_INT(coll_allreduce_start(c, COLL_IN_PLACE, buf + (size_t)k * slice,
                                       slice, COLL_F32, COLL_AVG, &reqs[k]),
                  0, "start");
    }
    for (int k = REQS - 1; k >= 0; k--)
        CHECK_INT(coll_wait(&reqs[k]), 0, "wait (reverse order)");
    download(host, buf, total * sizeof(float));
    const float scale = 1.0f / (float)g_size;
    for (size_t i = 0; i < total; i++) {
        float sum = 0.0f;
        for (int r = 0; r < g_size; r++)
            sum += input_value(r, i) + 2.0f;
        float want = sum * scale;
        if (!(fabs((double)host[i] - (double)want) <= 0x1p-23 * fabs((double)want)))
            FAIL("many: element %zu (request %zu) = %.9g, expected %.9g", i,
                 i / slice, (double)host[i], (double)want);
    }
    if (g_rank == 0)
        printf("many: %d requests in flight, each after its own compute "
               "work, all correct\n", REQS);
    kernels_cuda_buffer_free(buf);
    kernels_cuda_buffer_free(delta);
    free(host);
    free(reqs);
}

/* ---- misuse -------------------------------------------------------------------- */

static void test_misuse(coll_comm_t *attached, int device, int nccl)
{
    CHECK_INT(coll_comm_attach_cuda(attached, device, kernels_cuda_stream(),
                                    COLL_CUDA_AUTO),
              RT_EINVAL, "second attach");
    if (nccl) {
        /* Forced nccl: host buffers are refused, and so is the host backend. */
        coll_config_t cfg;
        coll_config_init(&cfg);
        cfg.algorithm = "nccl";
        coll_comm_t *c = NULL;
        CHECK_INT(coll_comm_create(&c, MPI_COMM_WORLD, &cfg), 0,
                  "create with nccl forced");
        float x[4] = {1, 2, 3, 4};
        CHECK_INT(coll_allreduce(c, COLL_IN_PLACE, x, 4, COLL_F32, COLL_SUM),
                  RT_EINVAL, "nccl on host buffers");
        CHECK_INT(coll_comm_attach_cuda(c, device, kernels_cuda_stream(),
                                        COLL_CUDA_HOST),
                  RT_EINVAL, "host backend with nccl forced");
        coll_comm_destroy(c);
    }
    if (g_rank == 0)
        printf("misuse: refused with RT_EINVAL\n");
}

/* Two allreduces that work, then the start of the 3rd (where the
 * emulation injects its failure) on buf (count floats). */
static void start_third(coll_comm_t *c, float *buf, size_t count, coll_request_t *req)
{
    for (int k = 1; k <= 2; k++)
        CHECK_INT(coll_allreduce(c, COLL_IN_PLACE, buf, count, COLL_F32, COLL_SUM),
                  0, "allreduce before the injected failure");
    CHECK_INT(coll_allreduce_start(c, COLL_IN_PLACE, buf, count, COLL_F32,
                                   COLL_SUM, req),
              0, "start of the failing allreduce");
}

static void test_fault(coll_comm_t *c)
{
    const size_t count = 1000;
    float *buf = kernels_cuda_buffer_alloc(count * sizeof(float));
    if (!buf)
        FAIL("out of memory");
    coll_request_t req;
    start_third(c, buf, count, &req);
    CHECK_INT(coll_wait(&req), RT_ENCCL, "wait on an asynchronous NCCL error");
    CHECK_INT(coll_allreduce(c, COLL_IN_PLACE, buf, count, COLL_F32, COLL_SUM),
              RT_ENCCL, "allreduce after the communicator broke");
    kernels_cuda_buffer_free(buf);
    if (g_rank == 0)
        printf("fault: asynchronous NCCL error -> RT_ENCCL, communicator "
               "aborted, later calls fail at once\n");
}

/* The 3rd allreduce never finishes (NCCL_EMU_HANG_AT=3). */
static void test_hang(coll_comm_t *c, int ordered)
{
    const size_t count = 1000;
    float *buf = kernels_cuda_buffer_alloc(count * sizeof(float));
    if (!buf)
        FAIL("out of memory");
    coll_request_t req;
    double t0 = rt_now();
    start_third(c, buf, count, &req);
    if (ordered) {
        /* Queued: done at once; the idle progress thread finds the hang. */
        CHECK_INT(coll_wait(&req), 0, "stream-ordered wait (queued)");
        CHECK_INT(coll_barrier(c), RT_ETIMEDOUT, "barrier after a hung allreduce");
    } else {
        CHECK_INT(coll_wait(&req), RT_ETIMEDOUT, "wait on a hung allreduce");
    }
    double waited = rt_now() - t0;
    if (waited < 0.45)
        FAIL("hang: gave up after %.2f s, before the 0.5 s stall_timeout", waited);
    CHECK_INT(coll_allreduce(c, COLL_IN_PLACE, buf, count, COLL_F32, COLL_SUM),
              RT_ETIMEDOUT, "allreduce after the communicator broke");
    kernels_cuda_buffer_free(buf);
    if (g_rank == 0)
        printf("hang: %s after %.2f s -> RT_ETIMEDOUT, NCCL aborted, later calls "
               "fail at once\n", ordered ? "queued at once; surfaced at the next barrier"
                                        : "the wait gave up", waited);
}

int main(int argc, char **argv)
{
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    const char *mode = argc == 2 ? argv[1] : "";
    int ordered = strncmp(mode, "nccl-ordered", 12) == 0;
    const char *base = ordered ? mode + 12 : strncmp(mode, "nccl", 4) == 0 ? mode + 4 : "x";
    int fault = strcmp(base, "-fault") == 0, hang = strcmp(base, "-hang") == 0;
    int nccl = strncmp(mode, "nccl", 4) == 0;
    if (!(strcmp(mode, "host") == 0 || (nccl && (base[0] == '\0' || fault || hang)))) {
        if (g_rank == 0)
            fprintf(stderr, "usage: mpirun -np N %s nccl[-ordered][-fault|-hang]|host\n",
                    argv[0]);
        MPI_Finalize();
        return 2;
    }
    const char *inject = fault ? "NCCL_EMU_ASYNC_ERROR_AT" : "NCCL_EMU_HANG_AT";
    if ((fault || hang) && !getenv(inject)) {
        if (g_rank == 0)
            printf("test_coll_nccl: skipped: %s needs the emulation's %s\n", mode, inject);
        MPI_Finalize();
        return 77;
    }

    coll_comm_t *c = NULL;
    coll_config_t cfg;
    coll_config_init(&cfg);
    cfg.stall_timeout = hang ? 0.5 : 0.0;
    CHECK_INT(coll_comm_create(&c, MPI_COMM_WORLD, &cfg), 0, "coll_comm_create");
    const char *why = NULL;
    int devices = kernels_cuda_device_count(&why);
    int local = coll_comm_local_rank(c), local_size = coll_comm_local_size(c);
    /* Every rank decides the same way (the same host's count decides). */
    double need[1] = {devices <= 0 ? 2.0 : nccl && local_size > devices ? 1.0 : 0.0};
    CHECK_INT(coll_allreduce_f64_max(c, need, 1), 0, "agree on skipping");
    if (need[0] > 0) {
        if (g_rank == 0)
            printf("test_coll_nccl: skipped: %s\n",
                   need[0] > 1 ? "no CUDA device" : "fewer GPUs than ranks on a host");
        coll_comm_destroy(c);
        MPI_Finalize();
        return 77;
    }
    int device = local % devices;
    CHECK_INT(kernels_cuda_init(device), 0, "kernels_cuda_init");
    CHECK_INT(coll_comm_attach_cuda(c, device, kernels_cuda_stream(),
                                    nccl ? COLL_CUDA_NCCL : COLL_CUDA_HOST),
              0, "coll_comm_attach_cuda");
    CHECK_INT(strcmp(coll_comm_cuda_backend(c), nccl ? "nccl" : "host"), 0,
              "backend name");
    if (ordered)
        CHECK_INT(coll_comm_cuda_set_stream_ordered(c, 1), 0, "stream-ordered");
    if (fault || hang) {
        if (fault)
            test_fault(c);
        else
            test_hang(c, ordered);
        coll_comm_destroy(c);
        kernels_cuda_free();
        MPI_Finalize();
        return 0;
    }
    if (g_rank == 0)
        printf("backend %s%s, %d rank(s), algorithm at 1 MiB: %s\n",
               coll_comm_cuda_backend(c), ordered ? " (stream-ordered)" : "", g_size,
               coll_algorithm_for(c, (size_t)1 << 18, COLL_F32));

    test_values(c);
    test_ordering(c);
    test_many(c);
    test_misuse(c, device, nccl);

    coll_comm_destroy(c);
    CHECK_INT(kernels_cuda_synchronize(), 0, "final synchronize");
    kernels_cuda_free();
    MPI_Finalize();
    return 0;
}
