/* ringtrain kernels (CUDA): 2-D convolution as im2col + cuBLAS GEMM.
 *
 * Images are processed in chunks of `nb`; a chunk's column matrix
 * col (K, N) has K = C*KH*KW rows and N = nb*OH*OW columns, image i's columns
 * at i*OH*OW (the CPU reference's layout, with bigger chunks).
 *   forward:  out_i (OC, OHW) = weight (OC, K) * col_i      one strided-batched
 *             GEMM per chunk writes straight into out (weight stride 0);
 *             1x1 / stride 1 / pad 0 needs no col at all: col_i = in_i.
 *   backward: stage (OC, N) = dout of the chunk, gathered
 *             dweight (OC, K) (+)= stage * col^T            one GEMM per chunk,
 *             summing over every image and position (beta = 1 after chunk 0)
 *             dcol (K, N) = weight^T * stage; din = col2im(dcol)
 *             (1x1: din_i = weight^T * dout_i, batched, no col2im).
 * The workspace holds col and stage: (K + OC) * N floats. Chunks are as large
 * as KCONV__CAP_FLOATS allows, so that a GEMM's N is in the tens of thousands
 * and the GPU is full even on 7x7 feature maps; the caller allocates it once
 * (conv2d_workspace_floats_cuda) and reuses it for every call.
 *
 * im2col and col2im are one thread per output element; col2im gathers the
 * taps of each input pixel in (kh, kw) order, the order in which the CPU adds
 * them, so there are no atomics and no run-to-run variation. Bias gradients
 * are a block reduction per channel (fixed order, deterministic). */
#include "cuda_internal.h"

/* Workspace cap for a chunk of several images: 64 Mi floats (256 MiB). A
 * single image may need more (it then gets exactly what it needs). */
#define KCONV__CAP_FLOATS ((size_t)64 << 20)

typedef struct {
    int chunk;     /* images per chunk */
    int pointwise; /* 1x1, stride 1, pad 0 */
    size_t K;      /* C * KH * KW */
    size_t ohw;    /* OH * OW */
} kconv__plan_t;

static void kconv__plan(const conv2d_shape_t *s, kconv__plan_t *p)
{
    p->pointwise = s->KH == 1 && s->KW == 1 && s->stride == 1 && s->pad == 0;
    p->K = (size_t)s->C * s->KH * s->KW;
    p->ohw = (size_t)s->OH * s->OW;
    size_t per_image = (p->K + (size_t)s->OC) * p->ohw;
    size_t fit = KCONV__CAP_FLOATS / per_image;
    int chunk = fit >= (size_t)s->B ? s->B : (fit > 1 ? (int)fit : 1);
    /* Even out the chunks: 64 images at 25 per chunk become 22 + 22 + 20. */
    int chunks = (s->B + chunk - 1) / chunk;
    p->chunk = (s->B + chunks - 1) / chunks;
}

extern "C" size_t conv2d_workspace_floats_cuda(const conv2d_shape_t *s)
{
    kconv__plan_t p;
    kconv__plan(s, &p);
    return (p.K + (size_t)s->OC) * p.ohw * (size_t)p.chunk;
}

typedef struct {
    int C, H, W, KH, KW, stride, pad, OH, OW;
} kconv__geom_t;

static kconv__geom_t kconv__geom(const conv2d_shape_t *s)
{
    kconv__geom_t g = {s->C, s->H, s->W, s->KH, s->KW, s->stride, s->pad,
                       s->OH, s->OW};
    return g;
}

/* Kernels below walk (row, column) grids (kcuda__grid2d) so each element
 * costs a division or two; 32-bit indices suffice within a chunk (N and the
 * planes fit in int, as the GEMM's leading dimensions must). */
#define KCONV__ROWS(r, rows) for (unsigned r = blockIdx.y; r < (rows); r += gridDim.y)
#define KCONV__COLS(col_, cols)                                                \
    for (unsigned col_ = blockIdx.x * blockDim.x + threadIdx.x; col_ < (cols); \
         col_ += gridDim.x * blockDim.x)

// in: images of the chunk (nb, C, H, W) -> col: (K, N), N = nb*OH*OW
__global__ static void conv_im2col_kernel(float *col, const float *in,
                                          kconv__geom_t g, int nb)
{
    unsigned ohw = (unsigned)(g.OH * g.OW);
    unsigned N = (unsigned)nb * ohw;
    unsigned taps = (unsigned)(g.KH * g.KW);
    unsigned K = (unsigned)g.C * taps;
    KCONV__ROWS(k, K)
    {
        int c = (int)(k / taps), r = (int)(k % taps);
        int kh = r / g.KW, kw = r % g.KW;
        float *row = col + (size_t)k * N;
        KCONV__COLS(n, N)
        {
            unsigned i = n / ohw, pos = n - i * ohw;
            int oh = (int)pos / g.OW, ow = (int)pos - oh * g.OW;
            int ih = oh * g.stride - g.pad + kh;
            int iw = ow * g.stride - g.pad + kw;
            float v = 0.0f;
            if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W)
                v = in[(((size_t)i * g.C + c) * g.H + ih) * g.W + iw];
            row[n] = v;
        }
    }
}

