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

/* --algo NAME: "auto" or one of the collectives' algorithms. */
static int parse_algo(const char *arg, bench_opts_t *o, char *err, size_t errlen)
{
    int known = strcmp(arg, "auto") == 0;
    for (const char *const *n = coll_algorithm_names(); *n && !known; n++)
        known = strcmp(arg, *n) == 0;
    if (!known) {
        char list[256] = "auto";
        for (const char *const *n = coll_algorithm_names(); *n; n++) {
            strncat(list, ", ", sizeof list - strlen(list) - 1);
            strncat(list, *n, sizeof list - strlen(list) - 1);
        }
        snprintf(err, errlen, "--algo %s: unknown algorithm; valid: %s", arg, list);
        return -1;
    }
    o->algo = arg;
    return 0;
}

/* -d, -o, --peer, --compression, --device: a word from a short list. */
static int parse_choice(int c, const char *arg, bench_opts_t *o, char *err, size_t errlen)
{
    if (c == 'd' && (strcmp(arg, "float") == 0 || strcmp(arg, "float32") == 0))
        o->dtype = COLL_F32;
    else if (c == 'd' && (strcmp(arg, "half") == 0 || strcmp(arg, "float16") == 0))
        o->dtype = COLL_F16;
    else if (c == 'd' && strcmp(arg, "bfloat16") == 0)
        o->dtype = COLL_BF16;
    else if (c == 'd')
        snprintf(err, errlen, "-d %s: unknown data type; use float, half or bfloat16", arg);
    else if (c == 'o' && (strcmp(arg, "sum") == 0 || strcmp(arg, "avg") == 0))
        o->op = arg[0] == 's' ? COLL_SUM : COLL_AVG;
    else if (c == 'o')
        snprintf(err, errlen, "-o %s: unknown reduction; use sum or avg", arg);
    else if (c == 'P' && (strcmp(arg, "mpi") == 0 || strcmp(arg, "none") == 0))
        o->peer = arg[0] == 'm';
    else if (c == 'P')
        snprintf(err, errlen, "--peer %s: use mpi or none", arg);
    else if (c == 'C' && coll_compression_parse(arg, &o->compression) != 0)
        snprintf(err, errlen, "--compression %s: use none, fp16 or bf16", arg);
    else if (c == 'D' && (strcmp(arg, "cpu") == 0 || strcmp(arg, "cuda") == 0))
        o->cuda = arg[1] == 'u';
    else if (c == 'D')
        snprintf(err, errlen, "--device %s: use cpu or cuda", arg);
    return err[0] ? -1 : 0;
}

/* One option with its value. Returns 0, or fills err and returns -1. */
static int parse_option(int c, const char *arg, bench_opts_t *o, char *err, size_t errlen)
{
    long v;
    int bad_number = 0;
    switch (c) {
    case 'b':
        bad_number = parse_bytes(arg, &o->min_bytes) != 0;
        break;
    case 'e':
        bad_number = parse_bytes(arg, &o->max_bytes) != 0;
        break;
    case 'f':
        if (parse_long(arg, 2, 1 << 20, &v) != 0) {
            snprintf(err, errlen, "-f %s: the step factor must be an integer >= 2", arg);
            return -1;
        }
        o->step_factor = (size_t)v;
        o->step_bytes = 0;
        break;
    case 'i':
        if (parse_bytes(arg, &o->step_bytes) != 0 || o->step_bytes == 0) {
            snprintf(err, errlen, "-i %s: the step must be a byte count >= 1", arg);
            return -1;
        }
        o->step_factor = 0;
        break;
    case 'n':
        bad_number = parse_long(arg, 1, 100000000, &o->iters) != 0;
        break;
    case 'w':
        bad_number = parse_long(arg, 0, 100000000, &o->warmup) != 0;
        break;
    case 'c':
        if (parse_long(arg, 0, 1, &v) != 0) {
            snprintf(err, errlen, "-c %s: expected 0 or 1", arg);
            return -1;
        }
        o->check = (int)v;
        break;
    case 'A':
        return parse_algo(arg, o, err, errlen);
    default:
        return parse_choice(c, arg, o, err, errlen);
    }
    if (bad_number)
        snprintf(err, errlen, "-%c %s: not a valid number (byte counts take a K/M/G suffix)",
                 c, arg);
    return bad_number ? -1 : 0;
}

