/* ringtrain kernels (CUDA): batch normalisation over (B, HW) per channel.
 *
 * One block per channel does the whole op in one launch, as the CPU reference
 * does per thread: sum -> mean, centred sum of squares -> variance (two-pass,
 * so large means cannot cancel digits), then normalise; the channel's later
 * passes mostly hit L2. Each thread sums its elements in float and the block
 * combines those partial sums in double, in a fixed order, so the result is
 * deterministic and at least as accurate as the CPU's float-row sums.
 * Backward is likewise one block per channel: the two sums, then din.
 *
 * A channel with few elements per row (HW = 7x7 at batch 64) is walked as one
 * flat index so every thread has work; a large one row by row, which saves
 * the division.
 *
 * Every kernel is templated on the activations' storage type T (float,
 * __half, __nv_bfloat16; statistics and parameters stay fp32), and may fuse
 * the ReLU that follows (forward: max(y, 0); backward: dout masked by the
 * fused output > 0).
 *
 * NHWC (channels innermost) cannot give a channel to a block without
 * strided reads, so it reduces in two steps: blocks of 32 channels x 8 row
 * groups sum a chunk of rows (positions b*HW + p) each, coalesced across
 * channels, into per-(chunk, channel) partials; one thread per channel then
 * adds the chunks in order in double (deterministic) and writes the
 * statistics and the per-channel coefficients, which an elementwise pass
 * applies. The forward sums are shifted by the channel's first value
 * (sum(x - K), sum((x - K)^2)), which keeps the one-pass variance from
 * cancelling digits unless the mean sits many standard deviations from
 * that value. */
#include "cuda_internal.h"

#include <math.h>

/* Calls f(offset) for every element of channel c's (B, HW) slab, offsets
 * relative to the channel's first element, split across the block. */
template <typename F>
__device__ static inline void bn__for_channel(int B, int HW,
                                              size_t plane_stride, F f)
{
    if (HW >= (int)blockDim.x) {
        for (int b = 0; b < B; b++)
            for (int p = threadIdx.x; p < HW; p += blockDim.x)
                f((size_t)b * plane_stride + p);
    } else {
        unsigned total = (unsigned)B * (unsigned)HW;
        for (unsigned j = threadIdx.x; j < total; j += blockDim.x) {
            unsigned b = j / (unsigned)HW, p = j - b * (unsigned)HW;
            f((size_t)b * plane_stride + p);
        }
    }
}

// in/out: (B, C, HW); one block per channel
template <typename T>
__global__ static void __launch_bounds__(KCUDA__REDUCE_THREADS)
bn_forward_train_kernel(
    T *out, float *save_mean, float *save_rstd, float *running_mean,
    float *running_var, const T *in, const float *gamma, const float *beta,
    int B, int C, int HW, float momentum, float eps, int relu)
{
    int c = blockIdx.x;
    size_t plane_stride = (size_t)C * HW;
    double count = (double)B * HW;
    const T *x = in + (size_t)c * HW;
    T *y = out + (size_t)c * HW;

    float part = 0.0f;
    bn__for_channel(B, HW, plane_stride,
                    [&](size_t i) { part += kcuda__ld(x[i]); });
    float mean = (float)(kcuda__block_sum((double)part) / count);

    part = 0.0f;
    bn__for_channel(B, HW, plane_stride, [&](size_t i) {
        float d = kcuda__ld(x[i]) - mean;
        part += d * d;
    });
    double sq = kcuda__block_sum((double)part);
    double var = sq / count;
    float rstd = (float)(1.0 / sqrt(var + (double)eps));
    float scale = gamma[c] * rstd;
    float shift = beta[c] - mean * scale;
    bn__for_channel(B, HW, plane_stride, [&](size_t i) {
        float v = kcuda__ld(x[i]) * scale + shift;
        kcuda__st(y + i, relu && v < 0.0f ? 0.0f : v);
    });

    if (threadIdx.x == 0) {
        save_mean[c] = mean;
        save_rstd[c] = rstd;
        /* PyTorch's running variance is unbiased; with one value per channel
         * there is no unbiased estimate, so the biased one is used. */
        double unbiased = count > 1.0 ? sq / (count - 1.0) : var;
        running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * mean;
        running_var[c] =
            (1.0f - momentum) * running_var[c] + momentum * (float)unbiased;
    }
}

