/* Unit tests for worker/model: parameter counts of the zoo against PyTorch,
 * the reverse arena layout, and whole-graph gradients (branches, residual
 * adds, in-place relu, shared gradient buffers) against finite differences. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/common.h"
#include "kernels/kernels.h"
#include "worker/model.h"
#include "worker/rng.h"

static model_t model;

static void expect_params(const char *name, size_t expected)
{
    int rc = model_create(&model, name, 0, 1);
    assert_int_equal(rc, 0);
    if (model.param_count != expected)
        fail_msg("%s: %zu parameters, PyTorch has %zu", name, model.param_count, expected);
    model_free(&model);
}

/* Counts printed by torchvision (resnet50/101) and by bench/peers/
 * train_torch.py's definitions of the others. */
static void test_param_counts(void **state)
{
    (void)state;
    expect_params("mlp", 1863690);
    expect_params("lenet", 1663370);
    expect_params("resnet20", 272474);
    expect_params("resnet50", 25557032);
    expect_params("resnet101", 44549160);
    expect_params("trivial", 4259780);
}

static void test_unknown_model(void **state)
{
    (void)state;
    assert_int_equal(model_create(&model, "vgg99", 0, 1), RT_ENOENT);
    int c, h, w, k;
    assert_int_equal(model_default_shape("nope", &c, &h, &w, &k), RT_ENOENT);
}

/* The last node's parameters come first and readiness grows as backward
 * walks from the last node to the first. */
static void test_reverse_layout(void **state)
{
    (void)state;
    assert_int_equal(model_create(&model, "lenet", 0, 2), 0);
    const node_t *first = &model.nodes[0];
    const node_t *last = &model.nodes[model.node_count - 1];
    assert_int_equal(last->w_off, 0);
    assert_true(first->w_off > last->w_off);
    for (int i = model.node_count - 1; i > 0; i--)
        assert_true(model.ready_prefix[i - 1] >= model.ready_prefix[i]);
    assert_int_equal(model.ready_prefix[0], model.arena_floats);
    for (int i = 0; i < model.node_count; i++) {
        assert_int_equal(model.nodes[i].w_off % 16, 0);
        assert_int_equal(model.nodes[i].b_off % 16, 0);
    }
    model_free(&model);
}

/* A small graph with every node kind, a tensor read by two nodes, and
 * in-place relu/add. */
static void build_small(model_t *m, int batch)
{
    model_begin(m, "small", 3, 8, 8, 4);
    int x = model_conv(m, m->input, 4, 3, 1, 1, 1, INIT_TORCH_DEFAULT);
    x = model_bn(m, x);
    x = model_relu(m, x);
    int a = model_conv(m, x, 4, 3, 1, 1, 0, INIT_KAIMING_FAN_OUT);
    a = model_bn(m, a);
    int s = model_conv(m, x, 4, 1, 1, 0, 0, INIT_KAIMING_FAN_OUT);
    int y = model_add(m, a, s);
    y = model_add(m, y, x);
    y = model_relu(m, y);
    y = model_maxpool(m, y, 3, 2, 1);
    y = model_conv(m, y, 6, 3, 2, 1, 1, INIT_TORCH_DEFAULT);
    y = model_relu(m, y);
    int p = model_avgpool(m, y, 2, 1, 0);
    p = model_gap(m, p);
    p = model_linear(m, p, 5, 1);
    p = model_relu(m, p);
    model_linear(m, p, 4, 1);
    assert_int_equal(model_build(m, batch), 0);
}

static void test_whole_graph_gradient(void **state)
{
    (void)state;
    const int B = 3;
    build_small(&model, B);
    model_init_params(&model, 7);
    /* Non-trivial batch-norm affine parameters. */
    rng_t r;
    rng_init(&r, 99, 0);
    for (size_t i = 0; i < model.arena_floats; i++)
        model.params[i] += 0.05f * rng_normal(&r);

    size_t in_count = (size_t)B * 3 * 8 * 8;
    float *input = malloc(in_count * sizeof(float));
    int32_t labels[3] = {0, 3, 1};
    for (size_t i = 0; i < in_count; i++)
        input[i] = rng_normal(&r);

    model_forward(&model, input, labels, B);
    model_backward(&model, input, labels, B, NULL, NULL);
    float *grad = malloc(model.arena_floats * sizeof(float));
    memcpy(grad, model.grads, model.arena_floats * sizeof(float));

    /* Directional derivatives along random directions, and along each
     * node's own parameters (so a wrong gradient in one layer shows). */
    float *dir = calloc(model.arena_floats, sizeof(float));
    float *base = malloc(model.arena_floats * sizeof(float));
    memcpy(base, model.params, model.arena_floats * sizeof(float));
    /* Small enough that few units cross a relu kink, large enough for float. */
    const double eps = 3e-4;
    int checks = 0;
    for (int trial = -1; trial < model.node_count; trial++) {
        const node_t *n = trial >= 0 ? &model.nodes[trial] : NULL;
        if (n && n->w_count + n->b_count == 0)
            continue;
        memset(dir, 0, model.arena_floats * sizeof(float));
        for (size_t i = 0; i < model.arena_floats; i++) {
            int in_node = !n || (i >= n->w_off && i < n->w_off + n->w_count) ||
                          (i >= n->b_off && i < n->b_off + n->b_count);
            if (in_node)
                dir[i] = rng_normal(&r);
        }
        double analytic = 0;
        for (size_t i = 0; i < model.arena_floats; i++)
            analytic += (double)grad[i] * dir[i];
        for (size_t i = 0; i < model.arena_floats; i++)
            model.params[i] = base[i] + (float)eps * dir[i];
        double up = model_forward(&model, input, labels, B);
        for (size_t i = 0; i < model.arena_floats; i++)
            model.params[i] = base[i] - (float)eps * dir[i];
        double down = model_forward(&model, input, labels, B);
        double numeric = (up - down) / (2 * eps);
        double err = fabs(numeric - analytic);
        if (err > 2e-3 + 2e-2 * fabs(analytic))
            fail_msg("node %d: directional derivative %.6g, backward gives %.6g", trial,
                     numeric, analytic);
        checks++;
    }
    assert_true(checks >= 8);
    memcpy(model.params, base, model.arena_floats * sizeof(float));
    free(dir);
    free(base);
    free(grad);
    free(input);
    model_free(&model);
}

