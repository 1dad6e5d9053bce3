/* ringtrain common: atomic, symlink-safe file writes and opening inputs that
 * must be regular files.
 *
 * A write goes to a new temporary file next to its destination, made by
 * mkostemp (O_CREAT | O_EXCL: a name planted in advance, symlink or not, is
 * never opened), then fchmod, fsync, rename over the destination (a symlink
 * there is replaced, not followed) and fsync of the directory. Readers see
 * the old file or the new one, never half of one; on any failure the
 * temporary file is removed and the destination is untouched. */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void set_err(char *err, size_t err_bytes, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t err_bytes, const char *fmt, ...)
{
    if (!err || err_bytes == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_bytes, fmt, ap);
    va_end(ap);
}

/* The directory part of path ("." when it has none). */
static void dir_of(const char *path, char *dir, size_t bytes)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(dir, bytes, ".");
        return;
    }
    size_t len = slash == path ? 1 : (size_t)(slash - path);
    snprintf(dir, bytes, "%.*s", (int)len, path);
}

int rt_atomic_open(rt_atomic_file_t *f, const char *path, unsigned mode, char *err,
                   size_t err_bytes)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof f->path || path[len - 1] == '/') {
        set_err(err, err_bytes, "%s: not a usable file name (empty, a directory or too long)",
                path);
        return RT_EINVAL;
    }
    memcpy(f->path, path, len + 1);
    memcpy(f->tmp, path, len);
    memcpy(f->tmp + len, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    f->mode = mode;
    f->fd = mkostemp(f->tmp, O_CLOEXEC);
    if (f->fd < 0) {
        int e = errno;
        char dir[sizeof f->path];
        dir_of(path, dir, sizeof dir);
        set_err(err, err_bytes, "%s: cannot create a file in %s: %s; check that the directory "
                                "exists and is writable",
                path, dir, strerror(e));
        return e == ENOENT || e == ENOTDIR ? RT_ENOENT : RT_EIO;
    }
    return 0;
}

int rt_atomic_write(rt_atomic_file_t *f, const void *data, size_t bytes, char *err,
                    size_t err_bytes)
{
    const unsigned char *p = data;
    while (bytes > 0) {
        size_t chunk = bytes > ((size_t)1 << 30) ? (size_t)1 << 30 : bytes;
        ssize_t put = write(f->fd, p, chunk);
        if (put < 0 && errno == EINTR)
            continue;
        if (put <= 0) {
            set_err(err, err_bytes, "%s: write failed: %s; check free space", f->path,
                    put < 0 ? strerror(errno) : "no progress");
            return RT_EIO;
        }
        p += put;
        bytes -= (size_t)put;
    }
    return 0;
}

void rt_atomic_abort(rt_atomic_file_t *f)
{
    if (f->fd >= 0) {
        close(f->fd);
        unlink(f->tmp);
    }
    f->fd = -1;
}

int rt_fsync_dir(const char *path)
{
    char dir[4096];
    dir_of(path, dir, sizeof dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int rt_atomic_commit(rt_atomic_file_t *f, char *err, size_t err_bytes)
{
    const char *step = NULL;
    if (fchmod(f->fd, (mode_t)f->mode) != 0)
        step = "chmod";
    else if (fsync(f->fd) != 0)
        step = "fsync";
    int e = errno;
    if (close(f->fd) != 0 && !step) {
        step = "close";
        e = errno;
    }
    f->fd = -1;
    if (!step && rename(f->tmp, f->path) != 0) {
        step = "rename into place";
        e = errno;
    }
    if (step) {
        unlink(f->tmp);
        set_err(err, err_bytes, "%s: %s failed: %s; check the file system and free space",
                f->path, step, strerror(e));
        return RT_EIO;
    }
    /* Make the rename itself durable. */
    (void)rt_fsync_dir(f->path);
    return 0;
}

int rt_file_write_atomic(const char *path, const void *data, size_t bytes, unsigned mode,
                         char *err, size_t err_bytes)
{
    rt_atomic_file_t f;
    int rc = rt_atomic_open(&f, path, mode, err, err_bytes);
    if (rc)
        return rc;
    rc = rt_atomic_write(&f, data, bytes, err, err_bytes);
    if (rc) {
        rt_atomic_abort(&f);
        return rc;
    }
    return rt_atomic_commit(&f, err, err_bytes);
}

static const char *file_kind(mode_t mode)
{
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO (named pipe)";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    return "not a regular file";
}

int rt_open_regular(const char *path, int *fd_out, char *err, size_t err_bytes)
{
    *fd_out = -1;
    /* O_NONBLOCK: opening a FIFO with no writer would block forever. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        set_err(err, err_bytes, "%s: cannot open: %s", path, strerror(e));
        return e == ENOENT || e == ENOTDIR ? RT_ENOENT : RT_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        set_err(err, err_bytes, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return RT_EIO;
    }
    if (!S_ISREG(st.st_mode)) {
        set_err(err, err_bytes, "%s: is %s, not a regular file; give a regular file", path,
                file_kind(st.st_mode));
        close(fd);
        return RT_EFORMAT;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        set_err(err, err_bytes, "%s: fcntl: %s", path, strerror(errno));
        close(fd);
        return RT_EIO;
    }
    *fd_out = fd;
    return 0;
}