// in/out: (B, C, HW); rows r = b*C + c
template <typename T>
__global__ static void bn_forward_eval_kernel(T *out, const T *in,
                                              const float *gamma,
                                              const float *beta,
                                              const float *running_mean,
                                              const float *running_var, int C,
                                              unsigned rows, unsigned HW,
                                              float eps, int relu)
{
    for (unsigned r = blockIdx.y; r < rows; r += gridDim.y) {
        unsigned c = r % (unsigned)C;
        float scale = gamma[c] / sqrtf(running_var[c] + eps);
        float shift = beta[c] - running_mean[c] * scale;
        const T *x = in + (size_t)r * HW;
        T *y = out + (size_t)r * HW;
        for (unsigned p = blockIdx.x * blockDim.x + threadIdx.x; p < HW;
             p += gridDim.x * blockDim.x) {
            float v = kcuda__ld(x[p]) * scale + shift;
            kcuda__st(y + p, relu && v < 0.0f ? 0.0f : v);
        }
    }
}

/* dout masked by a fused ReLU's output (relu_out NULL: not fused). */
template <typename T>
__device__ static inline float bn__dy(const T *dy, const T *relu_out, size_t i)
{
    if (relu_out && !(kcuda__ld(relu_out[i]) > 0.0f))
        return 0.0f;
    return kcuda__ld(dy[i]);
}

/* xhat = (x - mean) * rstd, N = B * HW:
 *   dbeta = sum(dy), dgamma = sum(dy * xhat)
 *   din = a * dy + b * (x - mean) + c with the CPU's coefficients. */
template <typename T>
__global__ static void __launch_bounds__(KCUDA__REDUCE_THREADS)
bn_backward_kernel(T *din, float *dgamma, float *dbeta, const T *dout,
                   const T *in, const T *relu_out, const float *gamma,
                   const float *save_mean, const float *save_rstd, int B,
                   int C, int HW)
{
    int c = blockIdx.x;
    size_t plane_stride = (size_t)C * HW;
    double count = (double)B * HW;
    const T *x = in + (size_t)c * HW;
    const T *dy = dout + (size_t)c * HW;
    const T *ro = relu_out ? relu_out + (size_t)c * HW : NULL;
    float mean = save_mean[c];
    float rstd = save_rstd[c];

    float s0 = 0.0f, s1 = 0.0f;
    bn__for_channel(B, HW, plane_stride, [&](size_t i) {
        float g = bn__dy(dy, ro, i);
        s0 += g;
        s1 += g * (kcuda__ld(x[i]) - mean);
    });
    double sum_dy = kcuda__block_sum((double)s0);
    double sum_dy_xc = kcuda__block_sum((double)s1);
    if (threadIdx.x == 0) {
        dbeta[c] = (float)sum_dy;
        dgamma[c] = (float)(sum_dy_xc * rstd);
    }
    if (!din)
        return;
    float k = gamma[c] * rstd;
    float mean_dy = (float)(sum_dy / count);
    float mean_dy_xhat = (float)(sum_dy_xc * rstd / count);
    float a = k;
    float bcoef = -k * rstd * mean_dy_xhat;
    float ccoef = -k * mean_dy;
    T *dx = din + (size_t)c * HW;
    bn__for_channel(B, HW, plane_stride, [&](size_t i) {
        float g = bn__dy(dy, ro, i);
        kcuda__st(dx + i, a * g + bcoef * (kcuda__ld(x[i]) - mean) + ccoef);
    });
}

/* ---- NHWC ------------------------------------------------------------------ */

#define BN__CH 32  /* channels per block (threadIdx.x) */
#define BN__ROWS 8 /* row groups per block (threadIdx.y) */

typedef struct {
    unsigned rows, C;   /* positions (B*HW) and channels */
    unsigned chunks;    /* row chunks (blockIdx.y) */
    unsigned per_chunk; /* rows per chunk, the last may hold fewer */
} bn__nhwc_t;

static bn__nhwc_t bn__nhwc_plan(int B, int C, int HW)
{
    bn__nhwc_t p;
    p.rows = (unsigned)B * (unsigned)HW;
    p.C = (unsigned)C;
    /* ~256 rows a chunk (32 per thread), within the partials scratch and
     * the grid's y limit. */
    size_t chunks = (p.rows + 255) / 256;
    size_t cap = KCUDA__BN_PARTIALS / (size_t)C;
    if (chunks > cap)
        chunks = cap;
    if (chunks > 65535)
        chunks = 65535;
    if (chunks < 1)
        chunks = 1;
    p.per_chunk = (unsigned)((p.rows + chunks - 1) / chunks);
    p.chunks = (p.rows + p.per_chunk - 1) / p.per_chunk;
    return p;
}

