/* ringtrain worker: checkpoint encoding, atomic writes and newest-valid
 * loading. The decoder works on a memory buffer so the same code checks
 * files and is fuzzed (tests/fuzz). */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
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
    /* Version 2; zero (reserved) in version 1. */
    OFF_SAMPLE = 76,
    OFF_DATA_COUNT = 80,
    OFF_EPOCH = 84,
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
    uint32_t version = info->version ? info->version : CKPT_VERSION;
    put32(h + OFF_VERSION, version);
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
    if (version >= 2) {
        put32(h + OFF_SAMPLE, info->sample);
        put32(h + OFF_DATA_COUNT, info->data_count);
        put64(h + OFF_EPOCH, info->epoch);
    }
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

/* Checks a header (CKPT_HEADER_BYTES at buf) against expect; fills *got. */
static int decode_header(const unsigned char *buf, const ckpt_info_t *expect, ckpt_info_t *got,
                         char *err, size_t err_bytes)
{
    if (memcmp(buf, MAGIC, sizeof MAGIC) != 0) {
        snprintf(err, err_bytes, "not a ringtrain checkpoint (bad magic)");
        return RT_EFORMAT;
    }
    if (get32(buf + OFF_HEADER_CRC) != rt_crc32c(0, buf, OFF_HEADER_CRC)) {
        snprintf(err, err_bytes, "header checksum mismatch (corrupt header)");
        return RT_ECORRUPT;
    }
    uint32_t version = get32(buf + OFF_VERSION);
    if (version < 1 || version > CKPT_VERSION || get32(buf + OFF_HEADER_BYTES) != CKPT_HEADER_BYTES) {
        snprintf(err, err_bytes, "version %u is not supported (this build reads 1 to %d)",
                 version, CKPT_VERSION);
        return RT_EFORMAT;
    }
    /* Version 1 wrote the bytes between the payload CRC and the header CRC
     * as zeros; anything else was not written by it, and accepting it would
     * make a checkpoint that does not re-encode to itself. */
    for (size_t k = OFF_PAYLOAD_CRC + 4; version == 1 && k < OFF_HEADER_CRC; k++) {
        if (buf[k] != 0) {
            snprintf(err, err_bytes, "reserved header byte %zu is not zero (not written by this "
                     "version)", k);
            return RT_EFORMAT;
        }
    }
    *got = (ckpt_info_t){
        .model_hash = get64(buf + OFF_MODEL_HASH),
        .step = get64(buf + OFF_STEP),
        .seed = get64(buf + OFF_SEED),
        .arena_floats = get64(buf + OFF_ARENA),
        .state_floats = get64(buf + OFF_STATE),
        .ranks = get32(buf + OFF_RANKS),
        .batch = get32(buf + OFF_BATCH),
        .version = version,
        .sample = get32(buf + OFF_SAMPLE),
        .data_count = get32(buf + OFF_DATA_COUNT),
        .epoch = get64(buf + OFF_EPOCH),
    };
    if (got->model_hash != expect->model_hash || got->arena_floats != expect->arena_floats ||
        got->state_floats != expect->state_floats) {
        snprintf(err, err_bytes,
                 "written for another model or layout (hash %016llx, %llu parameters) "
                 "than this run's (hash %016llx, %llu)",
                 (unsigned long long)got->model_hash, (unsigned long long)got->arena_floats,
                 (unsigned long long)expect->model_hash,
                 (unsigned long long)expect->arena_floats);
        return RT_EMISMATCH;
    }
    if (get64(buf + OFF_PAYLOAD_BYTES) != payload_bytes(got)) {
        snprintf(err, err_bytes, "the header's payload size does not match its sizes");
        return RT_EFORMAT;
    }
    return 0;
}

