/* A scratch directory for unit tests: cmocka fixtures that make
 * /tmp/ringtrain-test.XXXXXX into test_dir and remove it with whatever the
 * test left in it (no shell). Use them per test or per group. */
#ifndef RINGTRAIN_TEST_TMPDIR_H
#define RINGTRAIN_TEST_TMPDIR_H

extern char test_dir[64];

int test_tmpdir_setup(void **state);
int test_tmpdir_teardown(void **state);

#endif