/* dcol: (K, N) -> din: images of the chunk (nb, C, H, W), overwritten.
 * Input row h receives tap kh from output row oh when oh*stride + kh =
 * h + pad; walking oh downwards walks kh upwards, the CPU's order. */
__global__ static void conv_col2im_kernel(float *din, const float *dcol,
                                          kconv__geom_t g, int nb)
{
    unsigned ohw = (unsigned)(g.OH * g.OW);
    size_t N = (size_t)nb * ohw;
    unsigned planes = (unsigned)nb * (unsigned)g.C;
    unsigned hw = (unsigned)(g.H * g.W);
    KCONV__ROWS(plane, planes)
    {
        unsigned i = plane / (unsigned)g.C, c = plane % (unsigned)g.C;
        const float *base = dcol + (size_t)c * g.KH * g.KW * N + (size_t)i * ohw;
        float *dst = din + (size_t)plane * hw;
        KCONV__COLS(pix, hw)
        {
            int h = (int)pix / g.W, w = (int)pix - h * g.W;
            int th = h + g.pad, tw = w + g.pad;
            int oh_hi = th / g.stride, ow_hi = tw / g.stride;
            oh_hi = oh_hi < g.OH - 1 ? oh_hi : g.OH - 1;
            ow_hi = ow_hi < g.OW - 1 ? ow_hi : g.OW - 1;
            int t = th - g.KH + 1, u = tw - g.KW + 1;
            int oh_lo = t <= 0 ? 0 : (t + g.stride - 1) / g.stride;
            int ow_lo = u <= 0 ? 0 : (u + g.stride - 1) / g.stride;
            float sum = 0.0f;
            for (int oh = oh_hi; oh >= oh_lo; oh--) {
                int kh = th - oh * g.stride;
                for (int ow = ow_hi; ow >= ow_lo; ow--) {
                    int kw = tw - ow * g.stride;
                    sum += base[(size_t)(kh * g.KW + kw) * N +
                                (size_t)oh * g.OW + ow];
                }
            }
            dst[pix] = sum;
        }
    }
}

// dout: images of the chunk (nb, OC, OHW) -> stage: (OC, N), N = nb*OHW
__global__ static void conv_stage_kernel(float *stage, const float *dout,
                                         int OC, unsigned ohw, int nb)
{
    unsigned N = (unsigned)nb * ohw;
    KCONV__ROWS(o, (unsigned)OC)
    {
        float *row = stage + (size_t)o * N;
        KCONV__COLS(n, N)
        {
            unsigned i = n / ohw, p = n - i * ohw;
            row[n] = dout[((size_t)i * OC + o) * ohw + p];
        }
    }
}

// out: (B, OC, OHW) += bias[o]
__global__ static void conv_bias_add_kernel(float *out, const float *bias,
                                            int B, int OC, unsigned ohw)
{
    KCONV__ROWS(r, (unsigned)B * (unsigned)OC)
    {
        float add = bias[r % (unsigned)OC];
        float *row = out + (size_t)r * ohw;
        KCONV__COLS(p, ohw)
        {
            row[p] += add;
        }
    }
}

// dbias[o] = sum over b, p of dout[b, o, p]: one block per channel
__global__ static void __launch_bounds__(KCUDA__REDUCE_THREADS)
conv_bias_grad_kernel(float *dbias, const float *dout,
                                             int B, int OC, unsigned ohw)
{
    int o = blockIdx.x;
    float sum = 0.0f;
    for (int b = 0; b < B; b++) {
        const float *row = dout + ((size_t)b * OC + o) * ohw;
        for (unsigned p = threadIdx.x; p < ohw; p += blockDim.x)
            sum += row[p];
    }
    double total = kcuda__block_sum((double)sum);
    if (threadIdx.x == 0)
        dbias[o] = (float)total;
}