/* Block-wide sums of (a, b) over threadIdx.y, in order, for thread column
 * threadIdx.x; the row-0 threads get them. Every thread must call it. */
__device__ static inline void bn__column_sums(float *a, float *b)
{
    __shared__ float sa[BN__ROWS][BN__CH], sb[BN__ROWS][BN__CH];
    sa[threadIdx.y][threadIdx.x] = *a;
    sb[threadIdx.y][threadIdx.x] = *b;
    __syncthreads();
    if (threadIdx.y == 0) {
        float ta = 0.0f, tb = 0.0f;
        for (int r = 0; r < BN__ROWS; r++) {
            ta += sa[r][threadIdx.x];
            tb += sb[r][threadIdx.x];
        }
        *a = ta;
        *b = tb;
    }
    __syncthreads();
}

/* partial[(chunk, c)] over the chunk's rows, coalesced across channels:
 *   forward (GRAD false): (sum(x - K), sum((x - K)^2)), K = in[0, c]
 *   backward (GRAD true): (sum(dy), sum(dy * (x - mean))), dy masked by a
 *                         fused ReLU's output */
template <typename T, bool GRAD>
__global__ static void bn_nhwc_sums_kernel(float *partial, const T *in,
                                           const T *dout, const T *relu_out,
                                           const float *save_mean, bn__nhwc_t p)
{
    unsigned c = blockIdx.x * BN__CH + threadIdx.x;
    unsigned r0 = blockIdx.y * p.per_chunk;
    unsigned r1 = r0 + p.per_chunk < p.rows ? r0 + p.per_chunk : p.rows;
    float s0 = 0.0f, s1 = 0.0f;
    if (c < p.C) {
        float k = GRAD ? save_mean[c] : kcuda__ld(in[c]);
        for (unsigned r = r0 + threadIdx.y; r < r1; r += BN__ROWS) {
            size_t i = (size_t)r * p.C + c;
            float d = kcuda__ld(in[i]) - k;
            float g = GRAD ? bn__dy(dout, relu_out, i) : d;
            s0 += g;
            s1 += g * d;
        }
    }
    bn__column_sums(&s0, &s1);
    if (threadIdx.y == 0 && c < p.C) {
        float *dst = partial + ((size_t)blockIdx.y * p.C + c) * 2;
        dst[0] = s0;
        dst[1] = s1;
    }
}

// partials -> statistics, running stats, coef = (scale, shift) per channel
template <typename T>
__global__ static void bn_nhwc_finish_kernel(
    float *coef, float *save_mean, float *save_rstd, float *running_mean,
    float *running_var, const float *partial, const T *in, const float *gamma,
    const float *beta, bn__nhwc_t p, float momentum, float eps)
{
    for (unsigned c = blockIdx.x * blockDim.x + threadIdx.x; c < p.C;
         c += gridDim.x * blockDim.x) {
        double s1 = 0.0, s2 = 0.0, n = (double)p.rows;
        for (unsigned k = 0; k < p.chunks; k++) {
            s1 += partial[((size_t)k * p.C + c) * 2];
            s2 += partial[((size_t)k * p.C + c) * 2 + 1];
        }
        double m1 = s1 / n;
        double var = s2 / n - m1 * m1;
        if (var < 0.0)
            var = 0.0;
        float mean = (float)((double)kcuda__ld(in[c]) + m1);
        float rstd = (float)(1.0 / sqrt(var + (double)eps));
        save_mean[c] = mean;
        save_rstd[c] = rstd;
        double unbiased = n > 1.0 ? var * n / (n - 1.0) : var;
        running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * mean;
        running_var[c] =
            (1.0f - momentum) * running_var[c] + momentum * (float)unbiased;
        float scale = gamma[c] * rstd;
        coef[c] = scale;
        coef[p.C + c] = beta[c] - mean * scale;
    }
}

