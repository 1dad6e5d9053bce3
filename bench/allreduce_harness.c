/* bench: nccl-tests-style harness (flags, timing, check, table) for
 * ringtrain-allreduce-bench. See allreduce_harness.h.
 *
 * Timing: per size, `warmup` untimed calls, then `iters` calls between two
 * clock reads; the time of a size is the slowest rank's average (cross-rank
 * max through coll_allreduce_f64_max). With the peer on, our algorithm and
 * Open MPI's MPI_Allreduce (a second communicator forced to `mpi`) are timed
 * alternately in two rounds on the same buffers, and a comparison table
 * follows the nccl-tests table.
 */
#include "allreduce_harness.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#ifdef RINGTRAIN_BENCH_CUDA
#include "kernels/kernels.h"
#endif

#define MAX_SIZES 128

typedef struct {
    size_t bytes;
    double t_ours[2], t_peer[2]; /* [out-of-place, in-place], seconds */
    const char *algo;
} size_row_t;

static void usage(FILE *out, const char *prog)
{
    fprintf(out,
        "usage: mpirun -np N %s [options]\n"
        "  -b, --minbytes BYTES     smallest size (K/M/G suffixes; default 32M)\n"
        "  -e, --maxbytes BYTES     largest size (default 32M)\n"
        "  -f, --stepfactor N       multiply the size by N each step (default 2)\n"
        "  -i, --stepbytes BYTES    or add BYTES each step\n"
        "  -n, --iters N            timed iterations per size (default 20)\n"
        "  -w, --warmup_iters N     untimed warm-up iterations (default 5)\n"
        "  -c, --check 0|1          check results (default 1)\n"
        "  -d, --datatype T         float | half | bfloat16 (default float)\n"
        "  -o, --op OP              sum | avg (default sum)\n"
        "      --algo NAME          auto | copy | ring | rd | shm | shm_oneshot | mpi\n"
        "                           | hier | nccl (default: $RINGTRAIN_ALLREDUCE,\n"
        "                           else auto)\n"
        "      --compression C      none | fp16 | bf16: what fp32 ring/hier traffic\n"
        "                           travels as (default none; the peer never does)\n"
        "      --device cpu|cuda    buffers in host memory (default) or on each\n"
        "                           rank's GPU by local rank (--algo nccl implies\n"
        "                           cuda; other algorithms then stage through host)\n"
        "      --peer mpi|none      also time MPI_Allreduce in the same run and\n"
        "                           print both (default mpi for host buffers, none\n"
        "                           for --algo mpi and for device buffers)\n"
        "  -h, --help               this text\n",
        prog);
}

static int parse_bytes(const char *text, size_t *out)
{
    uint64_t v = 0;
    if (rt_parse_u64(text, 0, (uint64_t)1 << 40, 1, &v) != 0)
        return -1;
    *out = (size_t)v;
    return 0;
}

static int parse_long(const char *text, long min, long max, long *out)
{
    uint64_t v = 0;
    if (rt_parse_u64(text, (uint64_t)min, (uint64_t)max, 0, &v) != 0)
        return -1;
    *out = (long)v;
    return 0;
}

