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
#include <sys/stat.h>
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
    const dataset_shape_t want = {1, 2, 3, 10};
    return dataset_load_idx(d, images, labels, &want, err, err_bytes);
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
    const dataset_shape_t five = {1, 2, 3, 5};
    assert_int_equal(dataset_load_idx(&d, img, lab, &five, err, sizeof err), RT_EFORMAT);
    assert_non_null(strstr(err, "not below 5 classes"));
}

/* An IDX header: images (h > 0: 16 bytes) or labels (8 bytes). */
static void put_header(unsigned char *p, uint32_t magic, uint32_t count, uint32_t h, uint32_t w)
{
    put32(p, magic);
    put32(p + 4, count);
    if (h) {
        put32(p + 8, h);
        put32(p + 12, w);
    }
}

/* Writes len bytes to path, gzipped when gz. */
static void write_raw(const char *file, const unsigned char *data, size_t len, int gz)
{
    if (gz) {
        gzFile f = gzopen(file, "wb1");
        assert_non_null(f);
        for (size_t off = 0; off < len;) {
            unsigned part = len - off > (1u << 20) ? 1u << 20 : (unsigned)(len - off);
            assert_int_equal(gzwrite(f, data + off, part), (int)part);
            off += part;
        }
        assert_int_equal(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(file, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
    }
}

static void expect_error_as(const char *img, const char *lab, const dataset_shape_t *want,
                            int code, const char *needle)
{
    char err[1024] = "";
    dataset_t d;
    int rc = dataset_load_idx(&d, img, lab, want, err, sizeof err);
    if (rc != code || !strstr(err, needle) || !strstr(err, "/"))
        fail_msg("expected %d with '%s', got %d: '%s'", code, needle, rc, err);
    assert_null(d.pixels);
    assert_null(d.labels);
}

/* Headers that do not fit the model or the file: refused before anything
 * is allocated for the data, plain or gzip. */
static void test_idx_crafted_headers(void **state)
{
    (void)state;
    char img[512], lab[512];
    const dataset_shape_t want = {1, 2, 3, 10};
    path(img, "c-img");
    path(lab, "c-lab");
    write_files(img, lab, 0x803, 0x801, 5, 5, 0, 0);
    const dataset_shape_t taller = {1, 3, 3, 10}, colour = {3, 2, 3, 10};
    expect_error_as(img, lab, &taller, RT_EFORMAT,
                    "the header says images of 1x2x3, the model takes 1x3x3");
    expect_error_as(img, lab, &colour, RT_EFORMAT, "the model takes 3x2x3");

    /* 99,999,999 images claimed, 100 bytes there; labels too. */
    unsigned char lie[16 + 100] = {0}, lie_lab[8 + 100] = {0};
    put_header(lie, 0x803, 99999999, 2, 3);
    put_header(lie_lab, 0x801, 99999999, 0, 0);
    for (int gz = 0; gz < 2; gz++) {
        write_raw(img, lie, sizeof lie, gz);
        write_raw(lab, lie_lab, sizeof lie_lab, gz);
        expect_error_as(img, lab, &want, RT_EFORMAT,
                        "truncated: the header says 99999999 images of 2x3 (599999994 bytes), "
                        "the file has 100 after the header");
    }
    /* The plain label file is checked before the images are read. */
    write_raw(img, lie, sizeof lie, 1);
    write_raw(lab, lie_lab, sizeof lie_lab, 0);
    expect_error_as(img, lab, &want, RT_EFORMAT, "99999999 labels (99999999 bytes)");

    /* More data than the header says. */
    unsigned char extra[16 + 5 * 6 + 6] = {0}, labels[8 + 5] = {0};
    put_header(extra, 0x803, 5, 2, 3);
    put_header(labels, 0x801, 5, 0, 0);
    write_raw(lab, labels, sizeof labels, 0);
    for (int gz = 0; gz < 2; gz++) {
        write_raw(img, extra, sizeof extra, gz);
        expect_error_as(img, lab, &want, RT_EFORMAT, "the header and the data disagree");
    }
    /* A label file with one label too many (gzip: found after reading). */
    unsigned char more_labels[8 + 6] = {0};
    memcpy(more_labels, labels, 8);
    write_raw(img, extra, sizeof extra - 6, 0);
    write_raw(lab, more_labels, sizeof more_labels, 1);
    expect_error_as(img, lab, &want, RT_EFORMAT, "the header says 5 labels (5 bytes) but");
}

/* Not a regular file, or not valid gzip: refused at once, no hang. */
static void test_idx_not_a_file(void **state)
{
    (void)state;
    char img[512], lab[512], sub[512], fifo[512];
    const dataset_shape_t want = {1, 2, 3, 10};
    path(img, "n-img");
    path(lab, "n-lab");
    path(sub, "n-dir");
    path(fifo, "n-fifo");
    write_files(img, lab, 0x803, 0x801, 5, 5, 0, 0);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    expect_error_as(sub, lab, &want, RT_EFORMAT, "n-dir: is a directory, not a regular file");
    expect_error_as(img, fifo, &want, RT_EFORMAT, "n-fifo: is a FIFO");

    /* A gzip stream whose first block has an invalid type. */
    unsigned char good[16 + 5 * 6];
    FILE *f = fopen(img, "rb");
    assert_int_equal(fread(good, 1, sizeof good, f), sizeof good);
    fclose(f);
    write_raw(img, good, sizeof good, 1);
    f = fopen(img, "r+b");
    assert_int_equal(fseek(f, 10, SEEK_SET), 0);
    fputc(0xff, f);
    fclose(f);
    expect_error_as(img, lab, &want, RT_EFORMAT, "corrupt gzip data (zlib: invalid block type)");

    /* Intact data, a wrong CRC in the trailer: seen after the last byte. */
    write_raw(img, good, sizeof good, 1);
    f = fopen(img, "r+b");
    assert_int_equal(fseek(f, -8, SEEK_END), 0);
    int crc0 = fgetc(f);
    assert_int_equal(fseek(f, -8, SEEK_END), 0);
    fputc(crc0 ^ 0xff, f);
    fclose(f);
    expect_error_as(img, lab, &want, RT_EFORMAT, "corrupt gzip data (zlib: incorrect data check)");
}

/* A gzip file many times the reader's first 1 MiB buffer reads whole. */
static void test_idx_gzip_grows(void **state)
{
    (void)state;
    const uint32_t count = 10000;
    const size_t per = 28 * 28, bytes = 16 + (size_t)count * per;
    unsigned char *buf = malloc(bytes);
    assert_non_null(buf);
    put_header(buf, 0x803, count, 28, 28);
    for (size_t i = 0; i < (size_t)count * per; i++)
        buf[16 + i] = (unsigned char)(i / per + i % 7);
    char img[512], lab[512], err[512] = "";
    path(img, "g-img.gz");
    path(lab, "g-lab.gz");
    write_raw(img, buf, bytes, 1);
    put_header(buf, 0x801, count, 0, 0);
    for (uint32_t i = 0; i < count; i++)
        buf[8 + i] = (unsigned char)(i % 10);
    write_raw(lab, buf, 8 + count, 1);
    free(buf);
    const dataset_shape_t want = {1, 28, 28, 10};
    dataset_t d;
    assert_int_equal(dataset_load_idx(&d, img, lab, &want, err, sizeof err), 0);
    assert_int_equal(d.count, count);
    size_t last = (size_t)(count - 1) * per + 5;
    assert_int_equal(d.pixels[last], (unsigned char)(last / per + last % 7));
    assert_int_equal(d.labels[count - 1], (count - 1) % 10);
    dataset_free(&d);
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
        cmocka_unit_test(test_idx_crafted_headers),
        cmocka_unit_test(test_idx_not_a_file),
        cmocka_unit_test(test_idx_gzip_grows),
        cmocka_unit_test(test_sampler_slices),
        cmocka_unit_test(test_synthetic_rank_independent),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
