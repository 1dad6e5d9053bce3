/* Unit tests for worker/checkpoint: the codec refuses every damaged or
 * foreign file, saving is atomic and prunes to the newest K, and loading
 * picks the newest valid checkpoint. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
        cmocka_unit_test(test_empty_dir),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
