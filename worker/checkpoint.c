/* ringtrain worker: checkpoint encoding, atomic writes and newest-valid
 * loading. The decoder works on a memory buffer so the same code checks
 * files and is fuzzed (tests/fuzz). */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"

static const unsigned char MAGIC[8] = {'R', 'T', 'C', 'K', 'P', 'T', 0, 1};

enum {
    OFF_MAGIC = 0,
    OFF_VERSION = 8,
    OFF_HEADER_BYTES = 12,
    OFF_MODEL_HASH = 16,
    OFF_STEP = 24,
    OFF_SEED = 32,
    OFF_ARENA = 40,
    OFF_STATE = 48,
    OFF_RANKS = 56,
    OFF_BATCH = 60,
    OFF_PAYLOAD_BYTES = 64,
    OFF_PAYLOAD_CRC = 72,
    OFF_HEADER_CRC = CKPT_HEADER_BYTES - 4,
};

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint64_t payload_bytes(const ckpt_info_t *info)
{
    return (2 * info->arena_floats + info->state_floats) * sizeof(float);
}

size_t ckpt_file_bytes(const ckpt_info_t *info)
{
    return CKPT_HEADER_BYTES + (size_t)payload_bytes(info);
}

static uint32_t payload_crc(const ckpt_info_t *info, const ckpt_data_t *data)
{
    size_t arena = (size_t)info->arena_floats * sizeof(float);
    uint32_t crc = rt_crc32c(0, data->params, arena);
    crc = rt_crc32c(crc, data->momentum, arena);
    return rt_crc32c(crc, data->state, (size_t)info->state_floats * sizeof(float));
}

static void encode_header(unsigned char *h, const ckpt_info_t *info, uint32_t crc)
{
    memset(h, 0, CKPT_HEADER_BYTES);
    memcpy(h + OFF_MAGIC, MAGIC, sizeof MAGIC);
    put32(h + OFF_VERSION, CKPT_VERSION);
    put32(h + OFF_HEADER_BYTES, CKPT_HEADER_BYTES);
    put64(h + OFF_MODEL_HASH, info->model_hash);
    put64(h + OFF_STEP, info->step);
    put64(h + OFF_SEED, info->seed);
    put64(h + OFF_ARENA, info->arena_floats);
    put64(h + OFF_STATE, info->state_floats);
    put32(h + OFF_RANKS, info->ranks);
    put32(h + OFF_BATCH, info->batch);
    put64(h + OFF_PAYLOAD_BYTES, payload_bytes(info));
    put32(h + OFF_PAYLOAD_CRC, crc);
    put32(h + OFF_HEADER_CRC, rt_crc32c(0, h, OFF_HEADER_CRC));
}

void ckpt_encode(unsigned char *out, const ckpt_info_t *info,
                 const ckpt_data_t *data)
{
    encode_header(out, info, payload_crc(info, data));
    size_t arena = (size_t)info->arena_floats * sizeof(float);
    unsigned char *p = out + CKPT_HEADER_BYTES;
    memcpy(p, data->params, arena);
    memcpy(p + arena, data->momentum, arena);
    memcpy(p + 2 * arena, data->state, (size_t)info->state_floats * sizeof(float));
}