int ckpt_decode(const unsigned char *buf, size_t bytes, const ckpt_info_t *expect,
                ckpt_info_t *info, ckpt_data_t *data, char *err, size_t err_bytes)
{
    if (bytes < CKPT_HEADER_BYTES) {
        snprintf(err, err_bytes, "truncated: %zu bytes, a header alone is %d", bytes,
                 CKPT_HEADER_BYTES);
        return RT_EFORMAT;
    }
    ckpt_info_t got;
    int rc = decode_header(buf, expect, &got, err, err_bytes);
    if (rc)
        return rc;
    uint64_t want = payload_bytes(&got);
    if (bytes - CKPT_HEADER_BYTES != want) {
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

static void path_for(char *out, size_t bytes, const char *dir, unsigned long long step)
{
    snprintf(out, bytes, "%s/ckpt-%012llu.rtck", dir, step);
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

int ckpt_dir_prepare(const char *dir, char *err, size_t err_bytes)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, err_bytes, "cannot create the directory: %s; check that its parent "
                 "exists and is writable", strerror(errno));
        return RT_EIO;
    }
    struct stat st;
    if (stat(dir, &st) != 0) {
        snprintf(err, err_bytes, "cannot use the directory: %s", strerror(errno));
        return RT_EIO;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, err_bytes, "is %s, not a directory; give a directory (it is created "
                 "if missing)", S_ISREG(st.st_mode) ? "a regular file" : "a special file");
        return RT_EIO;
    }
    /* Permission bits say nothing for root, and nothing of a read-only or
     * immutable directory: create a file the way a save does, and remove it. */
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/.ringtrain-write-test", dir);
    rt_atomic_file_t f;
    int rc = rt_atomic_open(&f, probe, 0600, err, err_bytes);
    if (rc)
        return RT_EIO;
    rt_atomic_abort(&f);
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        rt_log_warn("checkpoint directory %s is writable by group or others (mode %04o): "
                    "another user could plant a checkpoint that a run resumes from, or "
                    "remove checkpoints; run chmod go-w %s",
                    dir, (unsigned)(st.st_mode & 07777), dir);
    return 0;
}

/* Header and payload streamed into the one atomic writer: a checkpoint
 * is never written through a name planted in advance. */
static int write_checkpoint(const char *path, const ckpt_info_t *info, const ckpt_data_t *data,
                            char *err, size_t err_bytes)
{
    unsigned char header[CKPT_HEADER_BYTES];
    encode_header(header, info, payload_crc(info, data));
    size_t arena = (size_t)info->arena_floats * sizeof(float);
    rt_atomic_file_t f;
    int rc = rt_atomic_open(&f, path, 0600, err, err_bytes);
    if (rc)
        return rc;
    rc = rt_atomic_write(&f, header, sizeof header, err, err_bytes);
    if (!rc)
        rc = rt_atomic_write(&f, data->params, arena, err, err_bytes);
    if (!rc)
        rc = rt_atomic_write(&f, data->momentum, arena, err, err_bytes);
    if (!rc)
        rc = rt_atomic_write(&f, data->state, (size_t)info->state_floats * sizeof(float), err,
                             err_bytes);
    if (rc) {
        rt_atomic_abort(&f);
        return rc;
    }
    return rt_atomic_commit(&f, err, err_bytes);
}

/* Reads up to bytes; returns how many were read (fewer at end of file or on
 * an error). */
