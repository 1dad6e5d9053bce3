/* GPU test: softmax cross-entropy (probs, mean loss, backward) and the
 * accuracy count against the CPU reference, through both the waiting and the
 * _async entry points. Logits span [-40, 40] so an unshifted exp() would
 * overflow. Accuracy rows plant ties (the first maximum wins), a NaN in
 * column 0 (column 0 wins, as the CPU's comparisons make it) and NaNs
 * elsewhere (never win); the count must be equal, and non-trivial.
 * Tolerances (|gpu - cpu| <= tol + eps * |cpu|): probs 1e-7 + 1e-5 |cpu|,
 * loss 1e-6 + 1e-5 |cpu|, dlogits 2e-5 / B + 1e-5 |cpu| (the label's entry
 * is (p - 1) / B, where p's own tolerance survives the cancellation). */
#include "gpu_test_util.h"

typedef struct {
    int B, K;
} loss_case_t;

static const loss_case_t cases[] = {{1, 1}, {1, 10}, {7, 3}, {64, 1000},
                                    {256, 10}, {3, 4097}};

static void run_case(const loss_case_t *c, uint64_t seed)
{
    gt_rng_t r = {seed};
    size_t n = (size_t)c->B * c->K;
    float *logits = gt_random(&r, n, -40, 40);
    int32_t *labels = gt_labels(&r, c->B, c->K);
    float *probs = gt_host(n), *dlogits = gt_host(n);
    float loss = softmax_cross_entropy_forward_cpu(probs, logits, labels, c->B,
                                                   c->K);
    softmax_cross_entropy_backward_cpu(dlogits, probs, labels, c->B, c->K);

    float *d_logits = gt_devf(logits, n), *d_probs = gt_devf(NULL, n);
    float *d_dlogits = gt_devf(NULL, n), *d_loss = gt_devf(NULL, 1);
    int32_t *d_labels = gt_dev(labels, (size_t)c->B * sizeof(int32_t));
    float loss_gpu = softmax_cross_entropy_forward_cuda(d_probs, d_logits,
                                                        d_labels, c->B, c->K);
    gt_check_close("loss", &loss_gpu, &loss, 1, 1e-6, 1e-5);
    gt_check_dev("probs", d_probs, probs, n, 1e-7, 1e-5);
    softmax_cross_entropy_backward_cuda(d_dlogits, d_probs, d_labels, c->B,
                                        c->K);
    gt_check_dev("dlogits", d_dlogits, dlogits, n, 2e-5 / c->B, 1e-5);
    softmax_cross_entropy_forward_async_cuda(d_loss, d_probs, d_logits,
                                             d_labels, c->B, c->K);
    gt_check_dev("loss (async)", d_loss, &loss, 1, 1e-6, 1e-5);

    kernels_cuda_buffer_free(d_logits);
    kernels_cuda_buffer_free(d_probs);
    kernels_cuda_buffer_free(d_dlogits);
    kernels_cuda_buffer_free(d_loss);
    kernels_cuda_buffer_free(d_labels);
    free(logits);
    free(labels);
    free(probs);
    free(dlogits);
}

static void test_softmax_ce_vs_cpu(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i], 6000 + i);
}

static void test_accuracy_vs_cpu(void **state)
{
    (void)state;
    gt_rng_t r = {6100};
    int B = 300, K = 37;
    size_t n = (size_t)B * K;
    /* Coarse values make ties common. */
    float *logits = gt_host(n);
    for (size_t i = 0; i < n; i++)
        logits[i] = (float)(gt_next(&r) % 4);
    int32_t *labels = gt_labels(&r, B, K);
    for (int b = 0; b < B; b++) {
        float *x = logits + (size_t)b * K;
        if (b % 5 == 0)
            labels[b] = 0; /* the first column often ties for the maximum */
        if (b % 7 == 1)
            x[0] = NAN;
        if (b % 11 == 2)
            x[K / 2] = NAN;
        if (b % 3 == 0) /* put the label at a maximum sometimes */
            x[labels[b]] = 3.0f;
    }
    int want = accuracy_count_cpu(logits, labels, B, K);
    assert_true(want > 0 && want < B);
    float *d_logits = gt_devf(logits, n);
    int32_t *d_labels = gt_dev(labels, (size_t)B * sizeof(int32_t));
    int32_t *d_count = gt_dev(NULL, sizeof(int32_t));
    assert_int_equal(accuracy_count_cuda(d_logits, d_labels, B, K), want);
    accuracy_count_async_cuda(d_count, d_logits, d_labels, B, K);
    int32_t got = -1;
    assert_int_equal(kernels_cuda_synchronize(), 0);
    assert_int_equal(kernels_cuda_copy_to_host(&got, d_count, sizeof got), 0);
    assert_int_equal(got, want);
    kernels_cuda_buffer_free(d_logits);
    kernels_cuda_buffer_free(d_labels);
    kernels_cuda_buffer_free(d_count);
    free(logits);
    free(labels);
}

int main(void)
{
    gt_require_device("test_kernels_cuda_loss");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_softmax_ce_vs_cpu),
        cmocka_unit_test(test_accuracy_vs_cpu),
    };
    return cmocka_run_group_tests(tests, gt_setup, gt_teardown);
}
