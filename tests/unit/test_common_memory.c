/* Unit tests for common/memory.c: MemAvailable and the cgroup memory limits
 * (v2 and v1, limits on a parent, a path the mount does not show) read from
 * a fake /proc and /sys, and the text that programs print. */
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

#define GIB (UINT64_C(1) << 30)

static char root[256];

/* Writes text to root/rel, making the directories on the way. */
static void put(const char *rel, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0700);
            *p = '/';
        }
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static int fresh_root(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/ringtrain-test-memory.XXXXXX");
    if (!mkdtemp(root))
        return -1;
    put("proc/meminfo", "MemTotal:       24683548 kB\nMemFree:  1 kB\n"
                        "MemAvailable:   20971520 kB\nBuffers: 5 kB\n");
    return 0;
}

static int remove_root(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

/* Reads the fake root: the bound, whether the cgroup set it, and (text not
 * NULL) what programs print. */
static void expect_host(uint64_t available, int by_cgroup, const char *text)
{
    rt_host_memory_t m;
    assert_int_equal(rt_host_memory_at(root, &m), 0);
    assert_int_equal(m.available, available);
    assert_int_equal(m.by_cgroup, by_cgroup);
    assert_int_equal(m.meminfo, 20 * GIB);
    if (text) {
        char got[160];
        rt_host_memory_describe(&m, got, sizeof got);
        assert_string_equal(got, text);
    }
}

static void test_meminfo_only(void **state)
{
    (void)state;
    put("proc/self/cgroup", "0::/\n");
    expect_host(20 * GIB, 0, "20.0 GiB available (MemAvailable)");
}

/* v2: the pod's limit binds (2 GiB, 1.5 GiB used of which 0.5 GiB is
 * inactive file cache: 1 GiB of room); the container's own is "max". */
static void test_cgroup_v2_parent_limit(void **state)
{
    (void)state;
    put("proc/self/cgroup", "0::/kubepods/pod1/ctr\n");
    put("sys/fs/cgroup/kubepods/pod1/ctr/memory.max", "max\n");
    put("sys/fs/cgroup/kubepods/pod1/ctr/memory.current", "1000\n");
    put("sys/fs/cgroup/kubepods/pod1/memory.max", "2147483648\n");
    put("sys/fs/cgroup/kubepods/pod1/memory.current", "1610612736\n");
    put("sys/fs/cgroup/kubepods/pod1/memory.stat",
        "anon 100\nfile 600\nactive_file 1\ninactive_file 536870912\n");
    expect_host(GIB, 1, "1.0 GiB available (cgroup memory limit 2.0 GiB, 1.0 GiB in use)");
}

/* v1 with a cgroup path the mount does not show (a container's namespace):
 * the mount's root is the container's cgroup and its limit counts; an
 * unlimited v1 value counts as none. */
static void test_cgroup_v1_hidden_path(void **state)
{
    (void)state;
    put("proc/self/cgroup", "9:pids:/x\n4:memory:/process_api/abc\n0::/\n");
    put("sys/fs/cgroup/memory/memory.limit_in_bytes", "4294967296\n");
    put("sys/fs/cgroup/memory/memory.usage_in_bytes", "1073741824\n");
    put("sys/fs/cgroup/memory/memory.stat", "cache 5\ntotal_inactive_file 0\n");
    expect_host(3 * GIB, 1, NULL);
    put("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
    expect_host(20 * GIB, 0, NULL);
}

/* A limit above MemAvailable does not raise what is available; usage over
 * the limit leaves no room. */
static void test_lower_bound_wins(void **state)
{
    (void)state;
    put("proc/self/cgroup", "0::/big\n");
    put("sys/fs/cgroup/big/memory.max", "107374182400\n");
    put("sys/fs/cgroup/big/memory.current", "0\n");
    expect_host(20 * GIB, 0, NULL);
    put("sys/fs/cgroup/big/memory.max", "1000\n");
    put("sys/fs/cgroup/big/memory.current", "5000\n");
    expect_host(0, 1, NULL);
}

/* Neither /proc nor /sys there: unknown, not zero. */
static void test_nothing_readable(void **state)
{
    (void)state;
    char empty[300];
    snprintf(empty, sizeof empty, "%s/nothing-here", root);
    rt_host_memory_t m;
    assert_int_equal(rt_host_memory_at(empty, &m), RT_ENOENT);
    assert_int_equal(m.available, UINT64_MAX);
}

static void test_format_bytes(void **state)
{
    (void)state;
    char b[32];
    rt_format_bytes(310 * GIB + GIB / 3, b, sizeof b);
    assert_string_equal(b, "310 GiB");
    rt_format_bytes(22 * GIB + 9 * GIB / 10, b, sizeof b);
    assert_string_equal(b, "22.9 GiB");
    rt_format_bytes(512 << 20, b, sizeof b);
    assert_string_equal(b, "512 MiB");
}

/* This machine: something is readable and below 2^60. */
static void test_this_host(void **state)
{
    (void)state;
    rt_host_memory_t m;
    assert_int_equal(rt_host_memory(&m), 0);
    assert_true(m.available > 0 && m.available < (UINT64_C(1) << 60));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_meminfo_only, fresh_root, remove_root),
        cmocka_unit_test_setup_teardown(test_cgroup_v2_parent_limit, fresh_root, remove_root),
        cmocka_unit_test_setup_teardown(test_cgroup_v1_hidden_path, fresh_root, remove_root),
        cmocka_unit_test_setup_teardown(test_lower_bound_wins, fresh_root, remove_root),
        cmocka_unit_test_setup_teardown(test_nothing_readable, fresh_root, remove_root),
        cmocka_unit_test(test_format_bytes),
        cmocka_unit_test(test_this_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
