/* ringtrain worker: synthetic data, IDX (Fashion-MNIST) reading through zlib
 * (plain or gzip files), and the per-rank sampler.
 *
 * IDX files come from outside (a mounted volume, a download): every header
 * field is checked against the model's input and the file's size before
 * anything is allocated, and a gzip stream, whose size is unknown until it is
 * read, never gets more memory than the data it actually holds. */
#include "data.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "common/common.h"
#include "rng.h"

/* Fashion-MNIST pixel statistics (of /255 values), for normalisation. */
#define FMNIST_MEAN 0.2860f
#define FMNIST_STD 0.3530f

void dataset_free(dataset_t *d)
{
    if (!d)
        return;
    free(d->pixels);
    rt_free_aligned(d->floats);
    free(d->labels);
    d->pixels = NULL;
    d->floats = NULL;
    d->labels = NULL;
    d->count = 0;
}

int dataset_synthetic(dataset_t *d, int c, int h, int w, int classes,
                      size_t count, uint64_t seed)
{
    memset(d, 0, sizeof *d);
    d->c = c;
    d->h = h;
    d->w = w;
    d->classes = classes;
    d->count = count;
    size_t per = (size_t)c * (size_t)h * (size_t)w;
    d->floats = rt_alloc_aligned(count * per * sizeof(float), 64);
    d->labels = calloc(count, sizeof(int32_t));
    if (!d->floats || !d->labels) {
        dataset_free(d);
        return RT_ENOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        rng_t r;
        rng_init(&r, seed ^ UINT64_C(0x5eed), i);
        float *img = d->floats + i * per;
        for (size_t j = 0; j < per; j++)
            img[j] = rng_normal(&r);
        d->labels[i] = (int32_t)rng_below(&r, (uint64_t)classes);
    }
    return 0;
}

size_t dataset_memory_bytes(int synthetic, size_t count, size_t per)
{
    return count * (per * (synthetic ? sizeof(float) : 1) + sizeof(int32_t));
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

/* One IDX input, plain or gzip (zlib tells which). A plain file's size is
 * known before anything is allocated; a gzip stream's is not, so its data is
 * read into a buffer that grows only as bytes arrive (see idx_read_alloc). */
typedef struct {
    const char *path;
    gzFile gz;
    int plain;
    uint64_t size;   /* plain: bytes in the file */
    char why[160];   /* after a failed read: what went wrong */
} idx_file_t;

/* gzip data is read into buffers that start at this size and double. */
#define IDX_CHUNK_BYTES ((size_t)1 << 20)

static int idx_open(idx_file_t *f, const char *path, char *err, size_t err_bytes)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    int fd = -1;
    int rc = rt_open_regular(path, &fd, err, err_bytes);
    if (rc) /* unreadable (EACCES, ...): an input to fix, like a missing one */
        return rc == RT_EIO ? RT_EINVAL : rc;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, err_bytes, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return RT_EIO;
    }
    f->size = (uint64_t)st.st_size;
    f->gz = gzdopen(fd, "rb");
    if (!f->gz) {
        close(fd);
        snprintf(err, err_bytes, "%s: cannot open: out of memory", path);
        return RT_ENOMEM;
    }
    if (f->size > (1u << 20)) /* fewer, larger reads for a data set; small files keep 8 KiB */
        gzbuffer(f->gz, 1u << 17);
    f->plain = gzdirect(f->gz);
    return 0;
}

static void idx_close(idx_file_t *f)
{
    if (f->gz)
        gzclose(f->gz);
    f->gz = NULL;
}

/* Why gzread stopped: RT_EFORMAT at the end of the data (f->why
 * "truncated", a cut gzip stream too) or for a corrupt gzip stream, RT_EIO or
 * RT_ENOMEM otherwise. */
static int idx_read_failure(idx_file_t *f)
{
    int zerr = Z_OK;
    const char *msg = gzerror(f->gz, &zerr);
    if (zerr == Z_OK || zerr == Z_BUF_ERROR) { /* Z_BUF_ERROR: a cut gzip stream */
        snprintf(f->why, sizeof f->why, "truncated");
        return RT_EFORMAT;
    }
    if (zerr == Z_ERRNO) {
        snprintf(f->why, sizeof f->why, "read error: %s", strerror(errno));
        return RT_EIO;
    }
    if (zerr == Z_MEM_ERROR) {
        snprintf(f->why, sizeof f->why, "out of memory while decompressing");
        return RT_ENOMEM;
    }
    /* zlib names the stream "<fd:N>: "; the caller names the file. */
    const char *sep = strncmp(msg, "<fd:", 4) == 0 ? strstr(msg, ": ") : NULL;
    snprintf(f->why, sizeof f->why, "corrupt gzip data (zlib: %s)", sep ? sep + 2 : msg);
    return RT_EFORMAT;
}

