/* Unit tests for common/: error strings, CRC-32C, FNV-1a, number parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/common.h"

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(rt_strerror(0), "success");
    assert_string_equal(rt_strerror(RT_EINVAL), "invalid argument");
    assert_string_equal(rt_strerror(RT_ECORRUPT), "data corrupt (checksum mismatch)");
    assert_string_equal(rt_strerror(-9999), "unknown error");
}

static void test_crc32c_known_vectors(void **state)
{
    (void)state;
    /* RFC 3720 check value and the all-zero 32-byte vector. */
    assert_int_equal(rt_crc32c(0, "123456789", 9), 0xE3069283u);
    unsigned char zeros[32] = {0};
    assert_int_equal(rt_crc32c(0, zeros, sizeof zeros), 0x8A9136AAu);
    /* Incremental equals one-shot at every split point. */
    const char *text = "The quick brown fox jumps over the lazy dog";
    size_t len = strlen(text);
    uint32_t whole = rt_crc32c(0, text, len);
    for (size_t split = 0; split <= len; split++)
        assert_int_equal(rt_crc32c(rt_crc32c(0, text, split), text + split, len - split), whole);
}

static void test_fnv1a(void **state)
{
    (void)state;
    assert_true(rt_fnv1a(RT_FNV_OFFSET, "", 0) == UINT64_C(0xcbf29ce484222325));
    assert_true(rt_fnv1a(RT_FNV_OFFSET, "a", 1) == UINT64_C(0xaf63dc4c8601ec8c));
}

static void test_parse_u64(void **state)
{
    (void)state;
    uint64_t v = 0;
    assert_int_equal(rt_parse_u64("42", 0, 100, 0, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(rt_parse_u64("4K", 0, UINT64_MAX, 1, &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(rt_parse_u64("256M", 0, UINT64_MAX, 1, &v), 0);
    assert_int_equal(v, 256u << 20);
    assert_int_equal(rt_parse_u64("4K", 0, UINT64_MAX, 0, &v), RT_EINVAL);
    assert_int_equal(rt_parse_u64("-1", 0, 100, 0, &v), RT_EINVAL);
    assert_int_equal(rt_parse_u64("", 0, 100, 0, &v), RT_EINVAL);
    assert_int_equal(rt_parse_u64("12x", 0, 100, 0, &v), RT_EINVAL);
    assert_int_equal(rt_parse_u64("101", 0, 100, 0, &v), RT_ERANGE);
    assert_int_equal(rt_parse_u64("99999999999999999999999", 0, UINT64_MAX, 0, &v), RT_ERANGE);
    assert_int_equal(rt_parse_u64("17179869184G", 0, UINT64_MAX, 1, &v), RT_ERANGE);
}

static void test_parse_double(void **state)
{
    (void)state;
    double d = 0;
    assert_int_equal(rt_parse_double("0.01", 0, 1, &d), 0);
    assert_true(d == 0.01);
    assert_int_equal(rt_parse_double("nan", 0, 1, &d), RT_ERANGE);
    assert_int_equal(rt_parse_double("2", 0, 1, &d), RT_ERANGE);
    assert_int_equal(rt_parse_double("0.1x", 0, 1, &d), RT_EINVAL);
}

static void test_aligned_alloc(void **state)
{
    (void)state;
    float *p = rt_alloc_aligned(1000, 64);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 64, 0);
    for (int i = 0; i < 250; i++)
        assert_true(p[i] == 0.0f);
    rt_free_aligned(p);
    rt_free_aligned(NULL);
    assert_int_equal(rt_align_up(65, 64), 128);
    assert_int_equal(rt_align_up(64, 64), 64);
}

/* Status of a child that exits with `code`, or kills itself with `sig`. */
static int child_status(int code, int sig)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (sig)
            raise(sig);
        _exit(code);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void test_exit_code_of_status(void **state)
{
    (void)state;
    assert_int_equal(rt_exit_code_of_status(child_status(0, 0)), 0);
    assert_int_equal(rt_exit_code_of_status(child_status(205, 0)), 205);
    assert_int_equal(rt_exit_code_of_status(child_status(0, SIGKILL)), 137);
    assert_int_equal(rt_exit_code_of_status(child_status(0, SIGTERM)), 143);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_crc32c_known_vectors),
        cmocka_unit_test(test_fnv1a),
        cmocka_unit_test(test_parse_u64),
        cmocka_unit_test(test_parse_double),
        cmocka_unit_test(test_aligned_alloc),
        cmocka_unit_test(test_exit_code_of_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
