/* Unit tests for softmax cross-entropy and accuracy: probabilities and mean
 * loss against the direct formula in double (log-sum-exp), logits of +-1000
 * (no overflow, exact loss), backward against double-precision central
 * differences of the loss, accuracy with ties (first maximum wins).
 * Tolerances: probs 1e-6 + 1e-5 relative, loss 1e-5 relative; gradients
 * within 1e-4 of scale. */
#include "test_kernels_util.h"

#include "kernels.h"

typedef struct {
    int B, K;
    double *logits;
    const int32_t *labels;
    double *probs;
} ce_ctx_t;

/* Mean cross-entropy, log-sum-exp in double; fills probs. */
static double ce_loss(void *ctx)
{
    ce_ctx_t *c = ctx;
    double total = 0.0;
    for (int b = 0; b < c->B; b++) {
        const double *x = c->logits + (size_t)b * c->K;
        double max = x[0];
        for (int k = 1; k < c->K; k++)
            max = x[k] > max ? x[k] : max;
        double sum = 0.0;
        for (int k = 0; k < c->K; k++)
            sum += exp(x[k] - max);
        for (int k = 0; k < c->K; k++)
            c->probs[(size_t)b * c->K + k] = exp(x[k] - max) / sum;
        total += -(x[c->labels[b]] - max - log(sum));
    }
    return total / c->B;
}

static void ce_case(int B, int K, double scale, uint64_t seed)
{
    tk_rng_t rng = {seed};
    size_t count = (size_t)B * K;
    int32_t *labels = calloc(B, sizeof(int32_t));
    for (int b = 0; b < B; b++)
        labels[b] = (int32_t)(tk_next(&rng) % (uint64_t)K);
    ce_ctx_t c = {.B = B, .K = K, .labels = labels};
    c.logits = tk_dalloc(count);
    c.probs = tk_dalloc(count);
    float *logits = tk_falloc(count), *probs = tk_falloc(count);
    float *dlogits = tk_falloc(count);
    tk_fill(&rng, logits, c.logits, count, -scale, scale);
    tk_fill_nan(probs, count);
    float loss = softmax_cross_entropy_forward_cpu(probs, logits, labels, B, K);
    double want = ce_loss(&c);
    if (!(fabs(loss - want) <= 1e-5 * fabs(want) + 1e-6))
        fail_msg("CE loss (B %d, K %d, scale %g): got %.9g, want %.9g", B, K,
                 scale, (double)loss, want);
    tk_check_close("CE probs", probs, c.probs, count, 1e-6, 1e-5);
    tk_fill_nan(dlogits, count);
    softmax_cross_entropy_backward_cpu(dlogits, probs, labels, B, K);
    double *num = tk_dalloc(count);
    tk_numeric_grad(num, c.logits, count, ce_loss, &c, 0);
    tk_check_grad("CE dlogits", dlogits, num, count, 1e-4);
    free(num), free(logits), free(probs), free(dlogits), free(labels);
    free(c.logits), free(c.probs);
}

static void test_softmax_ce(void **state)
{
    (void)state;
    ce_case(1, 2, 3.0, 1);
    ce_case(4, 10, 3.0, 2);
    ce_case(7, 13, 10.0, 3);
    ce_case(3, 1000, 5.0, 4);
}

/* Logits where exp() overflows float (e^1000) or underflows to 0 for every
 * class (e^-1000): the loss stays finite and exact. */
static void test_softmax_ce_large_logits(void **state)
{
    (void)state;
    const float logits[3 * 3] = {1000.0f, 999.0f, 0.0f,
                                 -1000.0f, -1001.0f, -1000.0f,
                                 88.0f, 89.0f, 90.0f};
    const int32_t labels[3] = {1, 2, 0};
    float probs[9], dlogits[9];
    /* Row losses: log(1 + e + e^-999), log(2 + e^-1) + 0, log(1 + e + e^2) */
    double e = exp(1.0);
    double want = (log(1.0 + e + exp(-999.0)) +
                   log(2.0 + exp(-1.0)) +
                   log(1.0 + e + e * e)) / 3.0;
    float loss = softmax_cross_entropy_forward_cpu(probs, logits, labels, 3, 3);
    assert_true(isfinite(loss));
    if (!(fabs(loss - want) <= 1e-5 * want))
        fail_msg("CE large logits: got %.9g, want %.9g", (double)loss, want);
    for (int i = 0; i < 9; i++)
        assert_true(isfinite(probs[i]) && probs[i] >= 0.0f);
    softmax_cross_entropy_backward_cpu(dlogits, probs, labels, 3, 3);
    for (int b = 0; b < 3; b++) {
        float sum = 0.0f;
        for (int k = 0; k < 3; k++)
            sum += dlogits[b * 3 + k];
        /* Each row of (probs - onehot) / B sums to 0. */
        assert_true(fabsf(sum) < 1e-6f);
    }
}

static void test_accuracy(void **state)
{
    (void)state;
    const float logits[4 * 3] = {0.1f, 0.7f, 0.2f,   /* argmax 1 */
                                 5.0f, 5.0f, 1.0f,   /* tie: first, 0 */
                                 -3.0f, -2.0f, -1.0f,/* argmax 2 */
                                 2.0f, 2.0f, 2.0f};  /* all tie: 0 */
    const int32_t right[4] = {1, 0, 2, 0};
    const int32_t wrong[4] = {0, 1, 1, 2};
    const int32_t half[4] = {1, 1, 2, 1};
    assert_int_equal(accuracy_count_cpu(logits, right, 4, 3), 4);
    assert_int_equal(accuracy_count_cpu(logits, wrong, 4, 3), 0);
    assert_int_equal(accuracy_count_cpu(logits, half, 4, 3), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_softmax_ce),
        cmocka_unit_test(test_softmax_ce_large_logits),
        cmocka_unit_test(test_accuracy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