/* Reads exactly `bytes` unless the data ends or breaks first; *got says how
 * many came. 0, or the code of idx_read_failure with f->why set. */
static int idx_read(idx_file_t *f, void *buf, size_t bytes, size_t *got)
{
    unsigned char *p = buf;
    *got = 0;
    while (*got < bytes) {
        size_t want = bytes - *got;
        if (want > (1u << 30))
            want = 1u << 30;
        int n = gzread(f->gz, p + *got, (unsigned)want);
        if (n <= 0)
            return idx_read_failure(f);
        *got += (size_t)n;
    }
    return 0;
}

/* `bytes` of data into a new buffer. Plain files were checked against their
 * size already; a gzip stream gets a buffer that doubles from 1 MiB as data
 * arrives, so a header claiming more than the stream holds costs at most
 * twice what it holds (or 1 MiB), never what the header claims. The copies
 * add at most twice the data to the inflating, which dominates anyway. */
static int idx_read_alloc(idx_file_t *f, size_t bytes, unsigned char **out, size_t *got)
{
    size_t cap = f->plain || bytes < IDX_CHUNK_BYTES ? bytes : IDX_CHUNK_BYTES;
    unsigned char *buf = malloc(cap ? cap : 1);
    *got = 0;
    int rc = buf ? 0 : RT_ENOMEM;
    while (!rc) {
        size_t n = 0;
        rc = idx_read(f, buf + *got, cap - *got, &n);
        *got += n;
        if (rc || *got == bytes)
            break;
        size_t next = cap > bytes / 2 ? bytes : 2 * cap;
        unsigned char *grown = realloc(buf, next);
        if (!grown) {
            rc = RT_ENOMEM;
        } else {
            buf = grown;
            cap = next;
        }
    }
    if (rc == RT_ENOMEM && !f->why[0])
        snprintf(f->why, sizeof f->why, "out of memory after %zu bytes", *got);
    if (rc) {
        free(buf);
        buf = NULL;
    }
    *out = buf;
    return rc;
}

/* The header's data size against a plain file's size (before allocating),
 * and against what a gzip stream turned out to hold (after reading). */
static int idx_check_size(idx_file_t *f, uint64_t header_bytes, uint64_t data_bytes,
                          const char *claim, char *err, size_t err_bytes)
{
    uint64_t have = f->size - header_bytes;
    if (!f->plain) {
        unsigned char extra;
        size_t got = 0;
        int rc = idx_read(f, &extra, 1, &got);
        if (rc && strcmp(f->why, "truncated") != 0) {
            snprintf(err, err_bytes, "%s: %s", f->path, f->why);
            return rc;
        }
        have = rc ? data_bytes : data_bytes + 1; /* +1: at least */
    }
    if (have < data_bytes) {
        snprintf(err, err_bytes, "%s: truncated: the header says %s (%llu bytes), the file "
                 "has %llu after the header", f->path, claim, (unsigned long long)data_bytes,
                 (unsigned long long)have);
        return RT_EFORMAT;
    }
    if (have > data_bytes) {
        snprintf(err, err_bytes, "%s: the header says %s (%llu bytes) but the file has %s%llu "
                 "after the header; the header and the data disagree", f->path, claim,
                 (unsigned long long)data_bytes, f->plain ? "" : "more than ",
                 (unsigned long long)(f->plain ? have : data_bytes));
        return RT_EFORMAT;
    }
    return 0;
}

/* A header of `bytes` whose first word must be `magic` (IDX: 0x8 = unsigned
 * bytes, then the number of dimensions). */
