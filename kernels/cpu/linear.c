/* ringtrain kernels (CPU): fully connected layer, out = in * weight^T + bias,
 * as one GEMM each way (reference and optimised are the same code here). */
#include "kernels.h"
#include "cpu_internal.h"

#include <string.h>

// in: (B, IC)  weight: (OC, IC)  bias: (OC) or NULL  out: (B, OC)
void linear_forward_cpu(float *out, const float *in, const float *weight,
                        const float *bias, int B, int IC, int OC)
{
    float beta = 0.0f;
    if (bias) {
        /* Seed the output with the bias and let the GEMM add onto it: one
         * pass over out instead of a GEMM pass plus a bias pass. */
        for (int b = 0; b < B; b++)
            memcpy(out + (size_t)b * OC, bias, (size_t)OC * sizeof(float));
        beta = 1.0f;
    }
    kern__sgemm(0, 1, B, OC, IC, 1.0f, in, IC, weight, IC, beta, out, OC);
}

// dout: (B, OC) -> din: (B, IC) or NULL, dweight: (OC, IC), dbias: (OC) or NULL
void linear_backward_cpu(float *din, float *dweight, float *dbias,
                         const float *dout, const float *in,
                         const float *weight, int B, int IC, int OC)
{
    if (din)
        kern__sgemm(0, 0, B, IC, OC, 1.0f, dout, OC, weight, IC, 0.0f, din,
                    IC);
    kern__sgemm(1, 0, OC, IC, B, 1.0f, dout, OC, in, IC, 0.0f, dweight, IC);
    if (dbias) {
        /* Column sums, row by row so the inner loop is contiguous. */
        memset(dbias, 0, (size_t)OC * sizeof(float));
        for (int b = 0; b < B; b++) {
            const float *row = dout + (size_t)b * OC;
#pragma omp simd
            for (int o = 0; o < OC; o++)
                dbias[o] += row[o];
        }
    }
}
