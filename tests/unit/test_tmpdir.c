/* A scratch directory for unit tests (see test_tmpdir.h). */
#define _XOPEN_SOURCE 700
#include "test_tmpdir.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

char test_dir[64];

int test_tmpdir_setup(void **state)
{
    (void)state;
    snprintf(test_dir, sizeof test_dir, "/tmp/ringtrain-test.XXXXXX");
    return mkdtemp(test_dir) ? 0 : -1;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

int test_tmpdir_teardown(void **state)
{
    (void)state;
    /* Depth first, not following symlinks, not leaving the file system. */
    return nftw(test_dir, remove_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}
