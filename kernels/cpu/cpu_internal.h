/* ringtrain kernels: CPU internals shared by the kernels/cpu/ sources.
 *
 * kern__sgemm is the one GEMM entry point: row-major C = alpha*op(A)*op(B) +
 * beta*C. Every op that multiplies matrices goes through it, so the GEMM
 * backend (OpenBLAS, or an own kernel) is chosen in one place.
 *
 * Threading: GEMMs are threaded by the backend; our own loops use OpenMP with
 * kern__threads() threads, only when the loop is big enough to pay for the
 * fork/join (KERN__PAR_MIN_FLOATS), and never around a GEMM call. */
#ifndef RINGTRAIN_KERNELS_CPU_INTERNAL_H
#define RINGTRAIN_KERNELS_CPU_INTERNAL_H

#include <stddef.h>

#include "kernels.h"

/* Hot loops compiled for AVX-512, AVX2 and the baseline, one picked at load
 * time. Not under ThreadSanitizer: GCC instruments the ifunc resolver, which
 * the dynamic loader runs before the sanitizer's runtime is up (a SIGSEGV at
 * startup); that build takes the baseline loops alone. */
#if defined(__SANITIZE_THREAD__)
#define KERN__CLONES
#else
#define KERN__CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif

/* Elements a loop must touch before it is split across threads: below this
 * the ~2-5 us fork/join costs more than the loop. */
#define KERN__PAR_MIN_FLOATS ((size_t)1 << 15)

/* Threads for our own loops (>= 1): kernels_get_num_threads() with the own
 * GEMM, but 1 when the GEMM is OpenBLAS's. libgomp's workers spin for a while
 * after a region and OpenBLAS's after a GEMM; alternating the two pools on
 * two cores made two threads slower than one (ResNet-50 convs 3.6 vs 3.8
 * images/sec, LeNet steps 730 vs 960 images/sec; 6.0 for the convs with our
 * loops serial). So with OpenBLAS only the GEMMs are threaded. */
int kern__threads(void);

/* Threads to use for a loop touching `count` elements: 1 when it is small. */
static inline int kern__threads_for(size_t count)
{
    return count >= KERN__PAR_MIN_FLOATS ? kern__threads() : 1;
}

/* Row-major GEMM: C(M,N) = alpha * op(A)(M,K) * op(B)(K,N) + beta * C.
 * trans_a: A is stored (K, M) with leading dimension lda; likewise trans_b.
 * K == 0 leaves beta * C, as BLAS does. */
void kern__sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb, float beta,
                 float *C, int ldc);

/* Images per GEMM that conv2d uses for this shape (for the benchmark). */
int kern__conv_chunk(const conv2d_shape_t *s);

/* GEMM backend: AUTO picks the own AVX-512 kernel where the CPU has it
 * (RINGTRAIN_GEMM=openblas forces OpenBLAS), else OpenBLAS. Tests force one;
 * OWN without AVX-512 falls back to OpenBLAS. */
enum { KERN__GEMM_AUTO, KERN__GEMM_OPENBLAS, KERN__GEMM_OWN };
void kern__gemm_select(int backend);
int kern__gemm_own_available(void);
/* 1 when kern__sgemm currently runs the own kernel. */
int kern__gemm_is_own(void);

#endif
