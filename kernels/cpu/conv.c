/* ringtrain kernels (CPU): 2-D convolution as im2col + GEMM.
 *
 * Forward, per group of images ("chunk"):
 *   col (K, N) = im2col(in)          K = C*KH*KW, N = images * OH*OW
 *   out (OC, N) = weight (OC, K) * col
 * Backward:
 *   dweight (OC, K) += dout (OC, N) * col^T   (beta = 1 after the first chunk)
 *   dcol (K, N) = weight^T * dout;  din = col2im(dcol)
 *
 * Chunking: one image at a time keeps the workspace small (ResNet-50's first
 * layer alone has a 7.4 MB column matrix per image), but late layers have only
 * 7x7 outputs per image, and a GEMM with N = 49 wastes a quarter of its time
 * repacking the weights. So images are grouped until N reaches
 * CONV__TARGET_N, within a workspace cap. A chunk of several images lays
 * its columns side by side (row stride N), so out and dout go through a
 * staging matrix (OC, N) that is scattered/gathered per image: a copy of the
 * output, cheap next to the GEMM.
 *
 * 1x1 convolutions with stride 1 and no padding need no im2col at all: an
 * image (C, H*W) already is its column matrix, and one image's output plane is
 * the GEMM's output, so single-image chunks of these run with no workspace.
 *
 * im2col and col2im work per tap (kh, kw); for stride-1 "same" convs a tap is
 * one contiguous span of the plane (see conv__contiguous). Packing the GEMM's
 * operand straight from the input instead of building col was tried and was
 * no faster than this (LeNet, ResNet-50 shapes), so col stays explicit.
 *
 * Threads: GEMMs are threaded by the GEMM backend; im2col and col2im split
 * (image, channel) units across OpenMP threads (a channel owns KH*KW rows of
 * col and one plane of din, so there are no write conflicts). */
#include "kernels.h"
#include "cpu_internal.h"

#include <string.h>

/* Columns per GEMM worth aiming for, and the most workspace (floats) a chunk
 * of several images may take (16 MiB; a single image may need more). */
#define CONV__TARGET_N 1024
#define CONV__CAP_FLOATS ((size_t)4 << 20)

typedef struct {
    int chunk;        /* images per GEMM */
    int pointwise;    /* 1x1, stride 1, pad 0: in is already col */
    size_t K;         /* C * KH * KW */
    size_t ohw;       /* OH * OW */
} conv__plan_t;

int conv2d_shape_init(conv2d_shape_t *s, int B, int C, int H, int W, int OC,
                      int KH, int KW, int stride, int pad)
{
    if (!s || B < 1 || C < 1 || H < 1 || W < 1 || OC < 1 || KH < 1 ||
        KW < 1 || stride < 1 || pad < 0 || H + 2 * pad < KH ||
        W + 2 * pad < KW)
        return -1;
    s->B = B;
    s->C = C;
    s->H = H;
    s->W = W;
    s->OC = OC;
    s->KH = KH;
    s->KW = KW;
    s->stride = stride;
    s->pad = pad;
    s->OH = (H + 2 * pad - KH) / stride + 1;
    s->OW = (W + 2 * pad - KW) / stride + 1;
    return 0;
}

static void conv__plan(const conv2d_shape_t *s, conv__plan_t *p)
{
    p->pointwise = s->KH == 1 && s->KW == 1 && s->stride == 1 && s->pad == 0;
    p->K = (size_t)s->C * s->KH * s->KW;
    p->ohw = (size_t)s->OH * s->OW;
    int chunk = 1;
    if (p->ohw < CONV__TARGET_N) {
        chunk = (int)((CONV__TARGET_N + p->ohw - 1) / p->ohw);
        size_t per_image = (p->K + (size_t)s->OC) * p->ohw;
        size_t fit = CONV__CAP_FLOATS / per_image;
        if ((size_t)chunk > fit)
            chunk = fit > 1 ? (int)fit : 1;
        if (chunk > s->B)
            chunk = s->B;
        /* Even out the chunks: 32 images at 21 per chunk become 16 + 16. */
        int chunks = (s->B + chunk - 1) / chunk;
        chunk = (s->B + chunks - 1) / chunks;
    }
    p->chunk = chunk;
}

int kern__conv_chunk(const conv2d_shape_t *s)
{
    conv__plan_t p;
    conv__plan(s, &p);
    return p.chunk;
}

size_t conv2d_workspace_floats(const conv2d_shape_t *s)
{
    conv__plan_t p;
    conv__plan(s, &p);
    if (p.chunk == 1)
        return p.pointwise ? 0 : p.K * p.ohw;
    /* col (K, N) and the out/dout staging matrix (OC, N). */
    return (p.K + (size_t)s->OC) * p.ohw * (size_t)p.chunk;
}

