/* Unit tests for the internal GEMM (kern__sgemm), both backends (OpenBLAS
 * and the own AVX-512 kernel, skipped where the CPU lacks it) against a
 * double-precision triple loop: all four transpose combinations, sizes on and
 * around the kernel's blocking (MR 8, NR 32, KC 256, MC 256, NC 2048), leading
 * dimensions larger than the rows, alpha/beta (beta 0 must ignore NaN in C),
 * one and two threads (the own kernel must give bitwise the same result:
 * threads split C, never a sum).
 * Tolerance: |diff| <= 1e-5 * (sum over k of |a||b|) + 1e-6. */
#include "test_kernels_util.h"

#include "cpu/cpu_internal.h"
#include "kernels.h"

static int gemm_bitwise; /* own backend: 2 threads == 1 thread, bitwise */

static void gemm_case(int ta, int tb, int M, int N, int K, float alpha,
                      float beta, int pad, uint64_t seed)
{
    tk_rng_t rng = {seed};
    int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    size_t a_count = (size_t)(ta ? K : M) * lda;
    size_t b_count = (size_t)(tb ? N : K) * ldb;
    size_t c_count = (size_t)M * ldc;
    float *A = tk_falloc(a_count), *B = tk_falloc(b_count);
    float *C = tk_falloc(c_count), *C0 = tk_falloc(c_count);
    float *C2 = tk_falloc(c_count);
    double *want = tk_dalloc(c_count), *bound = tk_dalloc(c_count);
    tk_fill(&rng, A, NULL, a_count, -1, 1);
    tk_fill(&rng, B, NULL, b_count, -1, 1);
    tk_fill(&rng, C0, NULL, c_count, -1, 1);
    if (beta == 0.0f)
        tk_fill_nan(C0, c_count);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < ldc; j++) {
            size_t at = (size_t)i * ldc + j;
            if (j >= N) { /* padding columns must stay as they were */
                want[at] = C0[at];
                continue;
            }
            double sum = 0.0, mag = 0.0;
            for (int k = 0; k < K; k++) {
                double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                double b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                sum += a * b;
                mag += fabs(a * b);
            }
            want[at] = alpha * sum +
                       (beta == 0.0f ? 0.0 : beta * (double)C0[at]);
            bound[at] = 1e-5 * (fabs(alpha) * mag + fabs(beta)) + 1e-6;
        }
    for (int threads = 1; threads <= 2; threads++) {
        kernels_set_num_threads(threads);
        float *out = threads == 1 ? C : C2;
        memcpy(out, C0, c_count * sizeof(float));
        kern__sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, out, ldc);
        for (size_t at = 0; at < c_count; at++) {
            int j = (int)(at % ldc);
            if (j >= N) {
                if (memcmp(&out[at], &C0[at], sizeof(float)) != 0)
                    fail_msg("gemm %c%c %dx%dx%d: padding C[%zu] changed",
                             ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, at);
                continue;
            }
            double err = fabs(out[at] - want[at]);
            if (!(err <= bound[at]))
                fail_msg("gemm %c%c M %d N %d K %d alpha %g beta %g pad %d "
                         "threads %d: C[%d][%d] got %.9g, want %.9g",
                         ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K,
                         (double)alpha, (double)beta, pad, threads,
                         (int)(at / ldc), j, (double)out[at], want[at]);
        }
    }
    if (gemm_bitwise)
        tk_check_equal_f("gemm 2 threads vs 1", C2, C, c_count);
    kernels_set_num_threads(1);
    free(A), free(B), free(C), free(C0), free(C2), free(want), free(bound);
}

static void run_all(void)
{
    static const int sizes[][3] = {
        {1, 1, 1},     {8, 32, 8},    {7, 31, 9},    {9, 33, 17},
        {17, 65, 3},   {64, 96, 257}, {3, 100, 40},  {100, 3, 40},
        {257, 40, 20}, {24, 2050, 5}, {40, 70, 600},
    };
    uint64_t seed = 1;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
                gemm_case(ta, tb, M, N, K, 1.0f, 0.0f, 0, seed++);
                gemm_case(ta, tb, M, N, K, 1.0f, 1.0f, 3, seed++);
                gemm_case(ta, tb, M, N, K, -0.5f, 2.0f, 1, seed++);
            }
}

static void test_gemm_own(void **state)
{
    (void)state;
    if (!kern__gemm_own_available())
        skip();
    kern__gemm_select(KERN__GEMM_OWN);
    gemm_bitwise = 1;
    run_all();
    gemm_bitwise = 0;
    kern__gemm_select(KERN__GEMM_AUTO);
}

static void test_gemm_openblas(void **state)
{
    (void)state;
    kern__gemm_select(KERN__GEMM_OPENBLAS);
    run_all();
    kern__gemm_select(KERN__GEMM_AUTO);
}

/* K == 0: C = beta * C (and 0 for beta 0, whatever C held). */
static void test_gemm_k0(void **state)
{
    (void)state;
    float C[6] = {1, 2, 3, 4, 5, NAN};
    kern__sgemm(0, 0, 2, 3, 0, 1.0f, C, 1, C, 3, 0.5f, C, 3);
    assert_true(C[0] == 0.5f && C[4] == 2.5f && isnan(C[5]));
    kern__sgemm(0, 0, 2, 3, 0, 1.0f, C, 1, C, 3, 0.0f, C, 3);
    for (int i = 0; i < 6; i++)
        assert_true(C[i] == 0.0f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_own),
        cmocka_unit_test(test_gemm_openblas),
        cmocka_unit_test(test_gemm_k0),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
