/* Unit tests for worker/checkpoint: the codec refuses every damaged or
 * foreign file, saving is atomic (0600, never through a symlink) and prunes
 * to the newest K of this model's checkpoints only, loading picks the newest
 * valid checkpoint, skips a FIFO at once and stops at another model's,
 * version 2 keeps the data position and version 1 files still load, the
 * background writer writes one checkpoint at a time while its caller goes
 * on, and the directory check before
 * training creates it 0700 and refuses what cannot hold checkpoints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_tmpdir.h"

#include "common/common.h"
#include "worker/checkpoint.h"

#define ARENA 37
#define STATE 5

static float params[ARENA], momentum[ARENA], state[STATE];

/* dir/name, made 0700 for one test. */
static void subdir(char *out, size_t bytes, const char *name)
{
    snprintf(out, bytes, "%s/%s", test_dir, name);
    assert_int_equal(mkdir(out, 0700), 0);
}

static ckpt_info_t info_for(uint64_t step)
{
    ckpt_info_t info = {.model_hash = 0x1234abcdULL, .step = step, .seed = 9,
                        .arena_floats = ARENA, .state_floats = STATE, .ranks = 2,
                        .batch = 16};
    return info;
}

static void fill(float base)
{
    for (int i = 0; i < ARENA; i++) {
        params[i] = base + (float)i;
        momentum[i] = base - (float)i;
    }
    for (int i = 0; i < STATE; i++)
        state[i] = base * 2 + (float)i;
}

static void test_roundtrip(void **s)
{
    (void)s;
    ckpt_info_t info = info_for(42);
    fill(1.5f);
    size_t bytes = ckpt_file_bytes(&info);
    unsigned char *buf = malloc(bytes);
    ckpt_data_t data = {params, momentum, state};
    ckpt_encode(buf, &info, &data);
    float p[ARENA], m[ARENA], st[STATE];
    ckpt_data_t out = {p, m, st};
    ckpt_info_t got;
    char err[256];
    assert_int_equal(ckpt_decode(buf, bytes, &info, &got, &out, err, sizeof err), 0);
    assert_int_equal(got.step, 42);
    assert_int_equal(got.ranks, 2);
    assert_memory_equal(p, params, sizeof p);
    assert_memory_equal(m, momentum, sizeof m);
    assert_memory_equal(st, state, sizeof st);
    free(buf);
}

/* Every single-bit flip anywhere in the file, every truncation and a
 * trailing byte are refused; the output buffers stay untouched. */
static void test_damage_refused(void **s)
{
    (void)s;
    ckpt_info_t info = info_for(7);
    fill(3.0f);
    size_t bytes = ckpt_file_bytes(&info);
    unsigned char *buf = malloc(bytes + 1);
    ckpt_data_t data = {params, momentum, state};
    ckpt_encode(buf, &info, &data);
    float p[ARENA] = {0}, m[ARENA] = {0}, st[STATE] = {0};
    ckpt_data_t out = {p, m, st};
    char err[256];
    for (size_t i = 0; i < bytes; i++)
        for (int bit = 0; bit < 8; bit += 3) {
            buf[i] ^= (unsigned char)(1u << bit);
            int rc = ckpt_decode(buf, bytes, &info, NULL, &out, err, sizeof err);
            if (rc == 0)
                fail_msg("flip of bit %d in byte %zu was accepted", bit, i);
            buf[i] ^= (unsigned char)(1u << bit);
        }
    for (size_t len = 0; len < bytes; len++)
        assert_int_not_equal(ckpt_decode(buf, len, &info, NULL, &out, err, sizeof err), 0);
    buf[bytes] = 0;
    assert_int_equal(ckpt_decode(buf, bytes + 1, &info, NULL, &out, err, sizeof err),
                     RT_EFORMAT);
    assert_non_null(strstr(err, "trailing"));
    float zeros[ARENA] = {0};
    assert_memory_equal(p, zeros, sizeof p);

    buf[bytes / 2 + CKPT_HEADER_BYTES / 2] ^= 1;
    assert_int_equal(ckpt_decode(buf, bytes, &info, NULL, NULL, err, sizeof err), RT_ECORRUPT);
    assert_non_null(strstr(err, "payload checksum"));
    free(buf);
}

/* A version 1 header whose checksum is right but whose reserved bytes
 * (between the payload CRC and the header CRC; version 2 keeps the data
 * position there) are not zero is refused: accepting it would let a
 * checkpoint decode to data that re-encodes to other bytes (found by
 * fuzz_checkpoint). */
