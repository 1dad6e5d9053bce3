/* Unit tests for linear_*_cpu: forward against a naive double loop, backward
 * (din, dweight, dbias) against double-precision central differences of it;
 * batch 1 and > 1, odd sizes, no bias, din NULL, two threads.
 * Tolerances: forward |diff| <= 1e-5 + 1e-4 |want|; gradients within 1e-4 of
 * the gradient's scale (see tk_check_grad). */
#include "test_kernels_util.h"

#include "kernels.h"

typedef struct {
    int B, IC, OC;
    double *in, *w, *bias, *r, *out;
} linear_ctx_t;

static double linear_loss(void *p)
{
    linear_ctx_t *c = p;
    for (int b = 0; b < c->B; b++)
        for (int o = 0; o < c->OC; o++) {
            double sum = c->bias ? c->bias[o] : 0.0;
            for (int i = 0; i < c->IC; i++)
                sum += c->in[(size_t)b * c->IC + i] *
                       c->w[(size_t)o * c->IC + i];
            c->out[(size_t)b * c->OC + o] = sum;
        }
    return tk_dot(c->r, c->out, (size_t)c->B * c->OC);
}

static void run_case(int B, int IC, int OC, int with_bias, uint64_t seed,
                     size_t max_points)
{
    tk_rng_t rng = {seed};
    size_t in_count = (size_t)B * IC, w_count = (size_t)OC * IC;
    size_t out_count = (size_t)B * OC;
    linear_ctx_t c = {.B = B, .IC = IC, .OC = OC};
    c.in = tk_dalloc(in_count);
    c.w = tk_dalloc(w_count);
    c.bias = with_bias ? tk_dalloc(OC) : NULL;
    c.r = tk_dalloc(out_count);
    c.out = tk_dalloc(out_count);
    float *in = tk_falloc(in_count), *w = tk_falloc(w_count);
    float *bias = tk_falloc(OC), *out = tk_falloc(out_count);
    float *dout = tk_falloc(out_count), *din = tk_falloc(in_count);
    float *dw = tk_falloc(w_count), *db = tk_falloc(OC);
    float *dw2 = tk_falloc(w_count);
    tk_fill(&rng, in, c.in, in_count, -1, 1);
    tk_fill(&rng, w, c.w, w_count, -1, 1);
    tk_fill(&rng, bias, c.bias, with_bias ? (size_t)OC : 0, -1, 1);
    tk_fill(&rng, dout, c.r, out_count, -1, 1);

    tk_fill_nan(out, out_count);
    linear_forward_cpu(out, in, w, with_bias ? bias : NULL, B, IC, OC);
    linear_loss(&c);
    tk_check_close("linear out", out, c.out, out_count, 1e-5, 1e-4);

    tk_fill_nan(din, in_count);
    tk_fill_nan(dw, w_count);
    tk_fill_nan(db, OC);
    linear_backward_cpu(din, dw, with_bias ? db : NULL, dout, in, w, B, IC,
                        OC);
    tk_fill_nan(dw2, w_count);
    linear_backward_cpu(NULL, dw2, NULL, dout, in, w, B, IC, OC);
    tk_check_equal_f("dweight (din NULL)", dw2, dw, w_count);

    double *num = tk_dalloc(in_count > w_count ? in_count : w_count);
    tk_numeric_grad(num, c.in, in_count, linear_loss, &c, max_points);
    tk_check_grad("linear din", din, num, in_count, 1e-4);
    tk_numeric_grad(num, c.w, w_count, linear_loss, &c, max_points);
    tk_check_grad("linear dweight", dw, num, w_count, 1e-4);
    if (with_bias) {
        tk_numeric_grad(num, c.bias, OC, linear_loss, &c, 0);
        tk_check_grad("linear dbias", db, num, OC, 1e-4);
    }
    free(num);
    free(in), free(w), free(bias), free(out), free(dout), free(din);
    free(dw), free(db), free(dw2);
    free(c.in), free(c.w), free(c.bias), free(c.r), free(c.out);
}

static void test_linear_small(void **state)
{
    (void)state;
    kernels_set_num_threads(1);
    run_case(1, 5, 3, 1, 1, 0);
    run_case(4, 7, 5, 1, 2, 0);
    run_case(3, 9, 2, 0, 3, 0);
    run_case(17, 31, 10, 1, 4, 0);
}

static void test_linear_threads(void **state)
{
    (void)state;
    kernels_set_num_threads(2);
    run_case(64, 300, 130, 1, 5, 60);
    kernels_set_num_threads(1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_small),
        cmocka_unit_test(test_linear_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