static int idx_read_header(idx_file_t *f, unsigned char *hdr, size_t bytes, uint32_t magic,
                           const char *holds, char *err, size_t err_bytes)
{
    size_t got = 0;
    int rc = idx_read(f, hdr, bytes, &got);
    if (rc && strcmp(f->why, "truncated") == 0)
        snprintf(err, err_bytes, "%s: truncated: the IDX header needs %zu bytes, the file has %zu",
                 f->path, bytes, got);
    else if (rc)
        snprintf(err, err_bytes, "%s: %s", f->path, f->why);
    if (!rc && be32(hdr) != magic) {
        snprintf(err, err_bytes, "%s: bad magic 0x%08x, expected 0x%08x (IDX unsigned-byte %s); "
                 "is this %s?", f->path, be32(hdr), magic, holds,
                 magic == 0x803u ? "an image file" : "a label file");
        rc = RT_EFORMAT;
    }
    return rc;
}

/* Images: a count, and the model's own height and width. */
static int idx_image_header(idx_file_t *f, const dataset_shape_t *want, uint32_t *count,
                            char *err, size_t err_bytes)
{
    unsigned char hdr[16];
    int rc = idx_read_header(f, hdr, sizeof hdr, 0x803u, "3-D images", err, err_bytes);
    if (rc)
        return rc;
    uint32_t n = be32(hdr + 4), h = be32(hdr + 8), w = be32(hdr + 12);
    if (n == 0) {
        snprintf(err, err_bytes, "%s: the header says 0 images; give a file with data", f->path);
        return RT_EFORMAT;
    }
    if (want->c != 1 || h != (uint32_t)want->h || w != (uint32_t)want->w) {
        snprintf(err, err_bytes, "%s: the header says images of 1x%ux%u, the model takes "
                 "%dx%dx%d; give IDX files of %dx%d images", f->path, h, w, want->c, want->h,
                 want->w, want->h, want->w);
        return RT_EFORMAT;
    }
    *count = n;
    return 0;
}

/* Labels: as many as there are images. */
static int idx_label_header(idx_file_t *f, const char *images_path, uint32_t images,
                            char *err, size_t err_bytes)
{
    unsigned char hdr[8];
    int rc = idx_read_header(f, hdr, sizeof hdr, 0x801u, "1-D labels", err, err_bytes);
    if (rc)
        return rc;
    if (be32(hdr + 4) != images) {
        snprintf(err, err_bytes, "%s has %u labels but %s has %u images; they must match",
                 f->path, be32(hdr + 4), images_path, images);
        return RT_EFORMAT;
    }
    return 0;
}

/* One data block (a plain file's size was checked already); a gzip stream
 * is checked for data past the end. */
static int idx_read_data(idx_file_t *f, uint64_t header_bytes, size_t bytes,
                         const char *claim, unsigned char **out, char *err, size_t err_bytes)
{
    size_t got = 0;
    int rc = idx_read_alloc(f, bytes, out, &got);
    if (rc == RT_EFORMAT && strcmp(f->why, "truncated") == 0)
        snprintf(err, err_bytes, "%s: truncated: the header says %s (%zu bytes), the file has "
                 "%zu after the header", f->path, claim, bytes, got);
    else if (rc)
        snprintf(err, err_bytes, "%s: %s", f->path, f->why);
    if (!rc && !f->plain)
        rc = idx_check_size(f, header_bytes, bytes, claim, err, err_bytes);
    return rc;
}

static int idx_labels_to_int(dataset_t *d, const unsigned char *raw, const char *path,
                             char *err, size_t err_bytes)
{
    d->labels = malloc(d->count * sizeof(int32_t));
    if (!d->labels) {
        snprintf(err, err_bytes, "%s: out of memory for %zu labels", path, d->count);
        return RT_ENOMEM;
    }
    for (size_t i = 0; i < d->count; i++) {
        if (raw[i] >= d->classes) {
            snprintf(err, err_bytes, "%s: label %u of sample %zu is not below %d classes",
                     path, raw[i], i, d->classes);
            return RT_EFORMAT;
        }
        d->labels[i] = raw[i];
    }
    return 0;
}

/* Both headers are checked (against each other, the model and the files'
 * sizes) before any data is allocated. */