/* Output positions [lo, hi) along one axis whose tap `k` lands inside the
 * input: 0 <= o * stride - pad + k < size. */
static inline void conv__valid(int k, int stride, int pad, int size,
                               int out_size, int *lo, int *hi)
{
    int off = k - pad;
    int l = off >= 0 ? 0 : (-off + stride - 1) / stride;
    int h = size - 1 - off < 0 ? 0 : (size - 1 - off) / stride + 1;
    if (h > out_size)
        h = out_size;
    if (l > h)
        l = h;
    *lo = l;
    *hi = h;
}

/* With stride 1 and OW == W ("same" width), tap (kh, kw) reads the input
 * at a constant offset from the output position: in[q + shift] for
 * q = oh * OW + ow. A row of col is then one contiguous copy over the valid
 * span, with the columns that fall in the horizontal padding (they would
 * wrap into the neighbouring input row) zeroed afterwards. That replaces
 * OH short copies (14 floats for LeNet, 7 for ResNet's last stage) with one
 * long one. conv__span gives the span [q0, q1) of valid positions. */
static inline int conv__contiguous(const conv2d_shape_t *s)
{
    return s->stride == 1 && s->OW == s->W;
}

static inline void conv__span(int oh_lo, int oh_hi, int ow_lo, int ow_hi,
                              int OW, int *q0, int *q1)
{
    if (oh_lo >= oh_hi || ow_lo >= ow_hi) {
        *q0 = *q1 = 0;
        return;
    }
    *q0 = oh_lo * OW + ow_lo;
    *q1 = (oh_hi - 1) * OW + ow_hi;
}

/* Zero the padding columns of rows [oh_lo, oh_hi) inside [q0, q1). */
static inline void conv__zero_pad_cols(float *row, int oh_lo, int oh_hi,
                                       int ow_lo, int ow_hi, int OW, int q0,
                                       int q1)
{
    for (int oh = oh_lo; oh < oh_hi; oh++) {
        int base = oh * OW;
        for (int ow = 0; ow < ow_lo; ow++)
            if (base + ow >= q0 && base + ow < q1)
                row[base + ow] = 0.0f;
        for (int ow = ow_hi; ow < OW; ow++)
            if (base + ow >= q0 && base + ow < q1)
                row[base + ow] = 0.0f;
    }
}

/* One channel plane (H, W) -> its KH*KW rows of col, each OH*OW long, rows
 * ld apart. Padding becomes zeros. */
static void conv__im2col_channel(float *col, size_t ld, const float *plane,
                                 const conv2d_shape_t *s)
{
    int OH = s->OH, OW = s->OW, H = s->H, W = s->W, st = s->stride;
    int ohw = OH * OW;
    int contiguous = conv__contiguous(s);
    for (int kh = 0; kh < s->KH; kh++) {
        int oh_lo, oh_hi;
        conv__valid(kh, st, s->pad, H, OH, &oh_lo, &oh_hi);
        for (int kw = 0; kw < s->KW; kw++) {
            float *row = col + (size_t)(kh * s->KW + kw) * ld;
            int ow_lo, ow_hi;
            conv__valid(kw, st, s->pad, W, OW, &ow_lo, &ow_hi);
            if (contiguous) {
                int q0, q1;
                conv__span(oh_lo, oh_hi, ow_lo, ow_hi, OW, &q0, &q1);
                ptrdiff_t shift = (ptrdiff_t)(kh - s->pad) * W + kw - s->pad;
                memset(row, 0, (size_t)q0 * sizeof(float));
                memcpy(row + q0, plane + q0 + shift,
                       (size_t)(q1 - q0) * sizeof(float));
                memset(row + q1, 0, (size_t)(ohw - q1) * sizeof(float));
                conv__zero_pad_cols(row, oh_lo, oh_hi, ow_lo, ow_hi, OW, q0,
                                    q1);
                continue;
            }
            memset(row, 0, (size_t)oh_lo * OW * sizeof(float));
            for (int oh = oh_lo; oh < oh_hi; oh++) {
                float *dst = row + (size_t)oh * OW;
                const float *src =
                    plane + (size_t)(oh * st - s->pad + kh) * W - s->pad + kw;
                for (int ow = 0; ow < ow_lo; ow++)
                    dst[ow] = 0.0f;
                if (st == 1) {
                    memcpy(dst + ow_lo, src + ow_lo,
                           (size_t)(ow_hi - ow_lo) * sizeof(float));
                } else {
                    for (int ow = ow_lo; ow < ow_hi; ow++)
                        dst[ow] = src[ow * st];
                }
                for (int ow = ow_hi; ow < OW; ow++)
                    dst[ow] = 0.0f;
            }
            memset(row + (size_t)oh_hi * OW, 0,
                   (size_t)(OH - oh_hi) * OW * sizeof(float));
        }
    }
}