static void test_reserved_bytes_refused(void **s)
{
    (void)s;
    ckpt_info_t info = info_for(3);
    info.version = 1;
    fill(2.0f);
    size_t bytes = ckpt_file_bytes(&info);
    unsigned char *buf = malloc(bytes);
    ckpt_data_t data = {params, momentum, state};
    char err[256];
    for (size_t k = 76; k < CKPT_HEADER_BYTES - 4; k++) {
        ckpt_encode(buf, &info, &data);
        assert_int_equal(ckpt_decode(buf, bytes, &info, NULL, NULL, err, sizeof err), 0);
        buf[k] = 0x5a;
        uint32_t crc = rt_crc32c(0, buf, CKPT_HEADER_BYTES - 4);
        for (int i = 0; i < 4; i++)
            buf[CKPT_HEADER_BYTES - 4 + i] = (unsigned char)(crc >> (8 * i));
        int rc = ckpt_decode(buf, bytes, &info, NULL, NULL, err, sizeof err);
        if (rc != RT_EFORMAT || strstr(err, "reserved header byte") == NULL)
            fail_msg("reserved byte %zu set: rc %d, '%s'", k, rc, err);
    }
    free(buf);
}

static void test_other_model_refused(void **s)
{
    (void)s;
    ckpt_info_t info = info_for(7);
    fill(3.0f);
    size_t bytes = ckpt_file_bytes(&info);
    unsigned char *buf = malloc(bytes);
    ckpt_data_t data = {params, momentum, state};
    ckpt_encode(buf, &info, &data);
    ckpt_info_t other = info;
    other.model_hash ^= 1;
    char err[256];
    assert_int_equal(ckpt_decode(buf, bytes, &other, NULL, NULL, err, sizeof err), RT_EMISMATCH);
    assert_non_null(strstr(err, "another model"));
    free(buf);
}

/* Version 2 keeps the data position and the training set's size; a
 * version 1 file (no position) still decodes, its position zero. */
static void test_position_and_version_1(void **s)
{
    (void)s;
    ckpt_info_t info = info_for(11);
    info.epoch = 3;
    info.sample = 1234;
    info.data_count = 60000;
    fill(5.0f);
    size_t bytes = ckpt_file_bytes(&info);
    unsigned char *buf = malloc(bytes);
    ckpt_data_t data = {params, momentum, state};
    ckpt_encode(buf, &info, &data);
    ckpt_info_t got;
    char err[256];
    assert_int_equal(ckpt_decode(buf, bytes, &info, &got, NULL, err, sizeof err), 0);
    assert_int_equal(got.version, CKPT_VERSION);
    assert_int_equal(got.epoch, 3);
    assert_int_equal(got.sample, 1234);
    assert_int_equal(got.data_count, 60000);
    info.version = 1;
    ckpt_encode(buf, &info, &data);
    assert_int_equal(ckpt_decode(buf, bytes, &info, &got, NULL, err, sizeof err), 0);
    assert_int_equal(got.version, 1);
    assert_int_equal(got.epoch, 0);
    assert_int_equal(got.sample, 0);
    assert_int_equal(got.step, 11);
    buf[8] = 3; /* a version from the future */
    uint32_t crc = rt_crc32c(0, buf, CKPT_HEADER_BYTES - 4);
    for (int i = 0; i < 4; i++)
        buf[CKPT_HEADER_BYTES - 4 + i] = (unsigned char)(crc >> (8 * i));
    assert_int_equal(ckpt_decode(buf, bytes, &info, &got, NULL, err, sizeof err), RT_EFORMAT);
    assert_non_null(strstr(err, "version 3 is not supported"));
    free(buf);
}

/* The newest checkpoint being another model's stops the search: resuming
 * from an older one of ours would silently go back in time. */
static void test_load_stops_at_other_model(void **s)
{
    (void)s;
    ckpt_info_t mine = info_for(4), theirs = info_for(8);
    theirs.model_hash ^= 1;
    fill(1.0f);
    char sub[300], err[4800], p[4300];
    subdir(sub, sizeof sub, "other");
    ckpt_data_t data = {params, momentum, state};
    assert_int_equal(ckpt_save(sub, &mine, &data, 5, p, sizeof p, err, sizeof err), 0);
    assert_int_equal(ckpt_save(sub, &theirs, &data, 5, p, sizeof p, err, sizeof err), 0);
    ckpt_info_t expect = info_for(0), got;
    float lp[ARENA], lm[ARENA], ls[STATE];
    ckpt_data_t out = {lp, lm, ls};
    assert_int_equal(ckpt_load_latest(sub, &expect, &got, &out, p, sizeof p, err, sizeof err),
                     RT_EMISMATCH);
    assert_non_null(strstr(err, "ckpt-000000000008.rtck: written for another model"));
    assert_non_null(strstr(p, "ckpt-000000000008.rtck"));
}