/* What the options mean together: sizes in order, device and peer, the
 * build's CUDA support. Returns 0, or fills err and returns -1. */
static int check_options(bench_opts_t *o, char *err, size_t errlen)
{
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
    err[0] = '\0';
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":b:e:f:i:n:w:c:d:o:h", longopts, NULL)) != -1) {
        if (c == 'h') {
            *help = 1;
            return 0;
        }
        if (c == ':' || c == '?') {
            snprintf(err, errlen, c == ':' ? "%s needs a value" : "unknown option %s",
                     argv[optind - 1]);
            return -1;
        }
        if (parse_option(c, optarg, o, err, errlen) != 0)
            return -1;
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
        return -1;
    }
    return check_options(o, err, errlen);
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

/* Everything one run holds, so that bench_main reads as its steps. */
typedef struct {
    const char *prog;
    const bench_test_t *test;
    bench_opts_t o;
    coll_comm_t *comm, *peer;
    int rank, nranks;
    bench_mem_t mem;
    int device;                 /* this rank's GPU, -1: host buffers */
    int cuda_opened;            /* device_setup ran: the CUDA context to free */
    size_t esize, max_count, alloc;
    char *send, *recv;
    size_row_t rows[MAX_SIZES];
    int nrows;
    double bus_sum, wrong_total;
    int bus_n;
    int failed;
} bench_run_t;

/* Flags and the communicator (made even for bad input, so only rank 0
 * speaks). Returns -1 to go on, else the exit status (bad input, --help, or
 * no communicator). */
static int bench_open(bench_run_t *b, int argc, char **argv)
{
    char err[512] = "";
    int help = 0;
    int bad = parse_args(argc, argv, &b->o, &help, err, sizeof err) != 0;
    coll_config_t cfg;
    coll_config_init(&cfg);
    cfg.algorithm = bad || help ? "auto" : b->o.algo;
    /* Both sides measured as a direct caller would see them: no hand-off to
     * the progress thread for blocking calls. */
    cfg.caller_runs_mpi = 1;
    cfg.compression = bad || help ? COLL_COMPRESS_NONE : b->o.compression;
    int rc = coll_comm_create(&b->comm, MPI_COMM_WORLD, &cfg);
    if (rc != 0) {
        fprintf(stderr, "%s: error: cannot create the communicator: %s%s\n",
                b->prog, rt_strerror(rc),
                rc == RT_EINVAL ? " (see the message above)" : "");
        return rc == RT_EINVAL ? 2 : 1;
    }
    b->rank = coll_comm_rank(b->comm);
    b->nranks = coll_comm_size(b->comm);
    if (!bad && !help)
        return -1;
    if (b->rank == 0) {
        if (bad) {
            fprintf(stderr, "%s: error: %s\n", b->prog, err);
            fprintf(stderr, "run '%s --help' for the options\n", b->prog);
        } else {
            usage(stdout, b->prog);
        }
    }
    return bad ? 2 : 0;
}

/* The peer's communicator (MPI_Allreduce) and, in device mode, this rank's
 * GPU. Returns -1 to go on, else the exit status. */
static int bench_attach(bench_run_t *b)
{
    if (b->o.peer) {
        coll_config_t pcfg;
        coll_config_init(&pcfg);
        pcfg.algorithm = "mpi";
        pcfg.caller_runs_mpi = 1;
        int rc = coll_comm_create(&b->peer, MPI_COMM_WORLD, &pcfg);
        if (rc != 0) {
            fprintf(stderr, "%s: error: cannot create the peer communicator: "
                    "%s\n", b->prog, rt_strerror(rc));
            return 1;
        }
    }
    b->mem.cuda = b->o.cuda;
    b->device = -1;
    if (!b->o.cuda)
        return -1;
    b->cuda_opened = 1;
    int rc = device_setup(b->comm, &b->o, &b->device);
    if (rc != 0) {
        fprintf(stderr, "%s: error: cannot put the buffers on a GPU: %s (see "
                "above)\n", b->prog, rt_strerror(rc));
        return rc == RT_EINVAL ? 2 : 1;
    }
    return -1;
}

