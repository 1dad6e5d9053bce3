/* ringtrain kernels (CPU): the GEMM behind every conv and linear layer.
 *
 * Two backends, one entry point (kern__sgemm):
 *  - OpenBLAS cblas_sgemm: the reference, and the fallback everywhere.
 *  - An own AVX-512 kernel, used when the CPU has AVX-512F/VL. OpenBLAS
 *    0.3.21 runs its AVX2 (Haswell) kernels on these machines
 *    (OPENBLAS_CORETYPE=Haswell is set because that build misbehaves on this
 *    processor otherwise), which caps it near 100 GFLOP/s a core; the 512-bit
 *    FMA units give twice that, and this kernel reaches ~170-200.
 * RINGTRAIN_GEMM=openblas forces OpenBLAS (read once).
 *
 * The own kernel is the usual blocked scheme (Goto/BLIS):
 *   for jc in N by NC:           B block  (KC x NC) packed in NR-wide strips
 *     for pc in K by KC:
 *       for ic in M by MC:       A block  (MC x KC) in MR-high panels, in L2
 *         for jr in NC by NR:    B strip  (KC x NR), stays in L1
 *           for ir in MC by MR:  8 x 32 micro-kernel: 16 zmm accumulators
 * Packing handles transposes (8x8 AVX transposes where the source runs the
 * wrong way) and zero-pads edges; edge tiles are stored with masks. The first
 * K block applies beta, later ones add. Threads split C by columns (or rows
 * when it is narrow), each with its own packing buffers; a C element's sum
 * order does not depend on the thread count, so results are identical for
 * any number of threads. */
#include "cpu_internal.h"

#include <cblas.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GEMM__HAVE_OWN 1
#define GEMM__AVX512 __attribute__((target("avx512f,avx512vl,avx2,fma")))
#else
#define GEMM__HAVE_OWN 0
#endif

#define GEMM__MR 8
#define GEMM__NR 32
#define GEMM__KC 256
#define GEMM__MC 256
#define GEMM__NC 2048

/* Below this many flops one thread is faster than a fork/join. */
#define GEMM__PAR_MIN_FLOP 2.0e6

static int gemm__choice = KERN__GEMM_AUTO;

void kern__gemm_select(int backend)
{
    gemm__choice = backend;
}

int kern__gemm_own_available(void)
{
#if GEMM__HAVE_OWN
    return __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

static int gemm__use_own(void)
{
    static int decided = -1;
    if (gemm__choice == KERN__GEMM_OPENBLAS)
        return 0;
    if (gemm__choice == KERN__GEMM_OWN)
        return kern__gemm_own_available();
    if (decided < 0) {
        const char *env = getenv("RINGTRAIN_GEMM");
        int own = kern__gemm_own_available();
        if (env && strcmp(env, "openblas") == 0)
            own = 0;
        decided = own;
    }
    return decided;
}

int kern__gemm_is_own(void)
{
    return gemm__use_own();
}

static void gemm__openblas(int trans_a, int trans_b, int M, int N, int K,
                           float alpha, const float *A, int lda,
                           const float *B, int ldb, float beta, float *C,
                           int ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
                B, ldb, beta, C, ldc);
}

#if GEMM__HAVE_OWN

/* Per-thread packing buffers, allocated on a thread's first GEMM and kept:
 * no allocation per call, and callers on different threads never share. */
static _Thread_local float *gemm__apack, *gemm__bpack;

static int gemm__buffers(void)
{
    if (gemm__apack && gemm__bpack)
        return 0;
    void *a = NULL, *b = NULL;
    if (posix_memalign(&a, 64, sizeof(float) * GEMM__MC * GEMM__KC) ||
        posix_memalign(&b, 64, sizeof(float) * GEMM__KC * GEMM__NC)) {
        free(a);
        return -1;
    }
    gemm__apack = a;
    gemm__bpack = b;
    return 0;
}

/* Rows r[0..7] (8 floats each) -> r[q] = column q. */
GEMM__AVX512 static inline void gemm__transpose8(__m256 r[8])
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]);
    __m256 t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]);
    __m256 t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]);
    __m256 t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]);
    __m256 t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* dst[k * dst_ld + r] = src[r * src_ld + k] for r < rows (<= 8), k < kc;
 * rows rows..7 become zeros. The "wrong-way" pack: 8 source rows are read
 * side by side and transposed in 8x8 blocks. */
GEMM__AVX512 static void gemm__pack_rows(float *dst, size_t dst_ld,
                                         const float *src, size_t src_ld,
                                         int rows, int kc)
{
    int k = 0;
    if (rows == 8) {
        for (; k + 8 <= kc; k += 8) {
            __m256 r[8];
            for (int i = 0; i < 8; i++)
                r[i] = _mm256_loadu_ps(src + i * src_ld + k);
            gemm__transpose8(r);
            for (int q = 0; q < 8; q++)
                _mm256_storeu_ps(dst + (size_t)(k + q) * dst_ld, r[q]);
        }
    }
    for (; k < kc; k++) {
        float *d = dst + (size_t)k * dst_ld;
        int i = 0;
        for (; i < rows; i++)
            d[i] = src[i * src_ld + k];
        for (; i < 8; i++)
            d[i] = 0.0f;
    }
}