/* The reverse: a channel's KH*KW rows of dcol summed into its plane, which is
 * overwritten (zeroed first). dcol is scratch: the contiguous path zeroes its
 * padding columns, then adds each row's valid span in one long loop. */
static void conv__col2im_channel(float *plane, float *col, size_t ld,
                                 const conv2d_shape_t *s)
{
    int OW = s->OW, H = s->H, W = s->W, st = s->stride;
    int contiguous = conv__contiguous(s);
    memset(plane, 0, (size_t)H * W * sizeof(float));
    for (int kh = 0; kh < s->KH; kh++) {
        int oh_lo, oh_hi;
        conv__valid(kh, st, s->pad, H, s->OH, &oh_lo, &oh_hi);
        for (int kw = 0; kw < s->KW; kw++) {
            float *row = col + (size_t)(kh * s->KW + kw) * ld;
            int ow_lo, ow_hi;
            conv__valid(kw, st, s->pad, W, OW, &ow_lo, &ow_hi);
            if (contiguous) {
                int q0, q1;
                conv__span(oh_lo, oh_hi, ow_lo, ow_hi, OW, &q0, &q1);
                conv__zero_pad_cols(row, oh_lo, oh_hi, ow_lo, ow_hi, OW, q0,
                                    q1);
                float *dst =
                    plane + (ptrdiff_t)(kh - s->pad) * W + kw - s->pad;
#pragma omp simd
                for (int q = q0; q < q1; q++)
                    dst[q] += row[q];
                continue;
            }
            for (int oh = oh_lo; oh < oh_hi; oh++) {
                const float *src = row + (size_t)oh * OW;
                float *dst =
                    plane + (size_t)(oh * st - s->pad + kh) * W - s->pad + kw;
                if (st == 1) {
                    for (int ow = ow_lo; ow < ow_hi; ow++)
                        dst[ow] += src[ow];
                } else {
                    for (int ow = ow_lo; ow < ow_hi; ow++)
                        dst[ow * st] += src[ow];
                }
            }
        }
    }
}

/* col (K, nb*OHW) from images b0 .. b0+nb-1. */
static void conv__fill_col(float *col, const float *in, int b0, int nb,
                           const conv2d_shape_t *s, const conv__plan_t *p)
{
    size_t ld = (size_t)nb * p->ohw;
    size_t plane = (size_t)s->H * s->W;
    size_t taps = (size_t)s->KH * s->KW;
    long units = (long)nb * s->C;
    int threads = kern__threads_for(p->K * ld);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long u = 0; u < units; u++) {
        int i = (int)(u / s->C), c = (int)(u % s->C);
        const float *src = in + ((size_t)(b0 + i) * s->C + c) * plane;
        float *dst = col + (size_t)c * taps * ld + (size_t)i * p->ohw;
        if (p->pointwise)
            memcpy(dst, src, plane * sizeof(float));
        else
            conv__im2col_channel(dst, ld, src, s);
    }
}

/* din for images b0 .. b0+nb-1 from dcol (K, nb*OHW). */
static void conv__scatter_col(float *din, float *dcol, int b0, int nb,
                              const conv2d_shape_t *s, const conv__plan_t *p)
{
    size_t ld = (size_t)nb * p->ohw;
    size_t plane = (size_t)s->H * s->W;
    size_t taps = (size_t)s->KH * s->KW;
    long units = (long)nb * s->C;
    int threads = kern__threads_for(p->K * ld);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long u = 0; u < units; u++) {
        int i = (int)(u / s->C), c = (int)(u % s->C);
        float *dst = din + ((size_t)(b0 + i) * s->C + c) * plane;
        float *src = dcol + (size_t)c * taps * ld + (size_t)i * p->ohw;
        if (p->pointwise)
            memcpy(dst, src, plane * sizeof(float));
        else
            conv__col2im_channel(dst, src, ld, s);
    }
}

/* out/dout of images b0 .. b0+nb-1 <-> the staging matrix (OC, nb*OHW). */
static void conv__stage(float *stage, float *images, int b0, int nb,
                        const float *bias, int to_images,
                        const conv2d_shape_t *s, size_t ohw)
{
    int OC = s->OC;
    size_t n = (size_t)nb * ohw;
    size_t out_image = (size_t)OC * ohw;
    long units = (long)nb * OC;
    int threads = kern__threads_for((size_t)OC * n);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long u = 0; u < units; u++) {
        int i = (int)(u / OC), o = (int)(u % OC);
        float *img = images + (size_t)(b0 + i) * out_image + (size_t)o * ohw;
        float *st = stage + (size_t)o * n + (size_t)i * ohw;
        if (to_images) {
            float add = bias ? bias[o] : 0.0f;
#pragma omp simd
            for (size_t j = 0; j < ohw; j++)
                img[j] = st[j] + add;
        } else {
            memcpy(st, img, ohw * sizeof(float));
        }
    }
}