/* Refuses a largest size whose buffers cannot fit on this host, with the
 * figure and an -e that fits, before anything is allocated (at -e 16G they
 * would fill memory until the OOM killer acts). Per rank: send and receive
 * in host memory (device mode: the host copy alone), and for --peer mpi the
 * temporary Open MPI's MPI_Allreduce allocates at large sizes. Every rank
 * learns the verdict; each refusing host's local rank 0 says why. Returns
 * -1 to go on, else the exit status. */
static int bench_fits(bench_run_t *b)
{
    size_t bytes = b->o.max_bytes / coll_dtype_size(b->o.dtype) * coll_dtype_size(b->o.dtype);
    int copies = b->o.cuda ? 1 : 2 + (b->o.peer ? 1 : 0);
    int local = coll_comm_local_size(b->comm);
    double need = (double)bytes * copies;
    rt_host_memory_t host;
    int refuse = rt_host_memory(&host) == 0 && need * local > (double)host.available;
    double worst = refuse;
    if (coll_allreduce_f64_max(b->comm, &worst, 1) != 0)
        return 1;
    if (worst == 0)
        return -1;
    if (refuse && coll_comm_local_rank(b->comm) == 0) {
        char e[32], per[32], all[32], have[160], fit[32] = "";
        uint64_t room = host.available / ((uint64_t)copies * (uint64_t)local), pow2 = 1;
        while (pow2 * 2 <= room)
            pow2 *= 2;
        rt_format_bytes((uint64_t)need, per, sizeof per);
        rt_format_bytes((uint64_t)(need * local), all, sizeof all);
        rt_host_memory_describe(&host, have, sizeof have);
        char on_host[80] = "";
        if (local > 1)
            snprintf(on_host, sizeof on_host, ", %s for the %d ranks on this host", all, local);
        fprintf(stderr, "%s: error: -e %s needs about %s on this rank (%s%s)%s; this host "
                "has %s; use -e %s or less\n", b->prog, human(bytes, e, sizeof e), per,
                b->o.cuda ? "the host copy of the device buffers" : "send and receive buffers",
                b->o.peer ? ", and MPI_Allreduce's temporary for --peer mpi" : "", on_host,
                have, human((size_t)(room >= 4 ? pow2 : 4), fit, sizeof fit));
    }
    return 2;
}

/* Send and receive buffers for the largest size, send filled with this
 * rank's check input. Returns -1 to go on, else the exit status. */
static int bench_buffers(bench_run_t *b)
{
    b->esize = coll_dtype_size(b->o.dtype);
    b->max_count = b->o.max_bytes / b->esize;
    b->alloc = b->max_count * b->esize;
    size_t alloc = b->alloc ? b->alloc : 64;
    b->send = mem_alloc(&b->mem, alloc);
    b->recv = mem_alloc(&b->mem, alloc);
    if (b->o.cuda)
        b->mem.scratch = rt_alloc_aligned(alloc, 4096);
    if (b->send == NULL || b->recv == NULL || (b->o.cuda && b->mem.scratch == NULL)) {
        fprintf(stderr, "%s: error: cannot allocate 2 x %zu bytes for the "
                "buffers; lower -e\n", b->prog, b->alloc);
        return 1;
    }
    b->test->fill(&b->o, b->rank, host_view(&b->mem, b->send), b->max_count);
    b->failed = mem_commit(&b->mem, b->send, b->alloc) != 0;
    return -1;
}

static void bench_close(bench_run_t *b)
{
    mem_free(&b->mem, b->send);
    mem_free(&b->mem, b->recv);
    rt_free_aligned(b->mem.scratch);
    coll_comm_destroy(b->peer);
    coll_comm_destroy(b->comm);
#ifdef RINGTRAIN_BENCH_CUDA
    if (b->cuda_opened)
        kernels_cuda_free();
#endif
}

/* nccl-tests' header on rank 0: the settings, then every rank's pid and
 * device, then the column titles. Collective (the pids are gathered). */