/* op(A) rows [i0, i0 + mc), columns [p0, p0 + kc) -> MR-high panels,
 * panel p at dst + p * MR * kc, laid out [k][MR]. */
GEMM__AVX512 static void gemm__pack_a(float *dst, int trans, const float *A,
                                      size_t lda, int i0, int mc, int p0,
                                      int kc)
{
    for (int ir = 0; ir < mc; ir += GEMM__MR) {
        int mr = mc - ir < GEMM__MR ? mc - ir : GEMM__MR;
        float *d = dst + (size_t)ir * kc;
        if (!trans) {
            gemm__pack_rows(d, GEMM__MR, A + (size_t)(i0 + ir) * lda + p0,
                            lda, mr, kc);
            continue;
        }
        /* A stored (K, M): each k holds the panel's MR values contiguous. */
        const float *s = A + (size_t)p0 * lda + i0 + ir;
        __mmask8 m = (__mmask8)((1u << mr) - 1);
        for (int k = 0; k < kc; k++)
            _mm256_storeu_ps(d + (size_t)k * GEMM__MR,
                             _mm256_maskz_loadu_ps(m, s + (size_t)k * lda));
    }
}

/* op(B) rows [p0, p0 + kc), columns [j0, j0 + nc) -> NR-wide strips,
 * strip s at dst + s * NR * kc, laid out [k][NR]. */
GEMM__AVX512 static void gemm__pack_b(float *dst, int trans, const float *B,
                                      size_t ldb, int p0, int kc, int j0,
                                      int nc)
{
    for (int jr = 0; jr < nc; jr += GEMM__NR) {
        int nr = nc - jr < GEMM__NR ? nc - jr : GEMM__NR;
        float *d = dst + (size_t)jr * kc;
        if (trans) {
            /* B stored (N, K): 4 groups of 8 rows, transposed into place. */
            for (int g = 0; g < GEMM__NR; g += 8) {
                int rows = nr - g;
                rows = rows < 0 ? 0 : rows > 8 ? 8 : rows;
                gemm__pack_rows(d + g, GEMM__NR,
                                B + (size_t)(j0 + jr + g) * ldb + p0, ldb,
                                rows, kc);
            }
            continue;
        }
        const float *s = B + (size_t)p0 * ldb + j0 + jr;
        if (nr == GEMM__NR) {
            for (int k = 0; k < kc; k++) {
                const float *sk = s + (size_t)k * ldb;
                _mm512_store_ps(d + k * GEMM__NR, _mm512_loadu_ps(sk));
                _mm512_store_ps(d + k * GEMM__NR + 16,
                                _mm512_loadu_ps(sk + 16));
            }
        } else {
            __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xFFFF : (1u << nr) - 1);
            __mmask16 m1 =
                (__mmask16)(nr > 16 ? (1u << (nr - 16)) - 1 : 0);
            for (int k = 0; k < kc; k++) {
                const float *sk = s + (size_t)k * ldb;
                _mm512_store_ps(d + k * GEMM__NR,
                                _mm512_maskz_loadu_ps(m0, sk));
                _mm512_store_ps(d + k * GEMM__NR + 16,
                                _mm512_maskz_loadu_ps(m1, sk + 16));
            }
        }
    }
}

/* C (mr x nr, mr <= 8, nr <= 32) = alpha * Ap * Bp + beta * C, where Ap is
 * one packed panel [kc][8] and Bp one packed strip [kc][32]. beta == 0 never
 * reads C (it may hold NaN). */
GEMM__AVX512 static void gemm__kernel(int kc, const float *restrict Ap,
                                      const float *restrict Bp, float *C,
                                      size_t ldc, int mr, int nr, float alpha,
                                      float beta)
{
    __m512 acc[GEMM__MR][2];
#pragma GCC unroll 8
    for (int r = 0; r < GEMM__MR; r++) {
        acc[r][0] = _mm512_setzero_ps();
        acc[r][1] = _mm512_setzero_ps();
    }
    for (int k = 0; k < kc; k++) {
        __m512 b0 = _mm512_load_ps(Bp + k * GEMM__NR);
        __m512 b1 = _mm512_load_ps(Bp + k * GEMM__NR + 16);
        _mm_prefetch((const char *)(Bp + (k + 8) * GEMM__NR), _MM_HINT_T0);
#pragma GCC unroll 8
        for (int r = 0; r < GEMM__MR; r++) {
            __m512 a = _mm512_set1_ps(Ap[k * GEMM__MR + r]);
            acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
        }
    }
    __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xFFFF : (1u << nr) - 1);
    __mmask16 m1 = (__mmask16)(nr >= 32   ? 0xFFFF
                               : nr > 16 ? (1u << (nr - 16)) - 1
                                         : 0);
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 8
    for (int r = 0; r < GEMM__MR; r++) {
        if (r >= mr)
            break;
        float *c = C + (size_t)r * ldc;
        __m512 v0 = acc[r][0], v1 = acc[r][1];
        if (alpha != 1.0f) {
            v0 = _mm512_mul_ps(v0, va);
            v1 = _mm512_mul_ps(v1, va);
        }
        if (beta == 1.0f) {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, c));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, c + 16));
        } else if (beta != 0.0f) {
            v0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, c), v0);
            v1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, c + 16), v1);
        }
        _mm512_mask_storeu_ps(c, m0, v0);
        _mm512_mask_storeu_ps(c + 16, m1, v1);
    }
}

