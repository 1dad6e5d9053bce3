/* ringtrain kernels (CPU): the GEMM entry point, on OpenBLAS cblas_sgemm. */
#include "cpu_internal.h"

#include <cblas.h>
#include <stddef.h>

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
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
                B, ldb, beta, C, ldc);
}