int ckpt_decode(const unsigned char *buf, size_t bytes, const ckpt_info_t *expect,
                ckpt_info_t *info, ckpt_data_t *data, char *err, size_t err_bytes)
{
    if (bytes < CKPT_HEADER_BYTES) {
        snprintf(err, err_bytes, "truncated: %zu bytes, a header alone is %d", bytes,
                 CKPT_HEADER_BYTES);
        return RT_EFORMAT;
    }
    if (memcmp(buf, MAGIC, sizeof MAGIC) != 0) {
        snprintf(err, err_bytes, "not a ringtrain checkpoint (bad magic)");
        return RT_EFORMAT;
    }
    if (get32(buf + OFF_HEADER_CRC) != rt_crc32c(0, buf, OFF_HEADER_CRC)) {
        snprintf(err, err_bytes, "header checksum mismatch (corrupt header)");
        return RT_ECORRUPT;
    }
    uint32_t version = get32(buf + OFF_VERSION);
    if (version != CKPT_VERSION || get32(buf + OFF_HEADER_BYTES) != CKPT_HEADER_BYTES) {
        snprintf(err, err_bytes, "version %u is not supported (this build reads %d)",
                 version, CKPT_VERSION);
        return RT_EFORMAT;
    }
    /* The bytes between the payload CRC and the header CRC are written as
     * zeros; anything else was not written by this version, and accepting
     * it would make a checkpoint that does not re-encode to itself. */
    for (size_t k = OFF_PAYLOAD_CRC + 4; k < OFF_HEADER_CRC; k++) {
        if (buf[k] != 0) {
            snprintf(err, err_bytes, "reserved header byte %zu is not zero (not written by this "
                     "version)", k);
            return RT_EFORMAT;
        }
    }
    ckpt_info_t got = {
        .model_hash = get64(buf + OFF_MODEL_HASH),
        .step = get64(buf + OFF_STEP),
        .seed = get64(buf + OFF_SEED),
        .arena_floats = get64(buf + OFF_ARENA),
        .state_floats = get64(buf + OFF_STATE),
        .ranks = get32(buf + OFF_RANKS),
        .batch = get32(buf + OFF_BATCH),
    };
    if (got.model_hash != expect->model_hash || got.arena_floats != expect->arena_floats ||
        got.state_floats != expect->state_floats) {
        snprintf(err, err_bytes,
                 "written for another model or layout (hash %016llx, %llu parameters) "
                 "than this run's (hash %016llx, %llu)",
                 (unsigned long long)got.model_hash, (unsigned long long)got.arena_floats,
                 (unsigned long long)expect->model_hash,
                 (unsigned long long)expect->arena_floats);
        return RT_EMISMATCH;
    }
    uint64_t want = payload_bytes(&got);
    if (get64(buf + OFF_PAYLOAD_BYTES) != want ||
        bytes - CKPT_HEADER_BYTES != want) {
        snprintf(err, err_bytes, "%s: payload is %zu bytes, the header needs %llu",
                 bytes - CKPT_HEADER_BYTES < want ? "truncated" : "trailing data",
                 bytes - CKPT_HEADER_BYTES, (unsigned long long)want);
        return RT_EFORMAT;
    }
    const unsigned char *p = buf + CKPT_HEADER_BYTES;
    if (rt_crc32c(0, p, (size_t)want) != get32(buf + OFF_PAYLOAD_CRC)) {
        snprintf(err, err_bytes, "payload checksum mismatch (corrupt data)");
        return RT_ECORRUPT;
    }
    if (info)
        *info = got;
    if (data) {
        size_t arena = (size_t)got.arena_floats * sizeof(float);
        memcpy(data->params, p, arena);
        memcpy(data->momentum, p + arena, arena);
        memcpy(data->state, p + 2 * arena, (size_t)got.state_floats * sizeof(float));
    }
    return 0;
}

static int write_all(int fd, const void *buf, size_t bytes)
{
    const unsigned char *p = buf;
    while (bytes > 0) {
        ssize_t n = write(fd, p, bytes > (1u << 30) ? (1u << 30) : bytes);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        bytes -= (size_t)n;
    }
    return 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Step of a file named ckpt-<12 digits>.rtck, or -1. */
static long long parse_name(const char *name)
{
    if (strlen(name) != 22 || strncmp(name, "ckpt-", 5) != 0 ||
        strcmp(name + 17, ".rtck") != 0)
        return -1;
    long long step = 0;
    for (int i = 5; i < 17; i++) {
        if (name[i] < '0' || name[i] > '9')
            return -1;
        step = step * 10 + (name[i] - '0');
    }
    return step;
}

static int cmp_desc(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x < y) - (x > y);
}

/* Steps of the checkpoints in dir, newest first; *count of them. */
static long long *list_steps(const char *dir, size_t *count)
{
    *count = 0;
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    size_t cap = 16;
    long long *steps = malloc(cap * sizeof *steps);
    struct dirent *e;
    while (steps && (e = readdir(d)) != NULL) {
        long long step = parse_name(e->d_name);
        if (step < 0)
            continue;
        if (*count == cap) {
            long long *grown = realloc(steps, 2 * cap * sizeof *steps);
            if (!grown)
                break;
            steps = grown;
            cap *= 2;
        }
        steps[(*count)++] = step;
    }
    closedir(d);
    if (steps)
        qsort(steps, *count, sizeof *steps, cmp_desc);
    return steps;
}