/* One thread's share: the whole blocked loop nest over C (M, N). */
GEMM__AVX512 static void gemm__serial(int trans_a, int trans_b, int M, int N,
                                      int K, float alpha, const float *A,
                                      size_t lda, const float *B, size_t ldb,
                                      float beta, float *C, size_t ldc)
{
    float *ap = gemm__apack, *bp = gemm__bpack;
    for (int jc = 0; jc < N; jc += GEMM__NC) {
        int nc = N - jc < GEMM__NC ? N - jc : GEMM__NC;
        for (int pc = 0; pc < K; pc += GEMM__KC) {
            int kc = K - pc < GEMM__KC ? K - pc : GEMM__KC;
            float beta_k = pc == 0 ? beta : 1.0f;
            gemm__pack_b(bp, trans_b, B, ldb, pc, kc, jc, nc);
            for (int ic = 0; ic < M; ic += GEMM__MC) {
                int mc = M - ic < GEMM__MC ? M - ic : GEMM__MC;
                gemm__pack_a(ap, trans_a, A, lda, ic, mc, pc, kc);
                for (int jr = 0; jr < nc; jr += GEMM__NR) {
                    int nr = nc - jr < GEMM__NR ? nc - jr : GEMM__NR;
                    for (int ir = 0; ir < mc; ir += GEMM__MR) {
                        int mr = mc - ir < GEMM__MR ? mc - ir : GEMM__MR;
                        gemm__kernel(kc, ap + (size_t)ir * kc,
                                     bp + (size_t)jr * kc,
                                     C + (size_t)(ic + ir) * ldc + jc + jr,
                                     ldc, mr, nr, alpha, beta_k);
                    }
                }
            }
        }
    }
}

/* The driver over threads: splits C by column strips when there are at
 * least two per thread, else by row panels, else not at all. Every thread
 * gets its packing buffers first; if any cannot (out of memory on its first
 * call), it returns -1 with C untouched and the caller uses OpenBLAS. */
static int gemm__own(int trans_a, int trans_b, int M, int N, int K,
                     float alpha, const float *A, size_t lda, const float *B,
                     size_t ldb, float beta, float *C, size_t ldc)
{
    int threads = kern__threads();
    if ((double)M * N * K * 2.0 < GEMM__PAR_MIN_FLOP)
        threads = 1;
    int strips = (N + GEMM__NR - 1) / GEMM__NR;
    int panels = (M + GEMM__MR - 1) / GEMM__MR;
    int by_cols = strips >= 2 * threads || strips >= panels;
    int units = by_cols ? strips : panels;
    if (threads > units)
        threads = units;
    if (threads <= 1) {
        if (gemm__buffers() != 0)
            return -1;
        gemm__serial(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta,
                     C, ldc);
        return 0;
    }
    int failed = 0;
#pragma omp parallel num_threads(threads) reduction(| : failed)
    failed = gemm__buffers() != 0;
    if (failed)
        return -1;
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int u0 = (int)((long)units * t / nt);
        int u1 = (int)((long)units * (t + 1) / nt);
        int m0 = 0, m1 = M, n0 = 0, n1 = N;
        if (by_cols) {
            n0 = u0 * GEMM__NR;
            n1 = u1 * GEMM__NR < N ? u1 * GEMM__NR : N;
        } else {
            m0 = u0 * GEMM__MR;
            m1 = u1 * GEMM__MR < M ? u1 * GEMM__MR : M;
        }
        /* Buffers are never freed, so the check above still holds. */
        if (m1 > m0 && n1 > n0 && gemm__buffers() == 0) {
            const float *a = trans_a ? A + m0 : A + (size_t)m0 * lda;
            const float *b = trans_b ? B + (size_t)n0 * ldb : B + n0;
            gemm__serial(trans_a, trans_b, m1 - m0, n1 - n0, K, alpha, a, lda,
                         b, ldb, beta, C + (size_t)m0 * ldc + n0, ldc);
        }
    }
    return 0;
}

#endif /* GEMM__HAVE_OWN */

void kern__sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb, float beta,
                 float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0) {
        /* BLAS leaves C = beta * C; spelled out so no backend can differ. */
        for (int i = 0; i < M; i++) {
            float *row = C + (size_t)i * ldc;
            for (int j = 0; j < N; j++)
                row[j] = beta == 0.0f ? 0.0f : beta * row[j];
        }
        return;
    }
#if GEMM__HAVE_OWN
    if (gemm__use_own()) {
        if (gemm__own(trans_a, trans_b, M, N, K, alpha, A, (size_t)lda, B,
                      (size_t)ldb, beta, C, (size_t)ldc) == 0)
            return;
    }
#endif
    gemm__openblas(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C,
                   ldc);
}