int dataset_load_idx(dataset_t *d, const char *images_path, const char *labels_path,
                     const dataset_shape_t *want, char *err, size_t err_bytes)
{
    memset(d, 0, sizeof *d);
    d->classes = want->classes;
    idx_file_t fi, fl;
    memset(&fl, 0, sizeof fl);
    unsigned char *raw = NULL;
    uint32_t n = 0;
    int rc = idx_open(&fi, images_path, err, err_bytes);
    if (!rc)
        rc = idx_open(&fl, labels_path, err, err_bytes);
    if (!rc)
        rc = idx_image_header(&fi, want, &n, err, err_bytes);
    if (!rc)
        rc = idx_label_header(&fl, images_path, n, err, err_bytes);
    char claim[64], lclaim[64];
    snprintf(claim, sizeof claim, "%u images of %dx%d", n, want->h, want->w);
    snprintf(lclaim, sizeof lclaim, "%u labels", n);
    size_t bytes = (size_t)n * (size_t)want->h * (size_t)want->w;
    if (!rc && fi.plain) /* both sizes before either allocation */
        rc = idx_check_size(&fi, 16, bytes, claim, err, err_bytes);
    if (!rc && fl.plain)
        rc = idx_check_size(&fl, 8, n, lclaim, err, err_bytes);
    if (!rc)
        rc = idx_read_data(&fi, 16, bytes, claim, &d->pixels, err, err_bytes);
    if (!rc)
        rc = idx_read_data(&fl, 8, n, lclaim, &raw, err, err_bytes);
    d->c = 1;
    d->h = want->h;
    d->w = want->w;
    d->count = n;
    if (!rc)
        rc = idx_labels_to_int(d, raw, labels_path, err, err_bytes);
    free(raw);
    idx_close(&fi);
    idx_close(&fl);
    if (rc)
        dataset_free(d);
    return rc;
}

/* dir/name, or dir/name.gz when only that exists. */
static void find_file(char *out, size_t bytes, const char *dir, const char *name)
{
    snprintf(out, bytes, "%s/%s", dir, name);
    if (access(out, F_OK) == 0)
        return;
    char gz[4096];
    snprintf(gz, sizeof gz, "%s/%s.gz", dir, name);
    if (access(gz, F_OK) == 0)
        snprintf(out, bytes, "%s", gz);
}

int dataset_load_fashion_mnist(dataset_t *train, dataset_t *test, const char *dir,
                               const dataset_shape_t *want, char *err, size_t err_bytes)
{
    char img[4096], lab[4096];
    find_file(img, sizeof img, dir, "train-images-idx3-ubyte");
    find_file(lab, sizeof lab, dir, "train-labels-idx1-ubyte");
    int rc = dataset_load_idx(train, img, lab, want, err, err_bytes);
    if (rc || !test)
        return rc;
    find_file(img, sizeof img, dir, "t10k-images-idx3-ubyte");
    find_file(lab, sizeof lab, dir, "t10k-labels-idx1-ubyte");
    rc = dataset_load_idx(test, img, lab, want, err, err_bytes);
    if (rc)
        dataset_free(train);
    return rc;
}

static void normalise_pixels(float *out, const uint8_t *in, size_t count)
{
    const float scale = 1.0f / (255.0f * FMNIST_STD);
    const float shift = FMNIST_MEAN / FMNIST_STD;
    for (size_t i = 0; i < count; i++)
        out[i] = (float)in[i] * scale - shift;
}

void dataset_copy_range(const dataset_t *d, size_t first, size_t count,
                        float *images, int32_t *labels)
{
    size_t per = (size_t)d->c * (size_t)d->h * (size_t)d->w;
    if (d->floats)
        memcpy(images, d->floats + first * per, count * per * sizeof(float));
    else
        normalise_pixels(images, d->pixels + first * per, count * per);
    memcpy(labels, d->labels + first, count * sizeof(int32_t));
}

int sampler_init(sampler_t *s, const dataset_t *ds, int rank, int ranks,
                 int batch, int shuffle, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->ds = ds;
    s->rank = rank;
    s->ranks = ranks;
    s->batch = batch;
    s->shuffle = shuffle;
    s->seed = seed;
    s->epoch = -1;
    size_t global = (size_t)batch * (size_t)ranks;
    s->steps_per_epoch = ds->count / global;
    if (s->steps_per_epoch == 0)
        return RT_EINVAL;
    size_t per = (size_t)ds->c * (size_t)ds->h * (size_t)ds->w;
    s->perm = malloc(ds->count * sizeof(uint32_t));
    s->images = rt_alloc_aligned((size_t)batch * per * sizeof(float), 64);
    s->labels = malloc((size_t)batch * sizeof(int32_t));
    s->indices = malloc((size_t)batch * sizeof(uint32_t));
    if (!s->perm || !s->images || !s->labels || !s->indices) {
        sampler_free(s);
        return RT_ENOMEM;
    }
    return 0;
}