static void path_of(char *out, uint64_t step)
{
    snprintf(out, 512, "%s/ckpt-%012llu.rtck", test_dir, (unsigned long long)step);
}

static void test_save_prune_and_load(void **s)
{
    (void)s;
    char path[512], err[256];
    ckpt_data_t data = {params, momentum, state};
    for (uint64_t step = 5; step <= 20; step += 5) {
        fill((float)step);
        ckpt_info_t info = info_for(step);
        assert_int_equal(ckpt_save(test_dir, &info, &data, 2, path, sizeof path, err, sizeof err), 0);
    }
    char p[512];
    path_of(p, 5);
    assert_int_not_equal(access(p, F_OK), 0);
    path_of(p, 10);
    assert_int_not_equal(access(p, F_OK), 0);
    path_of(p, 20);
    assert_int_equal(access(p, F_OK), 0);
    /* No temporary file is left behind. */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) = 2", test_dir);
    assert_int_equal(system(cmd), 0);

    /* Newest valid wins; a corrupt newest is skipped. */
    ckpt_info_t expect = info_for(0), got;
    float lp[ARENA], lm[ARENA], ls[STATE];
    ckpt_data_t out = {lp, lm, ls};
    assert_int_equal(ckpt_load_latest(test_dir, &expect, &got, &out, p, sizeof p, err, sizeof err), 0);
    assert_int_equal(got.step, 20);
    assert_true(lp[3] == 23.0f);
    path_of(p, 20);
    FILE *f = fopen(p, "r+b");
    fseek(f, CKPT_HEADER_BYTES + 8, SEEK_SET);
    fputc(0x7f, f);
    fclose(f);
    assert_int_equal(ckpt_load_latest(test_dir, &expect, &got, &out, p, sizeof p, err, sizeof err), 0);
    assert_int_equal(got.step, 15);
    assert_true(lp[3] == 18.0f);
    /* A file renamed to another step is refused. */
    char q[512];
    path_of(q, 25);
    path_of(p, 15);
    assert_int_equal(rename(p, q), 0);
    assert_int_equal(ckpt_load_latest(test_dir, &expect, &got, &out, p, sizeof p, err, sizeof err),
                     RT_ENOENT);
    assert_non_null(strstr(err, "no valid checkpoint"));
}

/* Writes bytes to test_dir/ckpt-<step>.rtck directly (not a checkpoint of ours). */
static void plant(const char *in, uint64_t step, const void *bytes, size_t count)
{
    char p[512];
    snprintf(p, sizeof p, "%s/ckpt-%012llu.rtck", in, (unsigned long long)step);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, count, f), count);
    assert_int_equal(fclose(f), 0);
}

static int exists(const char *in, uint64_t step)
{
    char p[512];
    snprintf(p, sizeof p, "%s/ckpt-%012llu.rtck", in, (unsigned long long)step);
    return access(p, F_OK) == 0;
}

/* Pruning counts only this model's checkpoints: garbage, another model's
 * checkpoint and a FIFO at higher steps neither push out the new checkpoint
 * nor are removed. */
static void test_prune_only_own(void **s)
{
    (void)s;
    char sub[300], err[512], p[512];
    subdir(sub, sizeof sub, "prune");
    plant(sub, 999999999999ULL, "garbage", 7);
    ckpt_info_t other = info_for(999999999998ULL);
    other.model_hash ^= 1;
    ckpt_data_t data = {params, momentum, state};
    assert_int_equal(ckpt_save(sub, &other, &data, 100, p, sizeof p, err, sizeof err), 0);
    snprintf(p, sizeof p, "%s/ckpt-999999999997.rtck", sub);
    assert_int_equal(mkfifo(p, 0600), 0);
    alarm(20); /* opening the FIFO for reading would block */
    for (uint64_t step = 5; step <= 15; step += 5) {
        ckpt_info_t info = info_for(step);
        assert_int_equal(ckpt_save(sub, &info, &data, 2, p, sizeof p, err, sizeof err), 0);
        if (!exists(sub, step))
            fail_msg("keep=2: the new checkpoint of step %llu was removed at once",
                     (unsigned long long)step);
    }
    alarm(0);
    assert_false(exists(sub, 5));
    assert_true(exists(sub, 10));
    assert_true(exists(sub, 15));
    assert_true(exists(sub, 999999999999ULL));
    assert_true(exists(sub, 999999999998ULL));
    assert_true(exists(sub, 999999999997ULL));
}

