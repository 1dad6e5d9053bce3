/* Unit tests for worker/checkpoint: the codec refuses every damaged or
 * foreign file, saving is atomic (0600, never through a symlink) and prunes
 * to the newest K of this model's checkpoints only, loading picks the newest
 * valid checkpoint and skips a FIFO at once, and the directory check before
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

#include "common/common.h"
#include "worker/checkpoint.h"

#define ARENA 37
#define STATE 5

static char dir[256];
static float params[ARENA], momentum[ARENA], state[STATE];

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

/* A header whose checksum is right but whose reserved bytes (between the
 * payload CRC and the header CRC) are not zero is refused: accepting it
 * would let a checkpoint decode to data that re-encodes to other bytes
 * (found by fuzz_checkpoint). */
static void test_reserved_bytes_refused(void **s)
{
    (void)s;
    ckpt_info_t info = info_for(3);
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

static void path_of(char *out, uint64_t step)
{
    snprintf(out, 512, "%s/ckpt-%012llu.rtck", dir, (unsigned long long)step);
}

static void test_save_prune_and_load(void **s)
{
    (void)s;
    char path[512], err[256];
    ckpt_data_t data = {params, momentum, state};
    for (uint64_t step = 5; step <= 20; step += 5) {
        fill((float)step);
        ckpt_info_t info = info_for(step);
        assert_int_equal(ckpt_save(dir, &info, &data, 2, path, sizeof path, err, sizeof err), 0);
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
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) = 2", dir);
    assert_int_equal(system(cmd), 0);

    /* Newest valid wins; a corrupt newest is skipped. */
    ckpt_info_t expect = info_for(0), got;
    float lp[ARENA], lm[ARENA], ls[STATE];
    ckpt_data_t out = {lp, lm, ls};
    assert_int_equal(ckpt_load_latest(dir, &expect, &got, &out, p, sizeof p, err, sizeof err), 0);
    assert_int_equal(got.step, 20);
    assert_true(lp[3] == 23.0f);
    path_of(p, 20);
    FILE *f = fopen(p, "r+b");
    fseek(f, CKPT_HEADER_BYTES + 8, SEEK_SET);
    fputc(0x7f, f);
    fclose(f);
    assert_int_equal(ckpt_load_latest(dir, &expect, &got, &out, p, sizeof p, err, sizeof err), 0);
    assert_int_equal(got.step, 15);
    assert_true(lp[3] == 18.0f);
    /* A file renamed to another step is refused. */
    char q[512];
    path_of(q, 25);
    path_of(p, 15);
    assert_int_equal(rename(p, q), 0);
    assert_int_equal(ckpt_load_latest(dir, &expect, &got, &out, p, sizeof p, err, sizeof err),
                     RT_ENOENT);
    assert_non_null(strstr(err, "no valid checkpoint"));
}

/* Writes bytes to dir/ckpt-<step>.rtck directly (not a checkpoint of ours). */
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
    snprintf(sub, sizeof sub, "%s/prune", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
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
    snprintf(sub, sizeof sub, "%s/fifo", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
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
    snprintf(sub, sizeof sub, "%s/link", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(victim, sizeof victim, "%s/victim", dir);
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
    snprintf(sub, sizeof sub, "%s/new", dir);
    assert_int_equal(ckpt_dir_prepare(sub, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(stat(sub, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", sub);
    assert_int_equal(system(cmd), 0);

    snprintf(file, sizeof file, "%s/plain", dir);
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
    snprintf(empty, sizeof empty, "%s/none", dir);
    ckpt_info_t expect = info_for(0), got;
    assert_int_equal(ckpt_load_latest(empty, &expect, &got, NULL, p, sizeof p, err, sizeof err),
                     RT_ENOENT);
}

static int setup(void **s)
{
    (void)s;
    snprintf(dir, sizeof dir, "/tmp/ringtrain-test-ckpt.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **s)
{
    (void)s;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
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
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