int ckpt_save(const char *dir, const ckpt_info_t *info, const ckpt_data_t *data,
              int keep, char *path_out, size_t path_bytes, char *err,
              size_t err_bytes)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, err_bytes, "%s: cannot create the directory: %s", dir, strerror(errno));
        return RT_EIO;
    }
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/ckpt-%012llu.rtck", dir, (unsigned long long)info->step);
    snprintf(tmp, sizeof tmp, "%s/.ckpt-%012llu.rtck.tmp.%d", dir,
             (unsigned long long)info->step, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, err_bytes, "%s: cannot create: %s", tmp, strerror(errno));
        return RT_EIO;
    }
    unsigned char header[CKPT_HEADER_BYTES];
    encode_header(header, info, payload_crc(info, data));
    size_t arena = (size_t)info->arena_floats * sizeof(float);
    int bad = write_all(fd, header, sizeof header) || write_all(fd, data->params, arena) ||
              write_all(fd, data->momentum, arena) ||
              write_all(fd, data->state, (size_t)info->state_floats * sizeof(float)) ||
              fsync(fd) != 0;
    int error = errno;
    if (close(fd) != 0 && !bad) {
        bad = 1;
        error = errno;
    }
    if (!bad && rename(tmp, path) != 0) {
        bad = 1;
        error = errno;
    }
    if (bad) {
        snprintf(err, err_bytes, "%s: cannot write: %s", path, strerror(error));
        unlink(tmp);
        return RT_EIO;
    }
    fsync_dir(dir);
    if (path_out)
        snprintf(path_out, path_bytes, "%s", path);
    size_t count = 0;
    long long *steps = list_steps(dir, &count);
    for (size_t i = (size_t)(keep > 0 ? keep : 1); steps && i < count; i++) {
        char old[4096];
        snprintf(old, sizeof old, "%s/ckpt-%012lld.rtck", dir, steps[i]);
        unlink(old);
    }
    free(steps);
    return 0;
}

/* Reads one whole file into a new buffer. */
static unsigned char *read_file(const char *path, size_t limit, size_t *bytes,
                                char *err, size_t err_bytes)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, err_bytes, "cannot open: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    if ((size_t)st.st_size > limit) {
        snprintf(err, err_bytes, "%lld bytes, more than the %zu this model's checkpoint has",
                 (long long)st.st_size, limit);
        close(fd);
        return NULL;
    }
    unsigned char *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (!buf) {
        snprintf(err, err_bytes, "out of memory");
        return NULL;
    }
    *bytes = got;
    return buf;
}

int ckpt_load_latest(const char *dir, const ckpt_info_t *expect,
                     ckpt_info_t *info, ckpt_data_t *data, char *path_out,
                     size_t path_bytes, char *err, size_t err_bytes)
{
    size_t count = 0;
    long long *steps = list_steps(dir, &count);
    if (!steps || count == 0) {
        free(steps);
        snprintf(err, err_bytes, "no checkpoint in %s", dir);
        return RT_ENOENT;
    }
    int rc = RT_ENOENT;
    for (size_t i = 0; i < count; i++) {
        char path[4096], why[512] = "";
        snprintf(path, sizeof path, "%s/ckpt-%012lld.rtck", dir, steps[i]);
        size_t bytes = 0;
        unsigned char *buf = read_file(path, ckpt_file_bytes(expect), &bytes, why, sizeof why);
        /* Validate fully before anything is copied into data. */
        int drc = buf ? ckpt_decode(buf, bytes, expect, info, NULL, why, sizeof why) : RT_EIO;
        if (drc == 0 && info->step != (uint64_t)steps[i]) {
            snprintf(why, sizeof why, "holds step %llu but is named for step %lld",
                     (unsigned long long)info->step, steps[i]);
            drc = RT_ECORRUPT;
        }
        if (drc == 0)
            drc = ckpt_decode(buf, bytes, expect, info, data, why, sizeof why);
        free(buf);
        if (drc == 0) {
            if (path_out)
                snprintf(path_out, path_bytes, "%s", path);
            rc = 0;
            break;
        }
        rt_log_warn("skipping checkpoint %s: %s", path, why);
    }
    free(steps);
    if (rc)
        snprintf(err, err_bytes, "no valid checkpoint in %s (%zu skipped)", dir, count);
    return rc;
}