static void print_header(const bench_run_t *b)
{
    const bench_opts_t *o = &b->o;
    char host[256] = "?";
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    if (b->rank == 0) {
        char hb[32], he[32];
        printf("# %s: nranks %d minBytes %zu maxBytes %zu step: %zu(%s) "
               "warmup iters: %ld iters: %ld validation: %d\n",
               b->prog, b->nranks, o->min_bytes, o->max_bytes,
               o->step_factor ? o->step_factor : o->step_bytes,
               o->step_factor ? "factor" : "bytes", o->warmup, o->iters, o->check);
        printf("# algorithm: %s  compression: %s  peer: %s  hosts: %d  "
               "ranks on this host: %d  range: %s..%s\n",
               o->algo ? o->algo : (getenv("RINGTRAIN_ALLREDUCE") ?
                                    getenv("RINGTRAIN_ALLREDUCE") : "auto"),
               coll_compression_name(o->compression),
               o->peer ? "mpi (MPI_Allreduce, same buffers, alternating)" : "none",
               coll_comm_host_count(b->comm), coll_comm_local_size(b->comm),
               human(o->min_bytes, hb, sizeof hb), human(o->max_bytes, he, sizeof he));
        if (o->cuda)
            printf("# buffers: device memory (CUDA mode, %s backend)\n",
                   coll_comm_cuda_backend(b->comm));
        printf("#\n# Using devices\n");
        fflush(stdout);
    }
    /* Each rank's pid and device (-1: cpu), gathered for rank 0 to print. */
    uint64_t *pids = calloc((size_t)b->nranks, sizeof *pids);
    uint64_t *devs = calloc((size_t)b->nranks, sizeof *devs);
    if (pids && devs && coll_allgather_u64(b->comm, (uint64_t)getpid(), pids) == 0 &&
        coll_allgather_u64(b->comm, (uint64_t)(int64_t)b->device, devs) == 0 && b->rank == 0) {
        for (int r = 0; r < b->nranks; r++) {
            char dev[32] = "cpu";
            if ((int64_t)devs[r] >= 0)
                snprintf(dev, sizeof dev, "cuda:%d", (int)(int64_t)devs[r]);
            printf("#  Rank %2d Group  0 Pid %6d on %10s device %s\n", r,
                   (int)pids[r], r == 0 || coll_comm_host_count(b->comm) == 1 ? host : "?",
                   dev);
        }
    }
    free(pids);
    free(devs);
    if (b->rank == 0) {
        printf("#\n");
        printf("#                                                              "
               "out-of-place                       in-place          \n");
        printf("#       size         count      type   redop    root     time  "
               " algbw   busbw #wrong     time   algbw   busbw #wrong\n");
        printf("#        (B)    (elements)                               (us)  "
               "(GB/s)  (GB/s)            (us)  (GB/s)  (GB/s)       \n");
        fflush(stdout);
    }
}

/* Warm the code paths and the peers' first contact, for at least 0.2 s on
 * the slowest rank, so the first size is not timed colder than the rest:
 * right after start-up a rank is still being descheduled now and then
 * (mpirun's and the other rank's start-up work on the same cores), which
 * made the first size's average on one side 10x its steady value in 4 of 5
 * runs. */
static void warm_up(bench_run_t *b)
{
    const bench_opts_t *o = &b->o;
    for (double spent = 0.0; spent < 0.2 && !b->failed && b->max_count > 0;) {
        double t0 = rt_now();
        for (int w = 0; w < 100 && !b->failed; w++) {
            b->failed |= coll_allreduce(b->comm, b->send, b->recv, 1, o->dtype, o->op) != 0;
            if (b->peer)
                b->failed |= coll_allreduce(b->peer, b->send, b->recv, 1, o->dtype, o->op) != 0;
        }
        spent += rt_now() - t0;
        double slowest = spent;
        if (!b->failed)
            b->failed |= coll_allreduce_f64_max(b->comm, &slowest, 1) != 0;
        spent = slowest;
    }
}

/* One size, out of place (ip 0) or in place (1): warm-up calls, then the
 * timed rounds (ours and the peer's alternating), the slowest rank's times
 * in the row. */