/* Returns 0, or fills err and returns -1. */
static int parse_args(int argc, char **argv, bench_opts_t *o, int *help,
                      char *err, size_t errlen)
{
    static const struct option longopts[] = {
        {"minbytes", required_argument, NULL, 'b'},
        {"maxbytes", required_argument, NULL, 'e'},
        {"stepfactor", required_argument, NULL, 'f'},
        {"stepbytes", required_argument, NULL, 'i'},
        {"iters", required_argument, NULL, 'n'},
        {"warmup_iters", required_argument, NULL, 'w'},
        {"check", required_argument, NULL, 'c'},
        {"datatype", required_argument, NULL, 'd'},
        {"op", required_argument, NULL, 'o'},
        {"algo", required_argument, NULL, 'A'},
        {"peer", required_argument, NULL, 'P'},
        {"compression", required_argument, NULL, 'C'},
        {"device", required_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->min_bytes = o->max_bytes = (size_t)32 << 20;
    o->step_factor = 2;
    o->iters = 20;
    o->warmup = 5;
    o->check = 1;
    o->dtype = COLL_F32;
    o->op = COLL_SUM;
    o->peer = -1;
    o->cuda = -1;
    *help = 0;
    opterr = 0;
    optind = 1;
    int c;
    long v;
    while ((c = getopt_long(argc, argv, ":b:e:f:i:n:w:c:d:o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            if (parse_bytes(optarg, &o->min_bytes) != 0)
                goto bad_number;
            break;
        case 'e':
            if (parse_bytes(optarg, &o->max_bytes) != 0)
                goto bad_number;
            break;
        case 'f':
            if (parse_long(optarg, 2, 1 << 20, &v) != 0) {
                snprintf(err, errlen, "-f %s: the step factor must be an "
                         "integer >= 2", optarg);
                return -1;
            }
            o->step_factor = (size_t)v;
            o->step_bytes = 0;
            break;
        case 'i':
            if (parse_bytes(optarg, &o->step_bytes) != 0 || o->step_bytes == 0) {
                snprintf(err, errlen, "-i %s: the step must be a byte count "
                         ">= 1", optarg);
                return -1;
            }
            o->step_factor = 0;
            break;
        case 'n':
            if (parse_long(optarg, 1, 100000000, &o->iters) != 0)
                goto bad_number;
            break;
        case 'w':
            if (parse_long(optarg, 0, 100000000, &o->warmup) != 0)
                goto bad_number;
            break;
        case 'c':
            if (parse_long(optarg, 0, 1, &v) != 0) {
                snprintf(err, errlen, "-c %s: expected 0 or 1", optarg);
                return -1;
            }
            o->check = (int)v;
            break;
        case 'd':
            if (strcmp(optarg, "float") == 0 || strcmp(optarg, "float32") == 0)
                o->dtype = COLL_F32;
            else if (strcmp(optarg, "half") == 0 || strcmp(optarg, "float16") == 0)
                o->dtype = COLL_F16;
            else if (strcmp(optarg, "bfloat16") == 0)
                o->dtype = COLL_BF16;
            else {
                snprintf(err, errlen, "-d %s: unknown data type; use float, "
                         "half or bfloat16", optarg);
                return -1;
            }
            break;
        case 'o':
            if (strcmp(optarg, "sum") == 0)
                o->op = COLL_SUM;
            else if (strcmp(optarg, "avg") == 0)
                o->op = COLL_AVG;
            else {
                snprintf(err, errlen, "-o %s: unknown reduction; use sum or avg",
                         optarg);
                return -1;
            }
            break;
        case 'A': {
            int known = strcmp(optarg, "auto") == 0;
            for (const char *const *n = coll_algorithm_names(); *n && !known; n++)
                known = strcmp(optarg, *n) == 0;
            if (!known) {
                char list[256] = "auto";
                for (const char *const *n = coll_algorithm_names(); *n; n++) {
                    strncat(list, ", ", sizeof list - strlen(list) - 1);
                    strncat(list, *n, sizeof list - strlen(list) - 1);
                }
                snprintf(err, errlen, "--algo %s: unknown algorithm; valid: %s",
                         optarg, list);
                return -1;
            }
            o->algo = optarg;
            break;
        }
        case 'P':
            if (strcmp(optarg, "mpi") == 0)
                o->peer = 1;
            else if (strcmp(optarg, "none") == 0)
                o->peer = 0;
            else {
                snprintf(err, errlen, "--peer %s: use mpi or none", optarg);
                return -1;
            }
            break;
        case 'C':
            if (coll_compression_parse(optarg, &o->compression) != 0) {
                snprintf(err, errlen, "--compression %s: use none, fp16 or "
                         "bf16", optarg);
                return -1;
            }
            break;
        case 'D':
            if (strcmp(optarg, "cpu") == 0)
                o->cuda = 0;
            else if (strcmp(optarg, "cuda") == 0)
                o->cuda = 1;
            else {
                snprintf(err, errlen, "--device %s: use cpu or cuda", optarg);
                return -1;
            }
            break;
        case 'h':
            *help = 1;
            return 0;
        case ':':
            snprintf(err, errlen, "%s needs a value", argv[optind - 1]);
            return -1;
        default:
            snprintf(err, errlen, "unknown option %s", argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
        return -1;
    }
    if (o->min_bytes > o->max_bytes) {
        snprintf(err, errlen, "-b %zu is larger than -e %zu; the smallest size "
                 "must not exceed the largest", o->min_bytes, o->max_bytes);
        return -1;
    }
    const char *env = getenv("RINGTRAIN_ALLREDUCE");
    const char *eff = o->algo ? o->algo : env;
    if (o->cuda < 0)
        o->cuda = eff && strcmp(eff, "nccl") == 0;
    if (!o->cuda && eff && strcmp(eff, "nccl") == 0) {
        snprintf(err, errlen, "--algo nccl needs device buffers; drop --device cpu");
        return -1;
    }
    if (o->cuda && o->peer == 1) {
        snprintf(err, errlen, "--peer mpi times MPI_Allreduce on host buffers; with "
                 "--device cuda use --peer none");
        return -1;
    }
#ifndef RINGTRAIN_BENCH_CUDA
    if (o->cuda) {
        snprintf(err, errlen, "--device cuda (or --algo nccl): this build has no CUDA "
                 "support; rebuild with -Dcuda=enabled");
        return -1;
    }
#endif
    if (o->peer < 0)
        o->peer = !o->cuda && !(eff && strcmp(eff, "mpi") == 0);
    return 0;

bad_number:
    snprintf(err, errlen, "-%c %s: not a valid number (byte counts take a "
             "K/M/G suffix)", c, optarg);
    return -1;
}

static double now(void) { return rt_now(); }

/* ---- buffers: host memory, or device memory with a host scratch copy ---------
 * In device mode fill, sentinel and check go through `scratch` (untimed). */
typedef struct {
    int cuda;
    char *scratch;
} bench_mem_t;

static void *mem_alloc(const bench_mem_t *mem, size_t bytes)
{
#ifdef RINGTRAIN_BENCH_CUDA
    if (mem->cuda)
        return kernels_cuda_buffer_alloc(bytes);
#endif
    (void)mem;
    return rt_alloc_aligned(bytes, 4096);
}

static void mem_free(const bench_mem_t *mem, void *p)
{
#ifdef RINGTRAIN_BENCH_CUDA
    if (mem->cuda) {
        kernels_cuda_buffer_free(p);
        return;
    }
#endif
    (void)mem;
    rt_free_aligned(p);
}

/* dst (a buffer of ours) = the bytes the caller wrote into *host_view(). */
static char *host_view(const bench_mem_t *mem, char *buf)
{
    return mem->cuda ? mem->scratch : buf;
}

static int mem_commit(const bench_mem_t *mem, char *dst, size_t bytes)
{
#ifdef RINGTRAIN_BENCH_CUDA
    if (mem->cuda)
        return kernels_cuda_copy_to_device(dst, mem->scratch, bytes);
#endif
    (void)mem;
    (void)dst;
    (void)bytes;
    return 0;
}

/* Host bytes of a buffer of ours (device mode: downloaded into scratch). */
static const char *mem_read(const bench_mem_t *mem, const char *src,
                            size_t bytes)
{
#ifdef RINGTRAIN_BENCH_CUDA
    if (mem->cuda) {
        if (kernels_cuda_synchronize() != 0 ||
            kernels_cuda_copy_to_host(mem->scratch, src, bytes) != 0)
            return NULL;
        return mem->scratch;
    }
#endif
    (void)mem;
    (void)bytes;
    return src;
}

static int mem_copy(const bench_mem_t *mem, char *dst, const char *src,
                    size_t bytes)
{
#ifdef RINGTRAIN_BENCH_CUDA
    if (mem->cuda) {
        kernels_cuda_copy_device(dst, src, bytes);
        return kernels_cuda_synchronize();
    }
#endif
    (void)mem;
    memcpy(dst, src, bytes);
    return 0;
}

/* Device mode: this rank's GPU (by local rank) and the communicator in CUDA
 * mode; --algo nccl requires NCCL, a forced CPU algorithm stages through
 * host memory, auto takes NCCL where built. Collective. */
static int device_setup(coll_comm_t *comm, const bench_opts_t *o, int *device)
{
#ifdef RINGTRAIN_BENCH_CUDA
    const char *why = NULL;
    int count = kernels_cuda_device_count(&why);
    int rc = 0;
    if (count <= 0) {
        fprintf(stderr, "ringtrain-allreduce-bench: error: --device cuda: no CUDA device "
                "is visible (%s)\n", why ? why : "0 devices");
        rc = RT_ECUDA;
    } else {
        *device = coll_comm_local_rank(comm) % count;
        rc = kernels_cuda_init(*device);
    }
    double worst = -(double)rc;
    if (coll_allreduce_f64_max(comm, &worst, 1) != 0)
        return RT_EMPI;
    if (worst > 0)
        return rc ? rc : RT_ECUDA;
    const char *eff = o->algo ? o->algo : getenv("RINGTRAIN_ALLREDUCE");
    coll_cuda_backend_t backend = COLL_CUDA_AUTO;
    if (eff && strcmp(eff, "nccl") == 0)
        backend = COLL_CUDA_NCCL;
    else if (eff && eff[0] && strcmp(eff, "auto") != 0)
        backend = COLL_CUDA_HOST;
    rc = coll_comm_attach_cuda(comm, *device, kernels_cuda_stream(), backend);
    if (rc == RT_ENCCL || rc == RT_ECUDA || rc == RT_ETIMEDOUT)
        coll_abort(comm, 1); /* peers may be waiting inside NCCL's setup */
    return rc;
#else
    (void)comm;
    (void)o;
    (void)device;
    return RT_ENOTSUP;
#endif
}

/* Times `iters` calls; returns seconds per call (this rank). */
static int time_batch(coll_comm_t *comm, const void *send, void *recv,
                      size_t count, const bench_opts_t *o, long iters,
                      double *seconds)
{
    double t0 = now();
    for (long i = 0; i < iters; i++) {
        int rc = coll_allreduce(comm, send, recv, count, o->dtype, o->op);
        if (rc != 0)
            return rc;
    }
    *seconds = now() - t0;
    return 0;
}

static const char *human(size_t bytes, char *buf, size_t len)
{
    if (bytes >= ((size_t)1 << 30) && bytes % ((size_t)1 << 30) == 0)
        snprintf(buf, len, "%zuG", bytes >> 30);
    else if (bytes >= ((size_t)1 << 20) && bytes % ((size_t)1 << 20) == 0)
        snprintf(buf, len, "%zuM", bytes >> 20);
    else if (bytes >= 1024 && bytes % 1024 == 0)
        snprintf(buf, len, "%zuK", bytes >> 10);
    else
        snprintf(buf, len, "%zu", bytes);
    return buf;
}

int bench_main(int argc, char **argv, const char *prog, const bench_test_t *test)
{
    bench_opts_t o;
    char err[512] = "";
    int help = 0;
    int bad = parse_args(argc, argv, &o, &help, err, sizeof err) != 0;

    /* A communicator first, even for bad input, so only rank 0 speaks. */
    coll_config_t cfg;
    coll_config_init(&cfg);
    cfg.algorithm = bad || help ? "auto" : o.algo;
    /* Both sides measured as a direct caller would see them: no hand-off to
     * the progress thread for blocking calls. */
    cfg.caller_runs_mpi = 1;
    cfg.compression = bad || help ? COLL_COMPRESS_NONE : o.compression;
    coll_comm_t *comm = NULL;
    int rc = coll_comm_create(&comm, MPI_COMM_WORLD, &cfg);
    if (rc != 0) {
        fprintf(stderr, "%s: error: cannot create the communicator: %s%s\n",
                prog, rt_strerror(rc),
                rc == RT_EINVAL ? " (see the message above)" : "");
        return rc == RT_EINVAL ? 2 : 1;
    }
    const int rank = coll_comm_rank(comm), nranks = coll_comm_size(comm);
    if (bad || help) {
        if (rank == 0) {
            if (bad) {
                fprintf(stderr, "%s: error: %s\n", prog, err);
                fprintf(stderr, "run '%s --help' for the options\n", prog);
            } else {
                usage(stdout, prog);
            }
        }
        coll_comm_destroy(comm);
        return bad ? 2 : 0;
    }

    coll_comm_t *peer = NULL;
    if (o.peer) {
        coll_config_t pcfg;
        coll_config_init(&pcfg);
        pcfg.algorithm = "mpi";
        pcfg.caller_runs_mpi = 1;
        rc = coll_comm_create(&peer, MPI_COMM_WORLD, &pcfg);
        if (rc != 0) {
            fprintf(stderr, "%s: error: cannot create the peer communicator: "
                    "%s\n", prog, rt_strerror(rc));
            coll_comm_destroy(comm);
            return 1;
        }
    }

    bench_mem_t mem = {o.cuda, NULL};
    int device = -1;
    if (o.cuda) {
        rc = device_setup(comm, &o, &device);
        if (rc != 0) {
            fprintf(stderr, "%s: error: cannot put the buffers on a GPU: %s (see "
                    "above)\n", prog, rt_strerror(rc));
            coll_comm_destroy(peer);
            coll_comm_destroy(comm);
#ifdef RINGTRAIN_BENCH_CUDA
            kernels_cuda_free();
#endif
            return rc == RT_EINVAL ? 2 : 1;
        }
    }

    const size_t esize = coll_dtype_size(o.dtype);
    size_t max_count = o.max_bytes / esize;
    size_t alloc = max_count * esize;
    char *send = mem_alloc(&mem, alloc ? alloc : 64);
    char *recv = mem_alloc(&mem, alloc ? alloc : 64);
    if (o.cuda)
        mem.scratch = rt_alloc_aligned(alloc ? alloc : 64, 4096);
    if (send == NULL || recv == NULL || (o.cuda && mem.scratch == NULL)) {
        fprintf(stderr, "%s: error: cannot allocate 2 x %zu bytes for the "
                "buffers; lower -e\n", prog, alloc);
        mem_free(&mem, send);
        mem_free(&mem, recv);
        rt_free_aligned(mem.scratch);
        coll_comm_destroy(peer);
        coll_comm_destroy(comm);
        return 1;
    }
    test->fill(&o, rank, host_view(&mem, send), max_count);
    int failed = mem_commit(&mem, send, alloc) != 0;

    size_row_t rows[MAX_SIZES];
    int nrows = 0;
    double bus_sum = 0.0;
    int bus_n = 0;
    double wrong_total = 0.0;

    char host[256] = "?";
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    if (rank == 0) {
        char hb[32], he[32];
        printf("# %s: nranks %d minBytes %zu maxBytes %zu step: %zu(%s) "
               "warmup iters: %ld iters: %ld validation: %d\n",
               prog, nranks, o.min_bytes, o.max_bytes,
               o.step_factor ? o.step_factor : o.step_bytes,
               o.step_factor ? "factor" : "bytes", o.warmup, o.iters, o.check);
        printf("# algorithm: %s  compression: %s  peer: %s  hosts: %d  "
               "ranks on this host: %d  range: %s..%s\n",
               o.algo ? o.algo : (getenv("RINGTRAIN_ALLREDUCE") ?
                                  getenv("RINGTRAIN_ALLREDUCE") : "auto"),
               coll_compression_name(o.compression),
               o.peer ? "mpi (MPI_Allreduce, same buffers, alternating)" : "none",
               coll_comm_host_count(comm), coll_comm_local_size(comm),
               human(o.min_bytes, hb, sizeof hb), human(o.max_bytes, he, sizeof he));
        if (o.cuda)
            printf("# buffers: device memory (CUDA mode, %s backend)\n",
                   coll_comm_cuda_backend(comm));
        printf("#\n# Using devices\n");
        fflush(stdout);
    }
    /* Each rank's pid and device (-1: cpu), gathered for rank 0 to print. */
    uint64_t *pids = calloc((size_t)nranks, sizeof *pids);
    uint64_t *devs = calloc((size_t)nranks, sizeof *devs);
    if (pids && devs && coll_allgather_u64(comm, (uint64_t)getpid(), pids) == 0 &&
        coll_allgather_u64(comm, (uint64_t)(int64_t)device, devs) == 0 && rank == 0) {
        for (int r = 0; r < nranks; r++) {
            char dev[32] = "cpu";
            if ((int64_t)devs[r] >= 0)
                snprintf(dev, sizeof dev, "cuda:%d", (int)(int64_t)devs[r]);
            printf("#  Rank %2d Group  0 Pid %6d on %10s device %s\n", r,
                   (int)pids[r], r == 0 || coll_comm_host_count(comm) == 1 ? host : "?",
                   dev);
        }
    }
    free(pids);
    free(devs);
    if (rank == 0) {
        printf("#\n");
        printf("#                                                              "
               "out-of-place                       in-place          \n");
        printf("#       size         count      type   redop    root     time  "
               " algbw   busbw #wrong     time   algbw   busbw #wrong\n");
        printf("#        (B)    (elements)                               (us)  "
               "(GB/s)  (GB/s)            (us)  (GB/s)  (GB/s)       \n");
        fflush(stdout);
    }

    /* Warm the code paths and the peers' first contact, for at least
     * 0.2 s on the slowest rank, so the first size is not timed colder
     * than the rest: right after start-up a rank is still being
     * descheduled now and then (mpirun's and the other rank's start-up
     * work on the same cores), which made the first size's average on
     * one side 10x its steady value in 4 of 5 runs. */
    for (double spent = 0.0; spent < 0.2 && !failed && max_count > 0;) {
        double t0 = rt_now();
        for (int w = 0; w < 100 && !failed; w++) {
            failed |= coll_allreduce(comm, send, recv, 1, o.dtype, o.op) != 0;
            if (peer)
                failed |= coll_allreduce(peer, send, recv, 1, o.dtype, o.op) != 0;
        }
        spent += rt_now() - t0;
        double slowest = spent;
        if (!failed)
            failed |= coll_allreduce_f64_max(comm, &slowest, 1) != 0;
        spent = slowest;
    }
    for (size_t bytes = o.min_bytes; bytes <= o.max_bytes && nrows < MAX_SIZES;) {
        size_t count = bytes / esize;
        size_t nbytes = count * esize;
        size_row_t *row = &rows[nrows++];
        row->bytes = nbytes;
        row->algo = coll_algorithm_for(comm, count, o.dtype);
        double wrong[2] = {0, 0};
        for (int ip = 0; ip < 2 && !failed; ip++) {
            const void *sb = ip ? (const void *)recv : send;
            if (ip)
                failed |= mem_copy(&mem, recv, send, nbytes) != 0;
            long rounds = o.peer && o.iters >= 2 ? 2 : 1;
            double t_ours = 0, t_peer = 0;
            for (long w = 0; w < o.warmup && !failed; w++) {
                failed |= coll_allreduce(comm, sb, recv, count, o.dtype, o.op) != 0;
                if (peer)
                    failed |= coll_allreduce(peer, sb, recv, count, o.dtype, o.op) != 0;
            }
            for (long r = 0; r < rounds && !failed; r++) {
                long it = o.iters / rounds + (r < o.iters % rounds ? 1 : 0);
                double t = 0;
                /* With the peer on, each side gets one untimed call right
                 * before its timed round: Open MPI's single-copy transfers
                 * pin the buffers' pages, and the first pass over them
                 * afterwards is slow (~1.5 us per 4 KiB page here), a cost
                 * that belongs to neither side's steady state. */
                if (peer)
                    failed |= coll_allreduce(comm, sb, recv, count, o.dtype, o.op) != 0;
                failed |= coll_barrier(comm) != 0;
                failed |= time_batch(comm, sb, recv, count, &o, it, &t) != 0;
                t_ours += t;
                if (peer) {
                    failed |= coll_allreduce(peer, sb, recv, count, o.dtype, o.op) != 0;
                    failed |= coll_barrier(comm) != 0;
                    failed |= time_batch(peer, sb, recv, count, &o, it, &t) != 0;
                    t_peer += t;
                }
            }
            double times[2] = {t_ours / (double)o.iters, t_peer / (double)o.iters};
            if (!failed)
                failed |= coll_allreduce_f64_max(comm, times, 2) != 0;
            row->t_ours[ip] = times[0];
            row->t_peer[ip] = times[1];

            if (o.check && !failed) {
                /* The out-of-place input never changes; in place, the timed
                 * calls overwrote it, so refill. A sentinel output shows any
                 * element the collective skipped. */
                char *in = ip ? recv : send;
                test->fill(&o, rank, host_view(&mem, in), count);
                failed |= mem_commit(&mem, in, nbytes) != 0;
                if (!ip) {
                    memset(host_view(&mem, recv), 0xff, nbytes);
                    failed |= mem_commit(&mem, recv, nbytes) != 0;
                }
                failed |= coll_allreduce(comm, ip ? (const void *)recv : send,
                                         recv, count, o.dtype, o.op) != 0;
                const char *out = failed ? NULL : mem_read(&mem, recv, nbytes);
                failed |= out == NULL;
                double w = failed ? 0.0 : (double)test->check(&o, nranks, out, count);
                if (!failed)
                    failed |= coll_allreduce_f64_sum(comm, &w, 1) != 0;
                wrong[ip] = w;
                wrong_total += w;
            }
        }
        if (failed)
            break;
        if (rank == 0) {
            printf("%12zu  %12zu  %8s  %6s  %6d", nbytes, count,
                   coll_dtype_name(o.dtype), coll_op_name(o.op), -1);
            for (int ip = 0; ip < 2; ip++) {
                double t = row->t_ours[ip];
                double algbw = t > 0 ? (double)nbytes / t / 1e9 : 0.0;
                double busbw = algbw * test->bus_factor(nranks);
                /* nccl-tests' widths: fewer decimals as the time grows. */
                double us = t * 1e6;
                printf(us >= 10000.0 ? "  %7.0f" : us >= 100.0 ? "  %7.1f" : "  %7.2f",
                       us);
                printf("  %6.2f  %6.2f", algbw, busbw);
                if (o.check)
                    printf("  %5.0f", wrong[ip]);
                else
                    printf("    N/A");
                bus_sum += busbw;
                bus_n++;
            }
            printf("\n");
            fflush(stdout);
        }
        if (o.step_factor) {
            if (bytes == 0)
                bytes = 1;
            else if (bytes > o.max_bytes / o.step_factor)
                break;
            else
                bytes *= o.step_factor;
        } else {
            bytes += o.step_bytes;
        }
    }

    if (rank == 0 && !failed) {
        printf("# Out of bounds values : %.0f %s\n", wrong_total,
               wrong_total == 0 ? "OK" : "FAILED");
        printf("# Avg bus bandwidth    : %g \n", bus_n ? bus_sum / bus_n : 0.0);
        printf("#\n");
        /* Which algorithm ran, as ranges of sizes. */
        printf("# Algorithm by size   :");
        for (int i = 0; i < nrows;) {
            int j = i;
            while (j + 1 < nrows && strcmp(rows[j + 1].algo, rows[i].algo) == 0)
                j++;
            char a[32], b[32];
            printf(" %s..%s %s%s", human(rows[i].bytes, a, sizeof a),
                   human(rows[j].bytes, b, sizeof b), rows[i].algo,
                   j + 1 < nrows ? "," : "");
            i = j + 1;
        }
        printf("\n");
        if (o.peer) {
            double f = test->bus_factor(nranks);
            printf("#\n# Peer comparison (same process, same buffers, "
                   "alternating rounds): busbw in GB/s, ratio = ours / mpi\n");
            printf("#       size   ours busbw    mpi busbw   ratio  |  in-place: "
                   "ours busbw    mpi busbw   ratio\n");
            for (int i = 0; i < nrows; i++) {
                printf("%12zu", rows[i].bytes);
                for (int ip = 0; ip < 2; ip++) {
                    double to = rows[i].t_ours[ip], tp = rows[i].t_peer[ip];
                    double bo = to > 0 ? (double)rows[i].bytes / to / 1e9 * f : 0;
                    double bp = tp > 0 ? (double)rows[i].bytes / tp / 1e9 * f : 0;
                    printf("%s  %11.4f  %11.4f  %6.2f", ip ? "  |          " : "",
                           bo, bp, to > 0 ? tp / to : 0.0);
                }
                printf("\n");
            }
        }
        fflush(stdout);
    }

    mem_free(&mem, send);
    mem_free(&mem, recv);
    rt_free_aligned(mem.scratch);
    coll_comm_destroy(peer);
    coll_comm_destroy(comm);
#ifdef RINGTRAIN_BENCH_CUDA
    if (o.cuda)
        kernels_cuda_free();
#endif
    if (failed) {
        if (rank == 0)
            fprintf(stderr, "%s: error: a collective failed (see the messages "
                    "above)\n", prog);
        return 1;
    }
    if (wrong_total > 0) {
        if (rank == 0)
            fprintf(stderr, "%s: error: %.0f wrong elements\n", prog, wrong_total);
        return 1;
    }
    return 0;
}
