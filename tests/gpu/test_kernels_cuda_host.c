/* GPU test that needs no GPU (runs everywhere CUDA is built, CI included):
 * the CUDA library links and loads, device discovery answers instead of
 * failing, ops called before kernels_cuda_init() report the misuse and make
 * kernels_cuda_synchronize() return an error instead of crashing, init fails
 * cleanly (RT_ECUDA) when there is no device, the cuDNN and storage-format
 * entry points report instead of crashing before init, and the CUDA
 * convolution's workspace follows its chunking rule. */
#include "gpu_test_util.h"

#include "common/common.h"

static void test_device_count_answers(void **state)
{
    (void)state;
    const char *why = NULL;
    int count = kernels_cuda_device_count(&why);
    assert_true(count >= 0);
    if (count == 0) {
        assert_non_null(why);
        printf("no CUDA device here: %s\n", why);
    }
}

static void test_ops_before_init_report(void **state)
{
    (void)state;
    assert_null(kernels_cuda_stream());
    relu_forward_cuda(NULL, NULL, 10);
    assert_int_equal(kernels_cuda_synchronize(), RT_EINVAL);
    assert_null(kernels_cuda_buffer_alloc(16));
    kernels_cuda_buffer_free(NULL);
    kernels_cuda_free();
    kernels_cuda_free();
}

/* The cuDNN and format entry points before init: reported, no crash. */
static void test_cudnn_before_init_reports(void **state)
{
    (void)state;
    char why[256] = "";
    assert_int_not_equal(kernels_cudnn_init(why, sizeof why), 0);
    assert_true(why[0] != '\0');
    printf("kernels_cudnn_init before kernels_cuda_init: %s\n", why);
    assert_int_equal(kernels_cudnn_version(), 0);
    conv2d_shape_t s;
    assert_int_equal(conv2d_shape_init(&s, 2, 3, 8, 8, 4, 3, 3, 1, 1), 0);
    kern_format_t f = {KERN_F16, KERN_NHWC};
    assert_int_equal(conv2d_workspace_floats_cudnn(&s, f), 0);
    relu_forward_fmt_cuda(NULL, NULL, 10, f);
    assert_int_not_equal(kernels_cuda_synchronize(), 0);
    assert_int_equal(kern_dtype_size(KERN_F16), 2);
    assert_int_equal(kern_dtype_size(KERN_BF16), 2);
    assert_int_equal(kern_dtype_size(KERN_F32), 4);
    kernels_cuda_free();
}

static void test_init_matches_devices(void **state)
{
    (void)state;
    int count = kernels_cuda_device_count(NULL);
    int rc = kernels_cuda_init(0);
    if (count == 0) {
        assert_int_equal(rc, RT_ECUDA);
        assert_null(kernels_cuda_stream());
    } else {
        assert_int_equal(rc, 0);
        assert_non_null(kernels_cuda_stream());
        assert_int_equal(kernels_cuda_init(0), 0);
    }
    kernels_cuda_free();
}

static void test_conv_workspace_chunks(void **state)
{
    (void)state;
    conv2d_shape_t s;
    /* 25 Mi floats per image: two fit under the 64 Mi cap, so 5 images go
     * as 2 + 2 + 1 and the workspace holds two. */
    assert_int_equal(conv2d_shape_init(&s, 5, 1, 1024, 1024, 16, 3, 3, 1, 1),
                     0);
    size_t per_image = (size_t)(9 + 16) * 1024 * 1024;
    assert_int_equal(conv2d_workspace_floats_cuda(&s), 2 * per_image);
    /* Small layers take the whole batch in one chunk. */
    assert_int_equal(conv2d_shape_init(&s, 8, 64, 14, 14, 64, 3, 3, 1, 1), 0);
    assert_int_equal(conv2d_workspace_floats_cuda(&s),
                     (size_t)(576 + 64) * 196 * 8);
    /* ResNet-50's stem at batch 64: 211 * 12544 floats per image, 25 fit,
     * evened out to 22 + 22 + 20. */
    assert_int_equal(conv2d_shape_init(&s, 64, 3, 224, 224, 64, 7, 7, 2, 3),
                     0);
    assert_int_equal(conv2d_workspace_floats_cuda(&s),
                     (size_t)(147 + 64) * 112 * 112 * 22);
    /* One image bigger than the cap still gets what it needs. */
    assert_int_equal(conv2d_shape_init(&s, 3, 64, 1024, 1024, 64, 3, 3, 1, 1),
                     0);
    assert_int_equal(conv2d_workspace_floats_cuda(&s),
                     (size_t)(576 + 64) * 1024 * 1024);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_count_answers),
        cmocka_unit_test(test_ops_before_init_report),
        cmocka_unit_test(test_cudnn_before_init_reports),
        cmocka_unit_test(test_init_matches_devices),
        cmocka_unit_test(test_conv_workspace_chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