static void time_size(bench_run_t *b, size_row_t *row, size_t count, int ip)
{
    const bench_opts_t *o = &b->o;
    const void *sb = ip ? (const void *)b->recv : b->send;
    if (ip)
        b->failed |= mem_copy(&b->mem, b->recv, b->send, count * b->esize) != 0;
    long rounds = o->peer && o->iters >= 2 ? 2 : 1;
    double t_ours = 0, t_peer = 0;
    for (long w = 0; w < o->warmup && !b->failed; w++) {
        b->failed |= coll_allreduce(b->comm, sb, b->recv, count, o->dtype, o->op) != 0;
        if (b->peer)
            b->failed |= coll_allreduce(b->peer, sb, b->recv, count, o->dtype, o->op) != 0;
    }
    for (long r = 0; r < rounds && !b->failed; r++) {
        long it = o->iters / rounds + (r < o->iters % rounds ? 1 : 0);
        double t = 0;
        /* With the peer on, each side gets one untimed call right before
         * its timed round: Open MPI's single-copy transfers pin the
         * buffers' pages, and the first pass over them afterwards is slow
         * (~1.5 us per 4 KiB page here), a cost that belongs to neither
         * side's steady state. */
        if (b->peer)
            b->failed |= coll_allreduce(b->comm, sb, b->recv, count, o->dtype, o->op) != 0;
        b->failed |= coll_barrier(b->comm) != 0;
        b->failed |= time_batch(b->comm, sb, b->recv, count, o, it, &t) != 0;
        t_ours += t;
        if (b->peer) {
            b->failed |= coll_allreduce(b->peer, sb, b->recv, count, o->dtype, o->op) != 0;
            b->failed |= coll_barrier(b->comm) != 0;
            b->failed |= time_batch(b->peer, sb, b->recv, count, o, it, &t) != 0;
            t_peer += t;
        }
    }
    double times[2] = {t_ours / (double)o->iters, t_peer / (double)o->iters};
    if (!b->failed)
        b->failed |= coll_allreduce_f64_max(b->comm, times, 2) != 0;
    row->t_ours[ip] = times[0];
    row->t_peer[ip] = times[1];
}

/* The untimed correctness check of one size: wrong elements, all ranks. */
static double check_size(bench_run_t *b, size_t count, int ip)
{
    const bench_opts_t *o = &b->o;
    size_t nbytes = count * b->esize;
    /* The out-of-place input never changes; in place, the timed calls
     * overwrote it, so refill. A sentinel output shows any element the
     * collective skipped. */
    char *in = ip ? b->recv : b->send;
    b->test->fill(o, b->rank, host_view(&b->mem, in), count);
    b->failed |= mem_commit(&b->mem, in, nbytes) != 0;
    if (!ip) {
        memset(host_view(&b->mem, b->recv), 0xff, nbytes);
        b->failed |= mem_commit(&b->mem, b->recv, nbytes) != 0;
    }
    b->failed |= coll_allreduce(b->comm, ip ? (const void *)b->recv : b->send, b->recv, count,
                                o->dtype, o->op) != 0;
    const char *out = b->failed ? NULL : mem_read(&b->mem, b->recv, nbytes);
    b->failed |= out == NULL;
    double w = b->failed ? 0.0 : (double)b->test->check(o, b->nranks, out, count);
    if (!b->failed)
        b->failed |= coll_allreduce_f64_sum(b->comm, &w, 1) != 0;
    return w;
}

/* One line of nccl-tests' table, on rank 0. */
static void print_row(bench_run_t *b, const size_row_t *row, size_t count,
                      const double wrong[2])
{
    const bench_opts_t *o = &b->o;
    printf("%12zu  %12zu  %8s  %6s  %6d", row->bytes, count, coll_dtype_name(o->dtype),
           coll_op_name(o->op), -1);
    for (int ip = 0; ip < 2; ip++) {
        double t = row->t_ours[ip];
        double algbw = t > 0 ? (double)row->bytes / t / 1e9 : 0.0;
        double busbw = algbw * b->test->bus_factor(b->nranks);
        /* nccl-tests' widths: fewer decimals as the time grows. */
        double us = t * 1e6;
        printf(us >= 10000.0 ? "  %7.0f" : us >= 100.0 ? "  %7.1f" : "  %7.2f", us);
        printf("  %6.2f  %6.2f", algbw, busbw);
        if (o->check)
            printf("  %5.0f", wrong[ip]);
        else
            printf("    N/A");
        b->bus_sum += busbw;
        b->bus_n++;
    }
    printf("\n");
    fflush(stdout);
}

