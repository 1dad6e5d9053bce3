/* Unit tests for worker/data: IDX reading (plain and gzip) and every way an
 * IDX file can be wrong, the per-epoch shuffle and per-rank slices, and the
 * synthetic data's independence from the rank count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "common/common.h"
#include "worker/data.h"

static char dir[256];

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Writes an IDX image file of n 2x3 images (pixel = i + j) and a label
 * file of n labels (i % 10), each cut to `keep` bytes if keep > 0. */
static void write_files(const char *images, const char *labels, uint32_t img_magic,
                        uint32_t lab_magic, uint32_t n_images, uint32_t n_labels,
                        long keep_images, int gz)
{
    unsigned char buf[4096];
    put32(buf, img_magic);
    put32(buf + 4, n_images);
    put32(buf + 8, 2);
    put32(buf + 12, 3);
    size_t len = 16;
    for (uint32_t i = 0; i < n_images; i++)
        for (int j = 0; j < 6; j++)
            buf[len++] = (unsigned char)(i + (uint32_t)j);
    if (keep_images > 0)
        len = (size_t)keep_images;
    if (gz) {
        gzFile f = gzopen(images, "wb");
        gzwrite(f, buf, (unsigned)len);
        gzclose(f);
    } else {
        FILE *f = fopen(images, "wb");
        fwrite(buf, 1, len, f);
        fclose(f);
    }
    put32(buf, lab_magic);
    put32(buf + 4, n_labels);
    for (uint32_t i = 0; i < n_labels; i++)
        buf[8 + i] = (unsigned char)(i % 10);
    FILE *f = fopen(labels, "wb");
    fwrite(buf, 1, 8 + n_labels, f);
    fclose(f);
}

static int load(const char *images, const char *labels, char *err, size_t err_bytes,
                dataset_t *d)
{
    return dataset_load_idx(d, images, labels, 10, err, err_bytes);
}

static void path(char *out, const char *name)
{
    snprintf(out, 512, "%s/%s", dir, name);
}

static void test_idx_good_plain_and_gz(void **state)
{
    (void)state;
    char img[512], lab[512], err[512] = "";
    dataset_t d;
    for (int gz = 0; gz < 2; gz++) {
        path(img, gz ? "good-img.gz" : "good-img");
        path(lab, "good-lab");
        write_files(img, lab, 0x803, 0x801, 20, 20, 0, gz);
        assert_int_equal(load(img, lab, err, sizeof err, &d), 0);
        assert_int_equal(d.count, 20);
        assert_int_equal(d.h, 2);
        assert_int_equal(d.w, 3);
        assert_int_equal(d.pixels[5 * 6 + 4], 9);
        assert_int_equal(d.labels[13], 3);
        dataset_free(&d);
    }
}

static void expect_error(const char *img, const char *lab, int code, const char *needle,
                         const char *needle2)
{
    char err[1024] = "";
    dataset_t d;
    int rc = load(img, lab, err, sizeof err, &d);
    if (rc != code)
        fail_msg("expected %d (%s), got %d: %s", code, rt_strerror(code), rc, err);
    if (!strstr(err, needle) || (needle2 && !strstr(err, needle2)))
        fail_msg("message '%s' lacks '%s' / '%s'", err, needle, needle2 ? needle2 : "");
}

static void test_idx_bad_inputs(void **state)
{
    (void)state;
    char img[512], lab[512];
    path(img, "bad-img");
    path(lab, "bad-lab");

    write_files(img, lab, 0x801, 0x801, 5, 5, 0, 0);
    expect_error(img, lab, RT_EFORMAT, "bad magic", img);

    write_files(img, lab, 0x803, 0x803, 5, 5, 0, 0);
    expect_error(img, lab, RT_EFORMAT, "bad magic", lab);

    write_files(img, lab, 0x803, 0x801, 5, 5, 16 + 6 * 5 - 7, 0);
    expect_error(img, lab, RT_EFORMAT, "truncated", img);

    write_files(img, lab, 0x803, 0x801, 5, 5, 10, 1);
    expect_error(img, lab, RT_EFORMAT, "truncated", "16 bytes");

    write_files(img, lab, 0x803, 0x801, 5, 4, 0, 0);
    expect_error(img, lab, RT_EFORMAT, "4 labels", "5 images");

    char missing[512];
    path(missing, "does-not-exist");
    expect_error(missing, lab, RT_ENOENT, missing, NULL);

    /* A label beyond the class count. */
    write_files(img, lab, 0x803, 0x801, 12, 12, 0, 0);
    char err[512];
    dataset_t d;
    assert_int_equal(dataset_load_idx(&d, img, lab, 5, err, sizeof err), RT_EFORMAT);
    assert_non_null(strstr(err, "not below 5 classes"));
}