size_t sampler_memory_bytes(size_t count, int batch, size_t per)
{
    return count * sizeof(uint32_t) + (size_t)batch * (per * sizeof(float) + sizeof(int32_t));
}

void sampler_free(sampler_t *s)
{
    if (!s)
        return;
    free(s->perm);
    rt_free_aligned(s->images);
    free(s->labels);
    free(s->indices);
    s->perm = NULL;
    s->images = NULL;
    s->labels = NULL;
    s->indices = NULL;
}

/* Fisher-Yates with a generator seeded by (seed, epoch) only. */
static void make_permutation(sampler_t *s, long epoch)
{
    size_t count = s->ds->count;
    for (size_t i = 0; i < count; i++)
        s->perm[i] = (uint32_t)i;
    if (s->shuffle) {
        rng_t r;
        rng_init(&r, s->seed ^ UINT64_C(0xda7a), (uint64_t)epoch);
        for (size_t i = count - 1; i > 0; i--) {
            size_t j = (size_t)rng_below(&r, (uint64_t)i + 1);
            uint32_t t = s->perm[i];
            s->perm[i] = s->perm[j];
            s->perm[j] = t;
        }
    }
    s->epoch = epoch;
}

size_t sampler_global_batch(const sampler_t *s)
{
    return (size_t)s->batch * (size_t)s->ranks;
}

sampler_pos_t sampler_pos_at_step(const sampler_t *s, uint64_t step)
{
    sampler_pos_t p = {step / s->steps_per_epoch,
                       (step % s->steps_per_epoch) * sampler_global_batch(s)};
    return p;
}

void sampler_pos_fit(const sampler_t *s, sampler_pos_t *p)
{
    if (p->sample + sampler_global_batch(s) > s->ds->count) {
        p->epoch++;
        p->sample = 0;
    }
}

void sampler_pos_advance(const sampler_t *s, sampler_pos_t *p)
{
    p->sample += sampler_global_batch(s);
    sampler_pos_fit(s, p);
}

uint64_t sampler_steps_until(const sampler_t *s, sampler_pos_t p, double epochs)
{
    uint64_t spe = s->steps_per_epoch, global = sampler_global_batch(s);
    uint64_t last = (uint64_t)floor(epochs);
    /* As ceil(epochs x spe) counts them for a run that never resized. */
    uint64_t in_last = (uint64_t)ceil(epochs * (double)spe) - last * spe;
    if (p.epoch > last)
        return 0;
    if (p.epoch == last) {
        uint64_t end = in_last * global;
        return p.sample >= end ? 0 : (end - p.sample + global - 1) / global;
    }
    uint64_t rest = p.sample < s->ds->count ? (s->ds->count - p.sample) / global : 0;
    return rest + (last - p.epoch - 1) * spe + in_last;
}

void sampler_batch_at(sampler_t *s, sampler_pos_t p, const float **images,
                      const int32_t **labels)
{
    const dataset_t *d = s->ds;
    size_t per = (size_t)d->c * (size_t)d->h * (size_t)d->w;
    size_t first = (size_t)p.sample + (size_t)s->rank * (size_t)s->batch;
    if (!s->shuffle && d->floats) {
        /* Synthetic data is used in place. */
        for (int i = 0; i < s->batch; i++)
            s->indices[i] = (uint32_t)(first + (size_t)i);
        *images = d->floats + first * per;
        *labels = d->labels + first;
        return;
    }
    if ((long)p.epoch != s->epoch)
        make_permutation(s, (long)p.epoch);
    for (int i = 0; i < s->batch; i++) {
        uint32_t idx = s->perm[first + (size_t)i];
        s->indices[i] = idx;
        dataset_copy_range(d, idx, 1, s->images + (size_t)i * per, s->labels + i);
    }
    *images = s->images;
    *labels = s->labels;
}

void sampler_batch(sampler_t *s, uint64_t step, const float **images,
                   const int32_t **labels)
{
    sampler_batch_at(s, sampler_pos_at_step(s, step), images, labels);
}