/* Every size from -b to -e: timed, checked, printed. */
static void run_sizes(bench_run_t *b)
{
    const bench_opts_t *o = &b->o;
    for (size_t bytes = o->min_bytes; bytes <= o->max_bytes && b->nrows < MAX_SIZES;) {
        size_t count = bytes / b->esize;
        size_row_t *row = &b->rows[b->nrows++];
        row->bytes = count * b->esize;
        row->algo = coll_algorithm_for(b->comm, count, o->dtype);
        double wrong[2] = {0, 0};
        for (int ip = 0; ip < 2 && !b->failed; ip++) {
            time_size(b, row, count, ip);
            if (o->check && !b->failed) {
                wrong[ip] = check_size(b, count, ip);
                b->wrong_total += wrong[ip];
            }
        }
        if (b->failed)
            break;
        if (b->rank == 0)
            print_row(b, row, count, wrong);
        if (o->step_factor) {
            if (bytes == 0)
                bytes = 1;
            else if (bytes > o->max_bytes / o->step_factor)
                break;
            else
                bytes *= o->step_factor;
        } else {
            bytes += o->step_bytes;
        }
    }
}

/* After the table, on rank 0: nccl-tests' footer, which algorithm ran at
 * which sizes, and the peer comparison. */
static void print_footer(const bench_run_t *b)
{
    const size_row_t *rows = b->rows;
    printf("# Out of bounds values : %.0f %s\n", b->wrong_total,
           b->wrong_total == 0 ? "OK" : "FAILED");
    printf("# Avg bus bandwidth    : %g \n", b->bus_n ? b->bus_sum / b->bus_n : 0.0);
    printf("#\n");
    /* Which algorithm ran, as ranges of sizes. */
    printf("# Algorithm by size   :");
    for (int i = 0; i < b->nrows;) {
        int j = i;
        while (j + 1 < b->nrows && strcmp(rows[j + 1].algo, rows[i].algo) == 0)
            j++;
        char lo[32], hi[32];
        printf(" %s..%s %s%s", human(rows[i].bytes, lo, sizeof lo),
               human(rows[j].bytes, hi, sizeof hi), rows[i].algo,
               j + 1 < b->nrows ? "," : "");
        i = j + 1;
    }
    printf("\n");
    if (b->o.peer) {
        double f = b->test->bus_factor(b->nranks);
        printf("#\n# Peer comparison (same process, same buffers, "
               "alternating rounds): busbw in GB/s, ratio = ours / mpi\n");
        printf("#       size   ours busbw    mpi busbw   ratio  |  in-place: "
               "ours busbw    mpi busbw   ratio\n");
        for (int i = 0; i < b->nrows; i++) {
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

/* The exit status once the sizes ran: 1 for a failed collective or a wrong
 * element. */
static int bench_status(const bench_run_t *b)
{
    if (b->failed) {
        if (b->rank == 0)
            fprintf(stderr, "%s: error: a collective failed (see the messages "
                    "above)\n", b->prog);
        return 1;
    }
    if (b->wrong_total > 0) {
        if (b->rank == 0)
            fprintf(stderr, "%s: error: %.0f wrong elements\n", b->prog, b->wrong_total);
        return 1;
    }
    return 0;
}

int bench_main(int argc, char **argv, const char *prog, const bench_test_t *test)
{
    bench_run_t *b = calloc(1, sizeof *b);
    if (!b) {
        fprintf(stderr, "%s: error: out of memory\n", prog);
        return 1;
    }
    b->prog = prog;
    b->test = test;
    int status = bench_open(b, argc, argv);
    if (status < 0)
        status = bench_attach(b);
    if (status < 0)
        status = bench_fits(b);
    if (status < 0)
        status = bench_buffers(b);
    if (status < 0) {
        print_header(b);
        warm_up(b);
        run_sizes(b);
        if (b->rank == 0 && !b->failed)
            print_footer(b);
        status = bench_status(b);
    }
    bench_close(b);
    free(b);
    return status;
}