// running statistics -> coef = (scale, shift) per channel (evaluation)
__global__ static void bn_nhwc_eval_coef_kernel(float *coef, const float *gamma,
                                                const float *beta,
                                                const float *running_mean,
                                                const float *running_var,
                                                unsigned C, float eps)
{
    for (unsigned c = blockIdx.x * blockDim.x + threadIdx.x; c < C;
         c += gridDim.x * blockDim.x) {
        float scale = gamma[c] / sqrtf(running_var[c] + eps);
        coef[c] = scale;
        coef[C + c] = beta[c] - running_mean[c] * scale;
    }
}

/* Grid-stride over (rows, C) flat: the channel of element i is tracked by
 * adding the stride's remainder, so there is one division per thread. */
#define BN__FOR_NHWC(i, c, total, C)                                           \
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;                  \
    size_t bn__stride = (size_t)gridDim.x * blockDim.x;                        \
    unsigned c = (unsigned)(i % (C));                                          \
    unsigned bn__dc = (unsigned)(bn__stride % (C));                            \
    for (; i < (total); i += bn__stride, c = c + bn__dc >= (C) ? c + bn__dc - (C) : c + bn__dc)

// y = x * coef[c] + coef[C + c] (then ReLU)
template <typename T>
__global__ static void bn_nhwc_apply_kernel(T *out, const T *in,
                                            const float *coef, size_t total,
                                            unsigned C, int relu)
{
    BN__FOR_NHWC(i, c, total, C)
    {
        float v = kcuda__ld(in[i]) * coef[c] + coef[C + c];
        kcuda__st(out + i, relu && v < 0.0f ? 0.0f : v);
    }
}

// partials -> dgamma, dbeta, coef = (a, b, c) of din = a*dy + b*(x-mean) + c
__global__ static void bn_nhwc_grad_finish_kernel(float *coef, float *dgamma,
                                                  float *dbeta,
                                                  const float *partial,
                                                  const float *gamma,
                                                  const float *save_rstd,
                                                  bn__nhwc_t p)
{
    for (unsigned c = blockIdx.x * blockDim.x + threadIdx.x; c < p.C;
         c += gridDim.x * blockDim.x) {
        double sum_dy = 0.0, sum_dy_xc = 0.0, n = (double)p.rows;
        for (unsigned k = 0; k < p.chunks; k++) {
            sum_dy += partial[((size_t)k * p.C + c) * 2];
            sum_dy_xc += partial[((size_t)k * p.C + c) * 2 + 1];
        }
        float rstd = save_rstd[c];
        dbeta[c] = (float)sum_dy;
        dgamma[c] = (float)(sum_dy_xc * rstd);
        float k = gamma[c] * rstd;
        float mean_dy = (float)(sum_dy / n);
        float mean_dy_xhat = (float)(sum_dy_xc * rstd / n);
        coef[c] = k;
        coef[p.C + c] = -k * rstd * mean_dy_xhat;
        coef[2 * p.C + c] = -k * mean_dy;
    }
}

template <typename T>
__global__ static void bn_nhwc_dx_kernel(T *din, const T *dout, const T *in,
                                         const T *relu_out,
                                         const float *save_mean,
                                         const float *coef, size_t total,
                                         unsigned C)
{
    BN__FOR_NHWC(i, c, total, C)
    {
        float g = bn__dy(dout, relu_out, i);
        float v = coef[c] * g + coef[C + c] * (kcuda__ld(in[i]) - save_mean[c]) +
                  coef[2 * C + c];
        kcuda__st(din + i, v);
    }
}

/* Where the NHWC kernels keep partials (2 floats per chunk and channel) and
 * per-channel coefficients (3 per channel) in the context's scratch. */
static float *bn__partials(void) { return kcuda__ctx.bn_partial; }
static float *bn__coef(void)
{
    return kcuda__ctx.bn_partial + 2 * KCUDA__BN_PARTIALS;
}

static int bn__args_ok(const char *op, kern_format_t f, int B, int C, int HW)
{
    if (!kcuda__ready(op) || !kcuda__fmt_ok(f, op) || B <= 0 || C <= 0 ||
        HW <= 0)
        return 0;
    if (f.layout == KERN_NHWC && (size_t)C * 3 > KCUDA__BN_PARTIALS) {
        kcuda__report(RT_ERANGE, __FILE__, __LINE__, op,
                      "more channels than the NHWC batch-norm scratch holds");
        return 0;
    }
    return 1;
}

