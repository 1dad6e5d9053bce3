/* Convolution shapes the GPU convolution tests share (test_kernels_cuda_conv
 * for im2col, test_kernels_cuda_cudnn for cuDNN): 3x3 pad 1, strides 2 and
 * 3, odd and non-square sizes, non-square kernels, 1x1 with stride 1 and
 * 2, the 7x7/2 stem, bias and no bias, din NULL. Each test adds its own
 * larger shapes. */
#ifndef RINGTRAIN_GPU_CONV_CASES_H
#define RINGTRAIN_GPU_CONV_CASES_H

typedef struct {
    int B, C, H, W, OC, KH, KW, stride, pad, bias, din;
} conv_case_t;

#define GT_CONV_CASES_COMMON                                                   \
    {2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1},     /* 3x3 pad 1, odd sizes */          \
    {2, 3, 9, 7, 5, 3, 3, 2, 1, 0, 1},     /* stride 2 */                      \
    {3, 4, 5, 5, 6, 1, 1, 1, 0, 0, 1},     /* 1x1 pointwise */                 \
    {1, 4, 6, 5, 3, 1, 1, 1, 0, 1, 1},     /* 1x1, one image, bias */          \
    {2, 4, 7, 7, 3, 1, 1, 2, 0, 0, 1},     /* 1x1 stride 2 (downsample) */     \
    {2, 1, 8, 8, 4, 5, 5, 1, 2, 1, 0},     /* LeNet 5x5, first layer */        \
    {2, 3, 23, 22, 8, 7, 7, 2, 3, 0, 1},   /* ResNet stem 7x7/2 pad 3 */       \
    {2, 2, 4, 5, 3, 3, 2, 3, 2, 1, 1}      /* non-square kernel, stride 3 */

#endif