/* Each rank's slices are disjoint, cover the epoch's global batches, and
 * the order depends only on (seed, epoch). */
static void test_sampler_slices(void **state)
{
    (void)state;
    char img[512], lab[512], err[512];
    path(img, "s-img");
    path(lab, "s-lab");
    write_files(img, lab, 0x803, 0x801, 40, 40, 0, 0);
    dataset_t d;
    assert_int_equal(load(img, lab, err, sizeof err, &d), 0);
    /* Tag each sample by its label = index % 10 and pixel0 = index. */
    const int ranks = 3, batch = 4;
    sampler_t s[3];
    for (int r = 0; r < ranks; r++)
        assert_int_equal(sampler_init(&s[r], &d, r, ranks, batch, 1, 42), 0);
    assert_int_equal(s[0].steps_per_epoch, 3); /* 40 / 12, remainder dropped */
    for (int epoch = 0; epoch < 2; epoch++) {
        int seen[40] = {0};
        for (int step = 0; step < 3; step++)
            for (int r = 0; r < ranks; r++) {
                const float *x;
                const int32_t *y;
                sampler_batch(&s[r], (uint64_t)(epoch * 3 + step), &x, &y);
                for (int i = 0; i < batch; i++) {
                    /* pixel 0 of sample k is k (see write_files). */
                    float norm = x[i * 6];
                    int k = (int)lroundf((norm * 0.3530f + 0.2860f) * 255.0f);
                    assert_in_range(k, 0, 39);
                    assert_int_equal(y[i], k % 10);
                    seen[k]++;
                }
            }
        int total = 0;
        for (int k = 0; k < 40; k++) {
            assert_in_range(seen[k], 0, 1);
            total += seen[k];
        }
        assert_int_equal(total, 36);
    }
    /* Epochs are shuffled differently; a fresh sampler repeats the order. */
    sampler_t again;
    assert_int_equal(sampler_init(&again, &d, 0, ranks, batch, 1, 42), 0);
    const float *x1, *x2;
    const int32_t *y1, *y2;
    sampler_batch(&again, 4, &x1, &y1);
    float first[24];
    memcpy(first, x1, sizeof first);
    sampler_batch(&s[0], 4, &x2, &y2);
    assert_memory_equal(first, x2, sizeof first);
    sampler_batch(&again, 1, &x1, &y1);
    assert_memory_not_equal(first, x1, sizeof first);
    sampler_free(&again);
    for (int r = 0; r < ranks; r++)
        sampler_free(&s[r]);
    dataset_free(&d);
}

/* Two ranks at batch 16 see exactly one rank's batch of 32. */
static void test_synthetic_rank_independent(void **state)
{
    (void)state;
    dataset_t one, two;
    assert_int_equal(dataset_synthetic(&one, 1, 4, 4, 10, 32, 5), 0);
    assert_int_equal(dataset_synthetic(&two, 1, 4, 4, 10, 32, 5), 0);
    sampler_t s1, r0, r1;
    assert_int_equal(sampler_init(&s1, &one, 0, 1, 32, 0, 5), 0);
    assert_int_equal(sampler_init(&r0, &two, 0, 2, 16, 0, 5), 0);
    assert_int_equal(sampler_init(&r1, &two, 1, 2, 16, 0, 5), 0);
    const float *a, *b, *c;
    const int32_t *la, *lb, *lc;
    sampler_batch(&s1, 3, &a, &la);
    sampler_batch(&r0, 3, &b, &lb);
    sampler_batch(&r1, 3, &c, &lc);
    assert_memory_equal(a, b, 16 * 16 * sizeof(float));
    assert_memory_equal(a + 16 * 16, c, 16 * 16 * sizeof(float));
    assert_memory_equal(la + 16, lc, 16 * sizeof(int32_t));
    int distinct = 0;
    for (int i = 1; i < 32; i++)
        distinct += la[i] != la[0];
    assert_true(distinct > 0);
    sampler_free(&s1);
    sampler_free(&r0);
    sampler_free(&r1);
    dataset_free(&one);
    dataset_free(&two);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/ringtrain-test-data.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_good_plain_and_gz),
        cmocka_unit_test(test_idx_bad_inputs),
        cmocka_unit_test(test_sampler_slices),
        cmocka_unit_test(test_synthetic_rank_independent),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