#define BN__LAUNCH(kernel, grid, block, ...)                                   \
    do {                                                                       \
        kernel<<<(grid), (block), 0, kcuda__ctx.stream>>>(__VA_ARGS__);        \
        KCUDA__LAUNCHED(#kernel);                                              \
    } while (0)

template <typename T>
static void bn_train_nhwc(T *out, float *save_mean, float *save_rstd,
                          float *running_mean, float *running_var, const T *in,
                          const float *gamma, const float *beta, int B, int C,
                          int HW, float momentum, float eps, int relu)
{
    bn__nhwc_t p = bn__nhwc_plan(B, C, HW);
    dim3 grid((p.C + BN__CH - 1) / BN__CH, p.chunks), block(BN__CH, BN__ROWS);
    unsigned cblocks = kcuda__blocks(p.C, KCUDA__THREADS);
    size_t total = (size_t)p.rows * p.C;
    bn_nhwc_sums_kernel<T, false><<<grid, block, 0, kcuda__ctx.stream>>>(
        bn__partials(), in, (const T *)NULL, (const T *)NULL, (const float *)NULL, p);
    KCUDA__LAUNCHED("bn_nhwc_sums_kernel");
    BN__LAUNCH(bn_nhwc_finish_kernel<T>, cblocks, KCUDA__THREADS, bn__coef(),
               save_mean, save_rstd, running_mean, running_var, bn__partials(),
               in, gamma, beta, p, momentum, eps);
    BN__LAUNCH(bn_nhwc_apply_kernel<T>, kcuda__blocks(total, KCUDA__THREADS),
               KCUDA__THREADS, out, in, bn__coef(), total, p.C, relu);
}

template <typename T>
static void bn_backward_nhwc(T *din, float *dgamma, float *dbeta,
                             const T *dout, const T *in, const T *relu_out,
                             const float *gamma, const float *save_mean,
                             const float *save_rstd, int B, int C, int HW)
{
    bn__nhwc_t p = bn__nhwc_plan(B, C, HW);
    dim3 grid((p.C + BN__CH - 1) / BN__CH, p.chunks), block(BN__CH, BN__ROWS);
    unsigned cblocks = kcuda__blocks(p.C, KCUDA__THREADS);
    size_t total = (size_t)p.rows * p.C;
    bn_nhwc_sums_kernel<T, true><<<grid, block, 0, kcuda__ctx.stream>>>(
        bn__partials(), in, dout, relu_out, save_mean, p);
    KCUDA__LAUNCHED("bn_nhwc_sums_kernel");
    BN__LAUNCH(bn_nhwc_grad_finish_kernel, cblocks, KCUDA__THREADS, bn__coef(),
               dgamma, dbeta, bn__partials(), gamma, save_rstd, p);
    if (din)
        BN__LAUNCH(bn_nhwc_dx_kernel<T>, kcuda__blocks(total, KCUDA__THREADS),
                   KCUDA__THREADS, din, dout, in, relu_out, save_mean,
                   bn__coef(), total, p.C);
}

// in/out: (B, C, HW) in format f; gamma, beta, running_*, save_*: (C) fp32
extern "C" void batchnorm_forward_train_fmt_cuda(
    void *out, float *save_mean, float *save_rstd, float *running_mean,
    float *running_var, const void *in, const float *gamma, const float *beta,
    int B, int C, int HW, float momentum, float eps, int relu, kern_format_t f)
{
    if (!bn__args_ok("batchnorm_forward_train_fmt_cuda", f, B, C, HW))
        return;
    if (f.layout == KERN_NHWC) {
        KCUDA__WITH_DTYPE(f.dtype, T,
                          bn_train_nhwc((T *)out, save_mean, save_rstd,
                                        running_mean, running_var,
                                        (const T *)in, gamma, beta, B, C, HW,
                                        momentum, eps, relu));
        return;
    }
    KCUDA__WITH_DTYPE(f.dtype, T,
                      BN__LAUNCH(bn_forward_train_kernel<T>, C,
                                 KCUDA__REDUCE_THREADS, (T *)out, save_mean,
                                 save_rstd, running_mean, running_var,
                                 (const T *)in, gamma, beta, B, C, HW,
                                 momentum, eps, relu));
}

// in/out: (B, C, HW) in format f; gamma, beta, running_mean, running_var: (C)
extern "C" void batchnorm_forward_eval_fmt_cuda(void *out, const void *in,
                                                const float *gamma,
                                                const float *beta,
                                                const float *running_mean,
                                                const float *running_var,
                                                int B, int C, int HW,
                                                float eps, int relu,
                                                kern_format_t f)
{
    if (!bn__args_ok("batchnorm_forward_eval_fmt_cuda", f, B, C, HW))
        return;
    if (f.layout == KERN_NHWC) {
        size_t total = (size_t)B * HW * C;
        BN__LAUNCH(bn_nhwc_eval_coef_kernel,
                   kcuda__blocks((size_t)C, KCUDA__THREADS), KCUDA__THREADS,
                   bn__coef(), gamma, beta, running_mean, running_var,
                   (unsigned)C, eps);
        KCUDA__WITH_DTYPE(f.dtype, T,
                          BN__LAUNCH(bn_nhwc_apply_kernel<T>,
                                     kcuda__blocks(total, KCUDA__THREADS),
                                     KCUDA__THREADS, (T *)out, (const T *)in,
                                     bn__coef(), total, (unsigned)C, relu));
        return;
    }
    unsigned rows = (unsigned)B * (unsigned)C;
    KCUDA__WITH_DTYPE(f.dtype, T,
                      BN__LAUNCH(bn_forward_eval_kernel<T>,
                                 kcuda__grid2d(rows, (size_t)HW, KCUDA__THREADS),
                                 KCUDA__THREADS, (T *)out, (const T *)in,
                                 gamma, beta, running_mean, running_var, C,
                                 rows, (unsigned)HW, eps, relu));
}

// dout, in (, relu_out): (B, C, HW) in format f -> din (or NULL), dgamma,
// dbeta: (C) fp32
extern "C" void batchnorm_backward_fmt_cuda(void *din, float *dgamma,
                                            float *dbeta, const void *dout,
                                            const void *in, const float *gamma,
                                            const float *save_mean,
                                            const float *save_rstd,
                                            const void *relu_out, int B, int C,
                                            int HW, kern_format_t f)
{
    if (!bn__args_ok("batchnorm_backward_fmt_cuda", f, B, C, HW))
        return;
    if (f.layout == KERN_NHWC) {
        KCUDA__WITH_DTYPE(f.dtype, T,
                          bn_backward_nhwc((T *)din, dgamma, dbeta,
                                           (const T *)dout, (const T *)in,
                                           (const T *)relu_out, gamma,
                                           save_mean, save_rstd, B, C, HW));
        return;
    }
    KCUDA__WITH_DTYPE(f.dtype, T,
                      BN__LAUNCH(bn_backward_kernel<T>, C,
                                 KCUDA__REDUCE_THREADS, (T *)din, dgamma,
                                 dbeta, (const T *)dout, (const T *)in,
                                 (const T *)relu_out, gamma, save_mean,
                                 save_rstd, B, C, HW));
}

extern "C" void batchnorm_forward_train_cuda(
    float *out, float *save_mean, float *save_rstd, float *running_mean,
    float *running_var, const float *in, const float *gamma,
    const float *beta, int B, int C, int HW, float momentum, float eps)
{
    if (C <= 0)
        return;
    batchnorm_forward_train_fmt_cuda(out, save_mean, save_rstd, running_mean,
                                     running_var, in, gamma, beta, B, C, HW,
                                     momentum, eps, 0, kcuda__f32());
}

extern "C" void batchnorm_forward_eval_cuda(float *out, const float *in,
                                            const float *gamma,
                                            const float *beta,
                                            const float *running_mean,
                                            const float *running_var, int B,
                                            int C, int HW, float eps)
{
    batchnorm_forward_eval_fmt_cuda(out, in, gamma, beta, running_mean,
                                    running_var, B, C, HW, eps, 0,
                                    kcuda__f32());
}

extern "C" void batchnorm_backward_cuda(float *din, float *dgamma,
                                        float *dbeta, const float *dout,
                                        const float *in, const float *gamma,
                                        const float *save_mean,
                                        const float *save_rstd, int B, int C,
                                        int HW)
{
    if (C <= 0)
        return;
    batchnorm_backward_fmt_cuda(din, dgamma, dbeta, dout, in, gamma, save_mean,
                                save_rstd, NULL, B, C, HW, kcuda__f32());
}
