/* ringtrain worker: synthetic data, IDX (Fashion-MNIST) reading through zlib
 * (plain or gzip files), and the per-rank sampler. */
#include "data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

/* Reads exactly `bytes` from a (possibly gzip) file; RT_EFORMAT if it ends
 * early, RT_EIO on a read or decompression error. */
static int read_exact(gzFile f, void *buf, size_t bytes, size_t *got)
{
    unsigned char *p = buf;
    *got = 0;
    while (*got < bytes) {
        size_t want = bytes - *got;
        if (want > (1u << 30))
            want = 1u << 30;
        int n = gzread(f, p + *got, (unsigned)want);
        if (n < 0)
            return RT_EIO;
        if (n == 0)
            return RT_EFORMAT;
        *got += (size_t)n;
    }
    return 0;
}

static int open_gz(const char *path, gzFile *out, char *err, size_t err_bytes)
{
    if (access(path, R_OK) != 0) {
        snprintf(err, err_bytes, "%s: %s", path, strerror(errno));
        return RT_ENOENT;
    }
    *out = gzopen(path, "rb");
    if (!*out) {
        snprintf(err, err_bytes, "%s: cannot open: %s", path, strerror(errno));
        return RT_EIO;
    }
    return 0;
}

int dataset_load_idx(dataset_t *d, const char *images_path,
                     const char *labels_path, int classes, char *err,
                     size_t err_bytes)
{
    memset(d, 0, sizeof *d);
    d->classes = classes;
    gzFile fi = NULL, fl = NULL;
    int rc = open_gz(images_path, &fi, err, err_bytes);
    if (rc)
        return rc;
    rc = open_gz(labels_path, &fl, err, err_bytes);
    if (rc) {
        gzclose(fi);
        return rc;
    }
    unsigned char hdr[16];
    size_t got = 0;
    rc = read_exact(fi, hdr, 16, &got);
    if (rc) {
        snprintf(err, err_bytes, "%s: %s: the IDX header needs 16 bytes, the file has %zu",
                 images_path, rc == RT_EIO ? "read error (corrupt gzip?)" : "truncated", got);
        goto fail;
    }
    if (be32(hdr) != 0x00000803u) {
        snprintf(err, err_bytes,
                 "%s: bad magic 0x%08x, expected 0x00000803 (IDX unsigned-byte 3-D images); is this an image file?",
                 images_path, be32(hdr));
        rc = RT_EFORMAT;
        goto fail;
    }
    uint32_t n = be32(hdr + 4), h = be32(hdr + 8), w = be32(hdr + 12);
    if (n == 0 || h == 0 || w == 0 || h > 4096 || w > 4096 || n > 100000000u) {
        snprintf(err, err_bytes, "%s: implausible dimensions %u x %u x %u", images_path, n, h, w);
        rc = RT_EFORMAT;
        goto fail;
    }
    unsigned char lhdr[8];
    rc = read_exact(fl, lhdr, 8, &got);
    if (rc) {
        snprintf(err, err_bytes, "%s: %s: the IDX header needs 8 bytes, the file has %zu",
                 labels_path, rc == RT_EIO ? "read error (corrupt gzip?)" : "truncated", got);
        goto fail;
    }
    if (be32(lhdr) != 0x00000801u) {
        snprintf(err, err_bytes,
                 "%s: bad magic 0x%08x, expected 0x00000801 (IDX unsigned-byte 1-D labels); is this a label file?",
                 labels_path, be32(lhdr));
        rc = RT_EFORMAT;
        goto fail;
    }
    uint32_t nl = be32(lhdr + 4);
    if (nl != n) {
        snprintf(err, err_bytes, "%s has %u labels but %s has %u images; they must match",
                 labels_path, nl, images_path, n);
        rc = RT_EFORMAT;
        goto fail;
    }
    d->c = 1;
    d->h = (int)h;
    d->w = (int)w;
    d->count = n;
    size_t bytes = (size_t)n * h * w;
    d->pixels = malloc(bytes);
    d->labels = malloc((size_t)n * sizeof(int32_t));
    unsigned char *raw = malloc(n);
    if (!d->pixels || !d->labels || !raw) {
        free(raw);
        snprintf(err, err_bytes, "%s: out of memory", images_path);
        rc = RT_ENOMEM;
        goto fail;
    }
    rc = read_exact(fi, d->pixels, bytes, &got);
    if (rc) {
        free(raw);
        snprintf(err, err_bytes,
                 "%s: %s: the header says %u images of %ux%u (%zu bytes of pixels), the file has %zu",
                 images_path, rc == RT_EIO ? "read error (corrupt gzip?)" : "truncated",
                 n, h, w, bytes, got);
        goto fail;
    }
    rc = read_exact(fl, raw, n, &got);
    if (rc) {
        free(raw);
        snprintf(err, err_bytes, "%s: %s: the header says %u labels, the file has %zu",
                 labels_path, rc == RT_EIO ? "read error (corrupt gzip?)" : "truncated", n, got);
        goto fail;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (raw[i] >= classes) {
            snprintf(err, err_bytes, "%s: label %u of sample %u is not below %d classes",
                     labels_path, raw[i], i, classes);
            free(raw);
            rc = RT_EFORMAT;
            goto fail;
        }
        d->labels[i] = raw[i];
    }
    free(raw);
    gzclose(fi);
    gzclose(fl);
    return 0;
fail:
    gzclose(fi);
    gzclose(fl);
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

int dataset_load_fashion_mnist(dataset_t *train, dataset_t *test,
                               const char *dir, char *err, size_t err_bytes)
{
    char img[4096], lab[4096];
    find_file(img, sizeof img, dir, "train-images-idx3-ubyte");
    find_file(lab, sizeof lab, dir, "train-labels-idx1-ubyte");
    int rc = dataset_load_idx(train, img, lab, 10, err, err_bytes);
    if (rc || !test)
        return rc;
    find_file(img, sizeof img, dir, "t10k-images-idx3-ubyte");
    find_file(lab, sizeof lab, dir, "t10k-labels-idx1-ubyte");
    rc = dataset_load_idx(test, img, lab, 10, err, err_bytes);
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
    if (!s->perm || !s->images || !s->labels) {
        sampler_free(s);
        return RT_ENOMEM;
    }
    return 0;
}

void sampler_free(sampler_t *s)
{
    if (!s)
        return;
    free(s->perm);
    rt_free_aligned(s->images);
    free(s->labels);
    s->perm = NULL;
    s->images = NULL;
    s->labels = NULL;
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

void sampler_batch(sampler_t *s, uint64_t step, const float **images,
                   const int32_t **labels)
{
    const dataset_t *d = s->ds;
    size_t per = (size_t)d->c * (size_t)d->h * (size_t)d->w;
    long epoch = (long)(step / s->steps_per_epoch);
    size_t within = (size_t)(step % s->steps_per_epoch);
    size_t first = within * (size_t)s->batch * (size_t)s->ranks +
                   (size_t)s->rank * (size_t)s->batch;
    if (!s->shuffle && d->floats) {
        /* Synthetic data is used in place. */
        *images = d->floats + first * per;
        *labels = d->labels + first;
        return;
    }
    if (epoch != s->epoch)
        make_permutation(s, epoch);
    for (int i = 0; i < s->batch; i++) {
        uint32_t idx = s->perm[first + (size_t)i];
        dataset_copy_range(d, idx, 1, s->images + (size_t)i * per, s->labels + i);
    }
    *images = s->images;
    *labels = s->labels;
}