#define KCONV__LAUNCH(kernel, rows, cols, ...)                                 \
    do {                                                                       \
        kernel<<<kcuda__grid2d((rows), (cols), KCUDA__THREADS), KCUDA__THREADS, \
                 0, kcuda__ctx.stream>>>(__VA_ARGS__);                         \
        KCUDA__LAUNCHED(#kernel);                                              \
    } while (0)

// in: (B, C, H, W)  weight: (OC, C, KH, KW)  bias: (OC) or NULL
// -> out: (B, OC, OH, OW)
extern "C" void conv2d_forward_cuda(float *out, const float *in,
                                    const float *weight, const float *bias,
                                    const conv2d_shape_t *s, float *workspace)
{
    if (!kcuda__ready("conv2d_forward_cuda"))
        return;
    kconv__plan_t p;
    kconv__plan(s, &p);
    kconv__geom_t g = kconv__geom(s);
    int OC = s->OC, K = (int)p.K, ohw = (int)p.ohw;
    size_t in_image = (size_t)s->C * s->H * s->W;
    size_t out_image = (size_t)OC * p.ohw;
    if (p.pointwise) {
        /* out_b (OC, HW) = weight (OC, C) * in_b (C, HW), all images at once */
        kcuda__sgemm_batched(0, 0, OC, ohw, K, 1.0f, weight, K, 0, in, ohw,
                             (long long)in_image, 0.0f, out, ohw,
                             (long long)out_image, s->B);
    } else {
        for (int b0 = 0; b0 < s->B; b0 += p.chunk) {
            int nb = s->B - b0 < p.chunk ? s->B - b0 : p.chunk;
            size_t n = (size_t)nb * p.ohw;
            KCONV__LAUNCH(conv_im2col_kernel, p.K, n, workspace,
                          in + (size_t)b0 * in_image, g, nb);
            kcuda__sgemm_batched(0, 0, OC, ohw, K, 1.0f, weight, K, 0,
                                 workspace, (int)n, ohw, 0.0f,
                                 out + (size_t)b0 * out_image, ohw,
                                 (long long)out_image, nb);
        }
    }
    if (bias) {
        KCONV__LAUNCH(conv_bias_add_kernel, (size_t)s->B * OC, p.ohw, out,
                      bias, s->B, OC, (unsigned)p.ohw);
    }
}

// dout: (B, OC, OH, OW) -> din: (B, C, H, W) or NULL, dweight: (OC, C, KH, KW),
// dbias: (OC) or NULL
extern "C" void conv2d_backward_cuda(float *din, float *dweight, float *dbias,
                                     const float *dout, const float *in,
                                     const float *weight,
                                     const conv2d_shape_t *s, float *workspace)
{
    if (!kcuda__ready("conv2d_backward_cuda"))
        return;
    kconv__plan_t p;
    kconv__plan(s, &p);
    kconv__geom_t g = kconv__geom(s);
    int OC = s->OC, K = (int)p.K, ohw = (int)p.ohw;
    size_t in_image = (size_t)s->C * s->H * s->W;
    size_t out_image = (size_t)OC * p.ohw;
    if (dbias) {
        conv_bias_grad_kernel<<<OC, KCUDA__REDUCE_THREADS, 0,
                                kcuda__ctx.stream>>>(dbias, dout, s->B, OC,
                                                     (unsigned)p.ohw);
        KCUDA__LAUNCHED("conv_bias_grad_kernel");
    }
    for (int b0 = 0; b0 < s->B; b0 += p.chunk) {
        int nb = s->B - b0 < p.chunk ? s->B - b0 : p.chunk;
        size_t n = (size_t)nb * p.ohw;
        float *col = workspace;
        float *stage = workspace + p.K * n;
        const float *dy = dout + (size_t)b0 * out_image;
        /* For 1x1 this im2col is a plain gather of the chunk's images. */
        KCONV__LAUNCH(conv_im2col_kernel, p.K, n, col,
                      in + (size_t)b0 * in_image, g, nb);
        KCONV__LAUNCH(conv_stage_kernel, (size_t)OC, n, stage, dy, OC,
                      (unsigned)p.ohw, nb);
        kcuda__sgemm(0, 1, OC, K, (int)n, 1.0f, stage, (int)n, col, (int)n,
                     b0 == 0 ? 0.0f : 1.0f, dweight, K);
        if (!din)
            continue;
        float *dx = din + (size_t)b0 * in_image;
        if (p.pointwise) {
            /* din_i (C, HW) = weight^T (C, OC) * dout_i (OC, HW) */
            kcuda__sgemm_batched(1, 0, K, ohw, OC, 1.0f, weight, K, 0, dy, ohw,
                                 (long long)out_image, 0.0f, dx, ohw,
                                 (long long)in_image, nb);
            continue;
        }
        /* col was consumed by the dweight GEMM (same stream): reuse it. */
        kcuda__sgemm(1, 0, K, (int)n, OC, 1.0f, weight, K, stage, (int)n, 0.0f,
                     col, (int)n);
        KCONV__LAUNCH(conv_col2im_kernel, (size_t)nb * s->C,
                      (size_t)s->H * s->W, dx, col, g, nb);
    }
}