/* A FIFO under a checkpoint's name is skipped at once with a warning, not
 * blocked on; the newest real checkpoint loads. */
static void test_fifo_skipped(void **s)
{
    (void)s;
    char sub[300], err[512], p[512];
    subdir(sub, sizeof sub, "fifo");
    ckpt_data_t data = {params, momentum, state};
    fill(4.0f);
    ckpt_info_t info = info_for(8);
    assert_int_equal(ckpt_save(sub, &info, &data, 5, p, sizeof p, err, sizeof err), 0);
    snprintf(p, sizeof p, "%s/ckpt-000000000009.rtck", sub);
    assert_int_equal(mkfifo(p, 0600), 0);
    ckpt_info_t expect = info_for(0), got;
    float lp[ARENA], lm[ARENA], ls[STATE];
    ckpt_data_t out = {lp, lm, ls};
    alarm(20);
    assert_int_equal(ckpt_load_latest(sub, &expect, &got, &out, p, sizeof p, err, sizeof err), 0);
    alarm(0);
    assert_int_equal(got.step, 8);
    assert_true(lp[3] == 7.0f);
}

/* Checkpoints are 0600 and replace a symlink at their name without
 * following it; a temporary file is never opened through a planted name. */
static void test_save_mode_and_symlink(void **s)
{
    (void)s;
    char sub[300], err[512], p[512], victim[512];
    snprintf(sub, sizeof sub, "%s/link", test_dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(victim, sizeof victim, "%s/victim", test_dir);
    FILE *f = fopen(victim, "w");
    assert_non_null(f);
    fputs("precious", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/ckpt-000000000003.rtck", sub);
    assert_int_equal(symlink(victim, p), 0);
    ckpt_data_t data = {params, momentum, state};
    ckpt_info_t info = info_for(3);
    assert_int_equal(ckpt_save(sub, &info, &data, 5, NULL, 0, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(victim, &st), 0);
    assert_int_equal(st.st_size, 8);
}

/* The directory check before training: created 0700, a regular file or a
 * path under one refused with errno's text; a failed save says why. */
static void test_dir_prepare(void **s)
{
    (void)s;
    char sub[300], file[300], under[320], err[512];
    snprintf(sub, sizeof sub, "%s/new", test_dir);
    assert_int_equal(ckpt_dir_prepare(sub, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(stat(sub, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", sub);
    assert_int_equal(system(cmd), 0);

    snprintf(file, sizeof file, "%s/plain", test_dir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(ckpt_dir_prepare(file, err, sizeof err), RT_EIO);
    assert_non_null(strstr(err, "is a regular file, not a directory"));
    snprintf(under, sizeof under, "%s/ck", file);
    assert_int_equal(ckpt_dir_prepare(under, err, sizeof err), RT_EIO);
    assert_non_null(strstr(err, "Not a directory"));

    ckpt_data_t data = {params, momentum, state};
    ckpt_info_t info = info_for(1);
    assert_int_equal(ckpt_save(file, &info, &data, 5, NULL, 0, err, sizeof err), RT_EIO);
    assert_non_null(strstr(err, "Not a directory"));
}

static void test_empty_dir(void **s)
{
    (void)s;
    char err[256], p[512], empty[300];
    snprintf(empty, sizeof empty, "%s/none", test_dir);
    ckpt_info_t expect = info_for(0), got;
    assert_int_equal(ckpt_load_latest(empty, &expect, &got, NULL, p, sizeof p, err, sizeof err),
                     RT_ENOENT);
}

/* The background writer: a submitted state is written as that step's
 * checkpoint while the caller goes on, one write at a time (a second submit
 * is refused until the outcome is taken), each outcome is handed out once,
 * a failed write says why, and destroying the writer finishes a queued
 * write first. */
#define W_ARENA 1000
#define W_STATE 7

static ckpt_info_t writer_info(uint64_t step)
{
    ckpt_info_t info = {.model_hash = 77, .step = step, .seed = 3, .arena_floats = W_ARENA,
                        .state_floats = W_STATE, .ranks = 2, .batch = 8, .sample = 16,
                        .data_count = 100, .epoch = 1};
    return info;
}

static void writer_fill(ckpt_data_t b, float base)
{
    for (int i = 0; i < W_ARENA; i++) {
        b.params[i] = base + (float)i;
        b.momentum[i] = -base;
    }
    for (int i = 0; i < W_STATE; i++)
        b.state[i] = base * 2;
}

static void test_writer_outcomes(void **s)
{
    (void)s;
    ckpt_info_t shape = writer_info(0);
    ckpt_writer_t *w;
    char sub[300];
    subdir(sub, sizeof sub, "writer");
    assert_int_equal(ckpt_writer_create(&w, sub, &shape, 2), 0);
    ckpt_result_t res;
    assert_int_equal(ckpt_writer_poll(w, &res), 0);
    assert_int_equal(ckpt_writer_wait(w, &res), 0);
    ckpt_data_t b = ckpt_writer_buffers(w);
    for (uint64_t step = 10; step <= 30; step += 10) {
        writer_fill(b, (float)step);
        ckpt_info_t info = writer_info(step);
        assert_int_equal(ckpt_writer_submit(w, &info), 0);
        /* One at a time: refused until the outcome is taken. */
        assert_int_equal(ckpt_writer_submit(w, &info), RT_EBUSY);
        assert_int_equal(ckpt_writer_wait(w, &res), 1);
        assert_int_equal(res.rc, 0);
        assert_int_equal(res.step, step);
        assert_non_null(strstr(res.path, "ckpt-0000000000"));
        assert_int_equal(ckpt_writer_poll(w, &res), 0); /* handed out once */
    }
    /* keep=2, and the newest holds what was submitted. */
    char p[4300], err[4800];
    snprintf(p, sizeof p, "%s/ckpt-000000000010.rtck", sub);
    assert_int_not_equal(access(p, F_OK), 0);
    float lp[W_ARENA], lm[W_ARENA], ls[W_STATE];
    ckpt_data_t out = {lp, lm, ls};
    ckpt_info_t got;
    assert_int_equal(ckpt_load_latest(sub, &shape, &got, &out, p, sizeof p, err, sizeof err), 0);
    assert_int_equal(got.step, 30);
    assert_int_equal(got.epoch, 1);
    assert_int_equal(got.sample, 16);
    assert_true(lp[5] == 35.0f && lm[0] == -30.0f && ls[6] == 60.0f);
    /* Polled rather than waited for, the outcome comes once it is done. */
    ckpt_info_t info = writer_info(40);
    assert_int_equal(ckpt_writer_submit(w, &info), 0);
    double end = rt_now() + 20;
    int got_it = 0;
    while (!got_it && rt_now() < end) {
        got_it = ckpt_writer_poll(w, &res);
        usleep(1000);
    }
    assert_true(got_it);
    assert_int_equal(res.step, 40);
    ckpt_writer_destroy(w);
    ckpt_writer_destroy(NULL);
}

static void test_writer_failure_and_destroy(void **s)
{
    (void)s;
    char missing[300];
    snprintf(missing, sizeof missing, "%s/no/such/dir", test_dir);
    ckpt_info_t shape = writer_info(0);
    ckpt_writer_t *w;
    assert_int_equal(ckpt_writer_create(&w, missing, &shape, 2), 0);
    ckpt_info_t info = writer_info(5);
    assert_int_equal(ckpt_writer_submit(w, &info), 0);
    ckpt_result_t res;
    assert_int_equal(ckpt_writer_wait(w, &res), 1);
    assert_int_equal(res.rc, RT_EIO);
    assert_non_null(strstr(res.err, "No such file or directory"));
    ckpt_writer_destroy(w);

    /* A write still queued when the writer is destroyed is written. */
    char sub[300];
    subdir(sub, sizeof sub, "last");
    assert_int_equal(ckpt_writer_create(&w, sub, &shape, 2), 0);
    info = writer_info(50);
    assert_int_equal(ckpt_writer_submit(w, &info), 0);
    ckpt_writer_destroy(w);
    char p[400];
    snprintf(p, sizeof p, "%s/ckpt-000000000050.rtck", sub);
    assert_int_equal(access(p, F_OK), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_damage_refused),
        cmocka_unit_test(test_reserved_bytes_refused),
        cmocka_unit_test(test_other_model_refused),
        cmocka_unit_test(test_save_prune_and_load),
        cmocka_unit_test(test_prune_only_own),
        cmocka_unit_test(test_fifo_skipped),
        cmocka_unit_test(test_save_mode_and_symlink),
        cmocka_unit_test(test_dir_prepare),
        cmocka_unit_test(test_empty_dir),
        cmocka_unit_test(test_position_and_version_1),
        cmocka_unit_test(test_load_stops_at_other_model),
        cmocka_unit_test(test_writer_outcomes),
        cmocka_unit_test(test_writer_failure_and_destroy),
    };
    return cmocka_run_group_tests(tests, test_tmpdir_setup, test_tmpdir_teardown);
}