// in: (B, C, H, W)  weight: (OC, C, KH, KW)  bias: (OC) or NULL
// -> out: (B, OC, OH, OW)
void conv2d_forward_cpu(float *out, const float *in, const float *weight,
                        const float *bias, const conv2d_shape_t *s,
                        float *workspace)
{
    conv__plan_t p;
    conv__plan(s, &p);
    int OC = s->OC, K = (int)p.K;
    size_t ohw = p.ohw;
    size_t in_image = (size_t)s->C * s->H * s->W;
    size_t out_image = (size_t)OC * ohw;
    for (int b0 = 0; b0 < s->B; b0 += p.chunk) {
        int nb = s->B - b0 < p.chunk ? s->B - b0 : p.chunk;
        int n = nb * (int)ohw;
        /* One image writes its output plane directly (bias seeded, GEMM
         * adds); several go through the staging matrix. */
        float *c = nb == 1 ? out + (size_t)b0 * out_image
                           : workspace + p.K * (size_t)n;
        float beta = 0.0f;
        if (nb == 1 && bias) {
            for (int o = 0; o < OC; o++)
                for (size_t j = 0; j < ohw; j++)
                    c[o * ohw + j] = bias[o];
            beta = 1.0f;
        }
        const float *col = in + (size_t)b0 * in_image;
        if (!(nb == 1 && p.pointwise)) {
            conv__fill_col(workspace, in, b0, nb, s, &p);
            col = workspace;
        }
        kern__sgemm(0, 0, OC, n, K, 1.0f, weight, K, col, n, beta, c, n);
        if (nb > 1)
            conv__stage(c, out, b0, nb, bias, 1, s, ohw);
    }
}

/* dbias[o] = sum over images and positions of dout. */
static void conv__bias_grad(float *dbias, const float *dout,
                            const conv2d_shape_t *s, size_t ohw)
{
    int OC = s->OC;
    int threads = kern__threads_for((size_t)s->B * OC * ohw);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int o = 0; o < OC; o++) {
        double total = 0.0;
        for (int b = 0; b < s->B; b++) {
            const float *row = dout + ((size_t)b * OC + o) * ohw;
            float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
            for (size_t j = 0; j < ohw; j++)
                sum += row[j];
            total += sum;
        }
        dbias[o] = (float)total;
    }
}

// dout: (B, OC, OH, OW) -> din: (B, C, H, W) or NULL, dweight: (OC, C, KH, KW),
// dbias: (OC) or NULL
void conv2d_backward_cpu(float *din, float *dweight, float *dbias,
                         const float *dout, const float *in,
                         const float *weight, const conv2d_shape_t *s,
                         float *workspace)
{
    conv__plan_t p;
    conv__plan(s, &p);
    int OC = s->OC;
    int K = (int)p.K;
    size_t ohw = p.ohw;
    size_t in_image = (size_t)s->C * s->H * s->W;
    size_t out_image = (size_t)OC * ohw;
    if (dbias)
        conv__bias_grad(dbias, dout, s, ohw);
    for (int b0 = 0; b0 < s->B; b0 += p.chunk) {
        int nb = s->B - b0 < p.chunk ? s->B - b0 : p.chunk;
        int n = nb * (int)ohw;
        float beta = b0 == 0 ? 0.0f : 1.0f;
        const float *dy = dout + (size_t)b0 * out_image;
        if (nb > 1) {
            float *stage = workspace + p.K * (size_t)n;
            conv__stage(stage, (float *)dout, b0, nb, NULL, 0, s, ohw);
            dy = stage;
        }
        /* dweight (+)= dy * col^T */
        const float *col = in + (size_t)b0 * in_image;
        if (!(nb == 1 && p.pointwise)) {
            conv__fill_col(workspace, in, b0, nb, s, &p);
            col = workspace;
        }
        kern__sgemm(0, 1, OC, K, n, 1.0f, dy, n, col, n, beta, dweight, K);
        if (!din)
            continue;
        if (nb == 1 && p.pointwise) {
            kern__sgemm(1, 0, K, n, OC, 1.0f, weight, K, dy, n, 0.0f,
                        din + (size_t)b0 * in_image, n);
            continue;
        }
        /* dcol = weight^T * dy (over col, which is no longer needed), then
         * col2im into din. */
        kern__sgemm(1, 0, K, n, OC, 1.0f, weight, K, dy, n, 0.0f, workspace,
                    n);
        conv__scatter_col(din, workspace, b0, nb, s, &p);
    }
}