/* The gradient pool is much smaller than one buffer per tensor. */
static void test_gradient_pool_shared(void **state)
{
    (void)state;
    assert_int_equal(model_create(&model, "resnet20", 0, 8), 0);
    size_t all = 0;
    for (int t = 1; t < model.tensor_count; t++)
        all += (size_t)model.tensors[t].c * model.tensors[t].h * model.tensors[t].w * 8;
    if (model.gradpool_floats * 4 > all)
        fail_msg("gradient pool %zu floats, one-per-tensor would be %zu", model.gradpool_floats, all);
    model_free(&model);
}

/* model_plan_bytes says what model_create then allocates, for every model
 * of the zoo; planning is repeatable at another batch (the estimate plans
 * one model at many batches); memory grows with the batch. */
static void test_plan_bytes_match_build(void **state)
{
    (void)state;
    for (const char *const *name = model_names(); *name; name++) {
        if (strcmp(*name, "resnet101") == 0 || strcmp(*name, "resnet50") == 0)
            continue; /* built at batch 2 below: ~0.3 GiB each is enough */
        size_t planned = 0, params = 0;
        assert_int_equal(model_plan_bytes(*name, 0, 3, NULL, &planned, &params), 0);
        assert_int_equal(model_create(&model, *name, 0, 3), 0);
        if (model_memory_bytes(&model) != planned || model.arena_floats * sizeof(float) != params)
            fail_msg("%s: planned %zu (params %zu), built %zu (params %zu)", *name, planned,
                     params, model_memory_bytes(&model), model.arena_floats * sizeof(float));
        model_free(&model);
    }
    size_t at2 = 0, at4 = 0;
    assert_int_equal(model_plan_bytes("resnet50", 0, 2, NULL, &at2, NULL), 0);
    assert_int_equal(model_create(&model, "resnet50", 0, 2), 0);
    assert_int_equal(model_memory_bytes(&model), at2);
    size_t built = model_memory_bytes(&model);
    assert_int_equal(model_plan(&model, 4), 0);
    assert_int_equal(model_plan_bytes("resnet50", 0, 4, NULL, &at4, NULL), 0);
    assert_int_equal(model_memory_bytes(&model), at4);
    assert_int_equal(model_plan(&model, 2), 0);
    assert_int_equal(model_memory_bytes(&model), built);
    assert_true(at4 > at2);
    model_free(&model);
    size_t none = 0;
    assert_int_equal(model_plan_bytes("vgg16", 0, 2, NULL, &none, NULL), RT_ENOENT);
}

static void test_hash_changes_with_shape(void **state)
{
    (void)state;
    assert_int_equal(model_create(&model, "lenet", 0, 2), 0);
    uint64_t a = model_shape_hash(&model);
    model_free(&model);
    assert_int_equal(model_create(&model, "lenet", 0, 4), 0);
    uint64_t b = model_shape_hash(&model);
    model_free(&model);
    assert_int_equal(model_create(&model, "mlp", 0, 2), 0);
    uint64_t c = model_shape_hash(&model);
    model_free(&model);
    assert_true(a == b); /* batch is not part of the architecture */
    assert_true(a != c);
}

int main(void)
{
    kernels_set_num_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_param_counts),
        cmocka_unit_test(test_unknown_model),
        cmocka_unit_test(test_reverse_layout),
        cmocka_unit_test(test_whole_graph_gradient),
        cmocka_unit_test(test_gradient_pool_shared),
        cmocka_unit_test(test_hash_changes_with_shape),
        cmocka_unit_test(test_plan_bytes_match_build),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