static size_t read_full(int fd, unsigned char *buf, size_t bytes)
{
    size_t got = 0;
    while (got < bytes) {
        ssize_t n = read(fd, buf + got, bytes - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

/* Decodes the header of the regular file path against expect: 0, or
 * decode_header's code (RT_EIO when the file cannot be opened or is
 * shorter than a header); *bytes is the file's size. */
static int read_header(const char *path, const ckpt_info_t *expect, ckpt_info_t *got,
                       uint64_t *bytes, char *why, size_t why_bytes)
{
    int fd;
    if (rt_open_regular(path, &fd, NULL, 0) != 0)
        return RT_EIO;
    unsigned char header[CKPT_HEADER_BYTES];
    struct stat st;
    int rc = RT_EIO;
    if (fstat(fd, &st) == 0 && read_full(fd, header, sizeof header) == sizeof header) {
        *bytes = (uint64_t)st.st_size;
        rc = decode_header(header, expect, got, why, why_bytes);
    }
    close(fd);
    return rc;
}

/* 1 when path is a checkpoint of this model for this step: its header
 * validates and the file has the size the header gives. The payload's CRC
 * is not checked: pruning must not read every old checkpoint in full, and
 * a file with this run's header was written by a run of this model. */
static int is_own_checkpoint(const char *path, uint64_t step, const ckpt_info_t *expect)
{
    ckpt_info_t got;
    uint64_t bytes = 0;
    char why[256];
    return read_header(path, expect, &got, &bytes, why, sizeof why) == 0 &&
           bytes == ckpt_file_bytes(expect) && got.step == step;
}

/* Removes this model's checkpoints beyond the newest `keep`, always keeping
 * the one just written. Anything else under a checkpoint name (garbage,
 * another model's, a FIFO) is left alone and does not count: counting it
 * would delete the new checkpoint at once. */
static void prune(const char *dir, const ckpt_info_t *info, int keep)
{
    size_t count = 0;
    long long *steps = list_steps(dir, &count);
    int kept = 1;
    for (size_t i = 0; steps && i < count; i++) {
        if ((uint64_t)steps[i] == info->step)
            continue;
        char path[4200];
        path_for(path, sizeof path, dir, (unsigned long long)steps[i]);
        if (!is_own_checkpoint(path, (uint64_t)steps[i], info))
            continue;
        if (kept < keep)
            kept++;
        else
            unlink(path);
    }
    free(steps);
}

int ckpt_save(const char *dir, const ckpt_info_t *info, const ckpt_data_t *data,
              int keep, char *path_out, size_t path_bytes, char *err,
              size_t err_bytes)
{
    char path[4200];
    if (strlen(dir) > 4000) {
        snprintf(err, err_bytes, "%.64s...: the directory name is too long", dir);
        return RT_EINVAL;
    }
    path_for(path, sizeof path, dir, (unsigned long long)info->step);
    if (write_checkpoint(path, info, data, err, err_bytes) != 0)
        return RT_EIO;
    if (path_out)
        snprintf(path_out, path_bytes, "%s", path);
    prune(dir, info, keep);
    return 0;
}

/* Reads one whole regular file into a new buffer (a FIFO or a directory
 * under a checkpoint's name is refused at once, not blocked on). */
static unsigned char *read_file(const char *path, size_t limit, size_t *bytes,
                                char *err, size_t err_bytes)
{
    int fd;
    if (rt_open_regular(path, &fd, err, err_bytes) != 0) {
        /* The caller names the file already. */
        size_t len = strlen(path);
        if (strncmp(err, path, len) == 0 && err[len] == ':' && err[len + 1] == ' ')
            memmove(err, err + len + 2, strlen(err + len + 2) + 1);
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, err_bytes, "cannot stat: %s", strerror(errno));
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
    if (!buf) {
        snprintf(err, err_bytes, "out of memory");
        close(fd);
        return NULL;
    }
    *bytes = read_full(fd, buf, (size_t)st.st_size);
    close(fd);
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
        char path[4200], why[512] = "";
        path_for(path, sizeof path, dir, (unsigned long long)steps[i]);
        /* Another model's header stops the search, whatever its size. */
        ckpt_info_t head;
        uint64_t file_bytes = 0;
        if (read_header(path, expect, &head, &file_bytes, why, sizeof why) == RT_EMISMATCH) {
            if (path_out)
                snprintf(path_out, path_bytes, "%s", path);
            snprintf(err, err_bytes, "%s: %s", path, why);
            rc = RT_EMISMATCH;
            break;
        }
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
    if (rc == RT_ENOENT)
        snprintf(err, err_bytes, "no valid checkpoint in %s (%zu skipped)", dir, count);
    return rc;
}
