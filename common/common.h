/* ringtrain common: error codes, logging, clocks and small utilities shared
 * by every module. Library code returns 0 or a negative RT_E... code and never
 * exits; programs turn codes into messages with rt_strerror(). */
#ifndef RINGTRAIN_COMMON_H
#define RINGTRAIN_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* One list generates the enum and rt_strerror(). Codes are negative. */
#define RT_ERRNO_MAP(X)                                                        \
    X(INVAL, -1, "invalid argument")                                           \
    X(NOMEM, -2, "out of memory")                                              \
    X(IO, -3, "input/output error")                                            \
    X(FORMAT, -4, "malformed input")                                           \
    X(RANGE, -5, "value out of range")                                         \
    X(NOTSUP, -6, "not supported")                                             \
    X(MPI, -7, "MPI error")                                                    \
    X(CUDA, -8, "CUDA error")                                                  \
    X(NCCL, -9, "NCCL error")                                                  \
    X(TIMEDOUT, -10, "timed out")                                              \
    X(MISMATCH, -11, "ranks disagree")                                         \
    X(NONFINITE, -12, "non-finite value")                                      \
    X(BUSY, -13, "resource busy")                                              \
    X(NOENT, -14, "no such file or entry")                                     \
    X(SYS, -15, "system call failed")                                          \
    X(ABORTED, -16, "operation aborted")                                       \
    X(CORRUPT, -17, "data corrupt (checksum mismatch)")                        \
    X(STOPPED, -18, "stopped on request (a signal)")

enum {
#define RT__ERR_ENUM(name, value, text) RT_E##name = (value),
    RT_ERRNO_MAP(RT__ERR_ENUM)
#undef RT__ERR_ENUM
};

/* Text for an RT_E... code (or "success" for 0). Never NULL. */
const char *rt_strerror(int code);

/* Logging. Every line is prefixed "[host:rank] " once rt_log_set_rank() was
 * called, so multi-rank output can be told apart. */
void rt_log_set_rank(int rank);
void rt_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void rt_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void rt_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Fills buf with "host:rank" (or "host" before the rank is known). */
void rt_log_prefix(char *buf, size_t bytes);

/* A shell's exit code for a waitpid() status: the exit status, or 128 +
 * the signal that ended the process (1 for anything else). */
int rt_exit_code_of_status(int status);

/* Monotonic clock in seconds. */
double rt_now(void);

/* Aligned allocation (alignment a power of two >= sizeof(void *)); free with
 * rt_free_aligned(), which accepts NULL. Memory is zeroed. */
void *rt_alloc_aligned(size_t bytes, size_t alignment);
void rt_free_aligned(void *ptr);

/* Round up to a multiple of align (a power of two). */
static inline size_t rt_align_up(size_t value, size_t align)
{
    return (value + align - 1) & ~(align - 1);
}

/* CRC-32C (Castagnoli), as used by checkpoints. crc starts at 0. */
uint32_t rt_crc32c(uint32_t crc, const void *data, size_t bytes);

/* FNV-1a 64-bit, for hashing shapes and settings. h starts at RT_FNV_OFFSET. */
#define RT_FNV_OFFSET UINT64_C(0xcbf29ce484222325)
uint64_t rt_fnv1a(uint64_t h, const void *data, size_t bytes);

/* Parse a whole decimal string into [min, max]; returns RT_EINVAL on junk,
 * RT_ERANGE when out of bounds. Accepts a K/M/G suffix (powers of 1024) when
 * allow_suffix is set. */
int rt_parse_u64(const char *text, uint64_t min, uint64_t max, int allow_suffix,
                 uint64_t *out);
int rt_parse_double(const char *text, double min, double max, double *out);

/* Files (common/files.c). Atomic, symlink-safe writes: the data goes to a new
 * temporary file next to path made with O_EXCL (a name planted in advance,
 * symlink or not, is never opened), then fchmod(mode), fsync, rename over
 * path (a symlink there is replaced, not followed), fsync of the directory.
 * On failure the temporary file is removed, path is untouched and err names
 * the path, the step and errno's text. Returns 0, RT_ENOENT (no such
 * directory), RT_EINVAL (unusable name) or RT_EIO. */
typedef struct {
    int fd;
    unsigned mode;
    char path[4096];
    char tmp[4096 + 16];
} rt_atomic_file_t;

int rt_atomic_open(rt_atomic_file_t *f, const char *path, unsigned mode, char *err,
                   size_t err_bytes);
int rt_atomic_write(rt_atomic_file_t *f, const void *data, size_t bytes, char *err,
                    size_t err_bytes);
/* fchmod, fsync, close, rename, fsync of the directory; f is closed after. */
int rt_atomic_commit(rt_atomic_file_t *f, char *err, size_t err_bytes);
/* Closes and removes the temporary file; safe after a failed commit. */
void rt_atomic_abort(rt_atomic_file_t *f);
/* All of it for one buffer. */
int rt_file_write_atomic(const char *path, const void *data, size_t bytes, unsigned mode,
                         char *err, size_t err_bytes);
/* fsync of the directory that holds path; 0 or -1 (errno set). */
int rt_fsync_dir(const char *path);

/* Opens an input that must be a regular file, read-only, without blocking on
 * a FIFO. Symlinks are followed (Kubernetes mounts ConfigMaps through them).
 * Returns 0 with *fd set, RT_ENOENT, RT_EFORMAT (a directory, FIFO, socket or
 * device: err says which) or RT_EIO. */
int rt_open_regular(const char *path, int *fd, char *err, size_t err_bytes);

/* Memory this process can still take (common/memory.c), for refusing work
 * that cannot fit before allocating it: the lower of MemAvailable
 * (/proc/meminfo) and the headroom under the cgroup memory limit (v2
 * memory.max or v1 memory.limit_in_bytes, less the working set: usage less
 * inactive file pages), over this process's cgroup and its parents. */
typedef struct {
    uint64_t available;    /* bytes: the lower bound, UINT64_MAX if unknown */
    uint64_t meminfo;      /* MemAvailable in bytes, UINT64_MAX if unknown */
    uint64_t cgroup_room;  /* headroom under the tightest limit, UINT64_MAX if none */
    uint64_t cgroup_limit, cgroup_used; /* that limit and its working set */
    int by_cgroup;         /* the cgroup limit is the lower bound */
} rt_host_memory_t;

/* 0, or RT_ENOENT when neither bound could be read (available is then
 * UINT64_MAX). */
int rt_host_memory(rt_host_memory_t *m);
/* The same with root prefixed to /proc and /sys (tests). */
int rt_host_memory_at(const char *root, rt_host_memory_t *m);
/* "22.9 GiB available (MemAvailable)" or "... (cgroup memory limit 24.0 GiB,
 * 1.1 GiB in use)". */
void rt_host_memory_describe(const rt_host_memory_t *m, char *buf, size_t len);
/* "310 GiB", "22.9 GiB", "512 MiB". */
void rt_format_bytes(uint64_t bytes, char *buf, size_t len);

#endif
