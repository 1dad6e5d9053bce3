/* bench/predict_model.c: alpha-beta costs, the overlap schedule and the
 * bucket plan against hand-computed numbers. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "bench/predict_model.h"

#define assert_close(a, b)                                                                 \
    do {                                                                                   \
        double a_ = (a), b_ = (b);                                                         \
        double tol_ = 1e-9 * (fabs(b_) > 1 ? fabs(b_) : 1);                                \
        if (fabs(a_ - b_) > tol_)                                                          \
            fail_msg("%s:%d: %s = %.12g, expected %.12g", __FILE__, __LINE__, #a, a_, b_); \
    } while (0)

static void test_ring(void **state)
{
    (void)state;
    predict_link_t l = {1e-6, 1e-9}; /* 1 us, 1 GB/s */
    /* p = 4, 8 MB: 6 alpha + 1.5 * 8e6 * 1e-9 = 6e-6 + 0.012 */
    assert_close(predict_ring_seconds(8e6, 4, l), 0.012006);
    /* p = 2: 2 alpha + n beta */
    assert_close(predict_ring_seconds(1e6, 2, l), 0.001002);
    assert_close(predict_ring_seconds(1e6, 1, l), 0.0);
    assert_close(predict_ring_seconds(0, 8, l), 0.0);
}

static void test_hier(void **state)
{
    (void)state;
    predict_link_t intra = {2e-6, 1e-10}; /* 10 GB/s */
    predict_link_t inter = {5e-6, 3.2e-10}; /* 3.125 GB/s (25 Gbit/s) */
    /* 2 nodes x 8, 100 MB:
     * intra half = 7 * 2e-6 + 7/8 * 1e8 * 1e-10 = 1.4e-5 + 0.00875 = 0.008764
     * inter      = 2 * 5e-6 + 1 * 1e8 * 3.2e-10   = 1e-5 + 0.032    = 0.03201
     * total      = 2 * 0.008764 + 0.03201          = 0.049538 */
    assert_close(predict_hier_seconds(1e8, 2, 8, intra, inter), 0.049538);
    /* one node: the intra ring; one rank per node: the inter ring */
    assert_close(predict_hier_seconds(1e8, 1, 8, intra, inter),
                 predict_ring_seconds(1e8, 8, intra));
    assert_close(predict_hier_seconds(1e8, 4, 1, intra, inter),
                 predict_ring_seconds(1e8, 4, inter));
    assert_close(predict_hier_seconds(1e8, 1, 1, intra, inter), 0.0);
    /* at 2 x 8 the flat ring over the slow link moves ~2x the bytes */
    double flat = predict_ring_seconds(1e8, 16, inter);
    assert_close(flat, 30 * 5e-6 + 2.0 * 15 / 16 * 1e8 * 3.2e-10); /* 0.06015 */
    assert_true(flat > predict_hier_seconds(1e8, 2, 8, intra, inter));
}

static void test_schedule(void **state)
{
    (void)state;
    double ready[3] = {1.0, 2.0, 3.0};
    double comm[3] = {0.5, 2.0, 0.5};
    /* overlap: [1,1.5] [2,4] [4,4.5]; backward ends at 3 -> 4.5 */
    assert_close(predict_schedule(ready, comm, 3, 3.0, 1), 4.5);
    /* no overlap: everything after 3 -> 3 + 3 = 6 */
    assert_close(predict_schedule(ready, comm, 3, 3.0, 0), 6.0);
    /* communication hidden entirely: backward dominates */
    double small[3] = {0.1, 0.1, 0.1};
    assert_close(predict_schedule(ready, small, 3, 5.0, 1), 5.0);
    assert_close(predict_schedule(ready, small, 0, 5.0, 1), 5.0);
}

static void test_buckets(void **state)
{
    (void)state;
    model_t *m = calloc(1, sizeof *m);
    assert_non_null(m);
    assert_int_equal(model_create(m, "resnet20", 0, 1), 0);
    static size_t floats[PREDICT_MAX_BUCKETS];
    static int node[PREDICT_MAX_BUCKETS];
    /* 0.25 MiB buckets over resnet20's ~0.27M parameters */
    int count = predict_buckets_plan(m, 0.25, floats, node);
    size_t sum = 0;
    for (int k = 0; k < count; k++) {
        sum += floats[k];
        if (k > 0 && node[k] >= node[k - 1])
            fail_msg("bucket %d closes at node %d, not before bucket %d's node %d", k, node[k],
                     k - 1, node[k - 1]);
        if (k + 1 < count && floats[k] < 65536)
            fail_msg("bucket %d has %zu floats, expected >= 65536 (0.25 MiB)", k, floats[k]);
    }
    assert_int_equal(sum, m->ready_prefix[0]);
    assert_true(count >= 4);
    /* a huge cap: the first bucket closes at the first layer boundary past
     * 1 MiB (262144 floats), the rest of resnet20's ~272k floats is one more */
    assert_int_equal(predict_buckets_plan(m, 4096, floats, node), 2);
    assert_true(floats[0] >= 262144);
    assert_true(floats[0] < m->ready_prefix[0]);
    assert_int_equal(node[1], 0);
    /* FLOPs: the first conv of resnet20 is 3x3, 3->16 on 32x32 at batch 1 */
    assert_int_equal(m->nodes[0].kind, NODE_CONV);
    assert_close(predict_node_flops(m, 0), 2.0 * 16 * 3 * 3 * 3 * 32 * 32);
    model_free(m);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring),
        cmocka_unit_test(test_hier),
        cmocka_unit_test(test_schedule),
        cmocka_unit_test(test_buckets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
