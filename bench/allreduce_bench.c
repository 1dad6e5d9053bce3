/* bench: ringtrain-allreduce-bench, nccl-tests' all_reduce_perf for the CPU
 * collectives (same flags, same table), with Open MPI's MPI_Allreduce timed
 * beside ours in the same run (--peer mpi) or on its own (--algo mpi).
 *
 * This file only says what an allreduce is: its check inputs, the expected
 * result and its bus factor; allreduce_harness.c does the rest.
 *
 * Check: rank r's element i is the small integer ((i * 7 + r * 13) % 9) - 4,
 * so every partial sum is an integer far below 2^8 and exact in fp32, fp16
 * and bf16 whatever the order: sums must match exactly. avg is the exact sum
 * times fp32(1/nranks), rounded to the dtype; one unit in the last place of
 * the dtype is tolerated (fp32 2^-23, fp16 2^-10, bf16 2^-7, relative);
 * with --compression, fp32 averages get the wire type's unit. Sums stay
 * exact under compression (the partial sums are integers below 2^8, exact
 * in fp16 and bf16), so the check proves the compressed paths too.
 */
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

#include "allreduce_harness.h"

__extension__ typedef _Float16 bench_f16_t;

static float input_value(int rank, size_t i)
{
    return (float)((int)((i * 7 + (size_t)rank * 13) % 9) - 4);
}

static uint16_t to_f16(float v)
{
    bench_f16_t h = (bench_f16_t)v;
    uint16_t u;
    memcpy(&u, &h, sizeof u);
    return u;
}

static float from_f16(uint16_t u)
{
    bench_f16_t h;
    memcpy(&h, &u, sizeof h);
    return (float)h;
}

/* bf16: round to nearest even (inputs here are finite). */
static uint16_t to_bf16(float v)
{
    uint32_t x;
    memcpy(&x, &v, sizeof x);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

static float from_bf16(uint16_t u)
{
    uint32_t x = (uint32_t)u << 16;
    float v;
    memcpy(&v, &x, sizeof v);
    return v;
}

static void allreduce_fill(const bench_opts_t *o, int rank, void *buf,
                           size_t count)
{
    if (o->dtype == COLL_F32) {
        float *p = buf;
        for (size_t i = 0; i < count; i++)
            p[i] = input_value(rank, i);
    } else {
        uint16_t *p = buf;
        for (size_t i = 0; i < count; i++)
            p[i] = o->dtype == COLL_F16 ? to_f16(input_value(rank, i))
                                        : to_bf16(input_value(rank, i));
    }
}

static size_t allreduce_check(const bench_opts_t *o, int nranks,
                              const void *recv, size_t count)
{
    const float scale = 1.0f / (float)nranks;
    /* Under wire compression an fp32 average is rounded through the wire
     * type (its sums stay exact: small integers travel exactly). */
    coll_dtype_t prec = o->dtype;
    if (o->dtype == COLL_F32 && o->compression == COLL_COMPRESS_FP16)
        prec = COLL_F16;
    else if (o->dtype == COLL_F32 && o->compression == COLL_COMPRESS_BF16)
        prec = COLL_BF16;
    const double ulp = prec == COLL_F32   ? 0x1p-23
                       : prec == COLL_F16 ? 0x1p-10
                                          : 0x1p-7;
    /* The inputs repeat with period 9 in i, so the expected sums do too. */
    float expect[9];
    for (size_t k = 0; k < 9; k++) {
        float sum = 0.0f;
        for (int r = 0; r < nranks; r++)
            sum += input_value(r, k);
        float v = o->op == COLL_AVG ? sum * scale : sum;
        expect[k] = o->dtype == COLL_F32   ? v
                    : o->dtype == COLL_F16 ? from_f16(to_f16(v))
                                           : from_bf16(to_bf16(v));
    }
    size_t wrong = 0;
    for (size_t i = 0; i < count; i++) {
        float got = o->dtype == COLL_F32   ? ((const float *)recv)[i]
                    : o->dtype == COLL_F16 ? from_f16(((const uint16_t *)recv)[i])
                                           : from_bf16(((const uint16_t *)recv)[i]);
        float want = expect[i % 9];
        double tol = o->op == COLL_AVG ? ulp * fabs((double)want) : 0.0;
        if (!(fabs((double)got - (double)want) <= tol))
            wrong++;
    }
    return wrong;
}

static double allreduce_bus_factor(int nranks)
{
    return nranks > 1 ? 2.0 * (nranks - 1) / nranks : 1.0;
}

static const bench_test_t allreduce_test = {
    .name = "allreduce",
    .fill = allreduce_fill,
    .check = allreduce_check,
    .bus_factor = allreduce_bus_factor,
};

int main(int argc, char **argv)
{
    const char *prog = "ringtrain-allreduce-bench";
    int provided = 0;
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided) !=
        MPI_SUCCESS) {
        fprintf(stderr, "%s: error: MPI_Init_thread failed; run under mpirun\n",
                prog);
        return 1;
    }
    int rc = bench_main(argc, argv, prog, &allreduce_test);
    MPI_Finalize();
    return rc;
}
