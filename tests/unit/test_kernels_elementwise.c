/* Unit tests for relu_*_cpu, add_forward_cpu and add_inplace_cpu: values
 * against the definition (odd counts, so vector tails run; large counts with
 * two threads), in-place use, and ReLU's backward against double-precision
 * central differences (inputs kept 1e-3 away from the kink at 0).
 * Tolerances: forward exact; gradients within 1e-4 of scale. */
#include "test_kernels_util.h"

#include "kernels.h"

typedef struct {
    size_t count;
    double *in, *r, *out;
} relu_ctx_t;

static double relu_loss(void *ctx)
{
    relu_ctx_t *c = ctx;
    for (size_t i = 0; i < c->count; i++)
        c->out[i] = c->in[i] > 0 ? c->in[i] : 0.0;
    return tk_dot(c->r, c->out, c->count);
}

static void relu_case(size_t count, uint64_t seed, size_t max_points)
{
    tk_rng_t rng = {seed};
    relu_ctx_t c = {.count = count};
    c.in = tk_dalloc(count);
    c.r = tk_dalloc(count);
    c.out = tk_dalloc(count);
    float *in = tk_falloc(count), *out = tk_falloc(count);
    float *dout = tk_falloc(count), *din = tk_falloc(count);
    float *copy = tk_falloc(count);
    tk_fill_away_from_zero(&rng, in, c.in, count, 1e-3);
    tk_fill(&rng, dout, c.r, count, -1, 1);
    tk_fill_nan(out, count);
    relu_forward_cpu(out, in, count);
    relu_loss(&c);
    tk_check_close("relu out", out, c.out, count, 0, 0);
    tk_fill_nan(din, count);
    relu_backward_cpu(din, dout, out, count);
    double *num = tk_dalloc(count);
    tk_numeric_grad(num, c.in, count, relu_loss, &c, max_points);
    tk_check_grad("relu din", din, num, count, 1e-4);

    /* In place: out == in for forward, din == dout for backward. */
    memcpy(copy, in, count * sizeof(float));
    relu_forward_cpu(copy, copy, count);
    tk_check_equal_f("relu in place", copy, out, count);
    memcpy(copy, dout, count * sizeof(float));
    relu_backward_cpu(copy, copy, out, count);
    tk_check_equal_f("relu backward in place", copy, din, count);
    free(num), free(in), free(out), free(dout), free(din), free(copy);
    free(c.in), free(c.r), free(c.out);
}

static void test_relu(void **state)
{
    (void)state;
    kernels_set_num_threads(1);
    relu_case(1, 1, 0);
    relu_case(37, 2, 0);
    relu_case(1001, 3, 0);
    kernels_set_num_threads(2);
    relu_case(100003, 4, 500);
    kernels_set_num_threads(1);
}

static void add_case(size_t count, uint64_t seed)
{
    tk_rng_t rng = {seed};
    float *a = tk_falloc(count), *b = tk_falloc(count);
    float *out = tk_falloc(count), *acc = tk_falloc(count);
    double *want = tk_dalloc(count);
    tk_fill(&rng, a, NULL, count, -1, 1);
    tk_fill(&rng, b, NULL, count, -1, 1);
    for (size_t i = 0; i < count; i++)
        want[i] = (double)(a[i] + b[i]); /* one float rounding, as the op */
    tk_fill_nan(out, count);
    add_forward_cpu(out, a, b, count);
    tk_check_close("add out", out, want, count, 0, 0);
    memcpy(acc, a, count * sizeof(float));
    add_inplace_cpu(acc, b, count);
    tk_check_close("add_inplace acc", acc, want, count, 0, 0);
    /* out aliasing a or b */
    memcpy(acc, a, count * sizeof(float));
    add_forward_cpu(acc, acc, b, count);
    tk_check_close("add out == a", acc, want, count, 0, 0);
    memcpy(acc, b, count * sizeof(float));
    add_forward_cpu(acc, a, acc, count);
    tk_check_close("add out == b", acc, want, count, 0, 0);
    free(a), free(b), free(out), free(acc), free(want);
}

static void test_add(void **state)
{
    (void)state;
    kernels_set_num_threads(1);
    add_case(1, 5);
    add_case(77, 6);
    kernels_set_num_threads(2);
    add_case(200001, 7);
    kernels_set_num_threads(1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relu),
        cmocka_unit_test(test_add),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
