/* Unit tests for common/files.c: atomic, symlink-safe writes and opening
 * inputs that must be regular files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_tmpdir.h"

#include "common/common.h"

static void read_text(const char *path, char *buf, size_t bytes)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t got = fread(buf, 1, bytes - 1, f);
    buf[got] = '\0';
    fclose(f);
}

/* Entries of test_dir other than . and .. */
static int entries(void)
{
    DIR *d = opendir(test_dir);
    assert_non_null(d);
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        count += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return count;
}

static void test_write_replaces_and_sets_mode(void **state)
{
    (void)state;
    char path[300], buf[64], err[256];
    snprintf(path, sizeof path, "%s/out", test_dir);
    assert_int_equal(rt_file_write_atomic(path, "first\n", 6, 0644, err, sizeof err), 0);
    assert_int_equal(rt_file_write_atomic(path, "second\n", 7, 0600, err, sizeof err), 0);
    read_text(path, buf, sizeof buf);
    assert_string_equal(buf, "second\n");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(entries(), 1); /* no temporary file left */
}

/* A symlink planted at the destination is replaced, its target untouched. */
static void test_symlink_at_destination_not_followed(void **state)
{
    (void)state;
    char path[300], target[300], buf[64], err[256];
    snprintf(path, sizeof path, "%s/out", test_dir);
    snprintf(target, sizeof target, "%s/victim", test_dir);
    assert_int_equal(rt_file_write_atomic(target, "keep\n", 5, 0644, err, sizeof err), 0);
    assert_int_equal(symlink(target, path), 0);
    assert_int_equal(rt_file_write_atomic(path, "new\n", 4, 0644, err, sizeof err), 0);
    read_text(target, buf, sizeof buf);
    assert_string_equal(buf, "keep\n");
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    read_text(path, buf, sizeof buf);
    assert_string_equal(buf, "new\n");
}

/* Symlinks planted at the names earlier writers used (path.tmp.<pid>, or any
 * predictable name) are never opened: the temporary name is fresh. */
static void test_planted_temp_names_ignored(void **state)
{
    (void)state;
    char path[300], target[300], link[320], buf[64], err[256];
    snprintf(path, sizeof path, "%s/out", test_dir);
    snprintf(target, sizeof target, "%s/victim", test_dir);
    assert_int_equal(rt_file_write_atomic(target, "keep\n", 5, 0644, err, sizeof err), 0);
    snprintf(link, sizeof link, "%s.tmp.%d", path, (int)getpid());
    assert_int_equal(symlink(target, link), 0);
    rt_atomic_file_t f;
    assert_int_equal(rt_atomic_open(&f, path, 0644, err, sizeof err), 0);
    assert_string_not_equal(f.tmp, link);
    struct stat st;
    assert_int_equal(lstat(f.tmp, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(rt_atomic_write(&f, "data\n", 5, err, sizeof err), 0);
    assert_int_equal(rt_atomic_commit(&f, err, sizeof err), 0);
    read_text(target, buf, sizeof buf);
    assert_string_equal(buf, "keep\n");
    read_text(path, buf, sizeof buf);
    assert_string_equal(buf, "data\n");
}

static void test_abort_leaves_nothing(void **state)
{
    (void)state;
    char path[300], err[256];
    snprintf(path, sizeof path, "%s/out", test_dir);
    rt_atomic_file_t f;
    assert_int_equal(rt_atomic_open(&f, path, 0644, err, sizeof err), 0);
    assert_int_equal(rt_atomic_write(&f, "half", 4, err, sizeof err), 0);
    rt_atomic_abort(&f);
    rt_atomic_abort(&f); /* twice is safe */
    assert_int_equal(entries(), 0);
}

static void test_missing_directory_named(void **state)
{
    (void)state;
    char path[300], err[512] = "";
    snprintf(path, sizeof path, "%s/no/such/out", test_dir);
    assert_int_equal(rt_file_write_atomic(path, "x", 1, 0644, err, sizeof err), RT_ENOENT);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "No such file or directory"));
    assert_int_equal(rt_file_write_atomic("", "x", 1, 0644, err, sizeof err), RT_EINVAL);
}

static void test_open_regular(void **state)
{
    (void)state;
    char path[300], fifo[300], err[512] = "";
    snprintf(path, sizeof path, "%s/plain", test_dir);
    snprintf(fifo, sizeof fifo, "%s/fifo", test_dir);
    assert_int_equal(rt_file_write_atomic(path, "abc", 3, 0644, err, sizeof err), 0);
    int fd = -1;
    assert_int_equal(rt_open_regular(path, &fd, err, sizeof err), 0);
    char buf[8];
    assert_int_equal(read(fd, buf, sizeof buf), 3); /* blocking reads work */
    close(fd);
    /* A FIFO with no writer: refused at once, not a hang. */
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(rt_open_regular(fifo, &fd, err, sizeof err), RT_EFORMAT);
    assert_int_equal(fd, -1);
    assert_non_null(strstr(err, "FIFO"));
    assert_non_null(strstr(err, fifo));
    assert_int_equal(rt_open_regular(test_dir, &fd, err, sizeof err), RT_EFORMAT);
    assert_non_null(strstr(err, "a directory"));
    snprintf(path, sizeof path, "%s/missing", test_dir);
    assert_int_equal(rt_open_regular(path, &fd, err, sizeof err), RT_ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write_replaces_and_sets_mode, test_tmpdir_setup, test_tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_symlink_at_destination_not_followed, test_tmpdir_setup,
                                        test_tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_planted_temp_names_ignored, test_tmpdir_setup, test_tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_abort_leaves_nothing, test_tmpdir_setup, test_tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_missing_directory_named, test_tmpdir_setup, test_tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_open_regular, test_tmpdir_setup, test_tmpdir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
