/* ringtrain worker: training data.
 *
 * Synthetic (tf_cnn_benchmarks behaviour): one fixed set of random images and
 * random labels, made once and reused every step. Sample i of the global
 * batch is a function of (seed, i) only, so rank r of n at batch b sees the
 * same samples as slice r of one rank at batch n*b.
 *
 * Fashion-MNIST: IDX files (plain or .gz). Each epoch is shuffled by a
 * permutation that depends on (seed, epoch) only; every rank computes the
 * same permutation and takes its own disjoint slice of each global batch.
 */
#ifndef RINGTRAIN_WORKER_DATA_H
#define RINGTRAIN_WORKER_DATA_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int c, h, w, classes;
    size_t count;
    uint8_t *pixels;   /* IDX images (count, c*h*w), or NULL */
    float *floats;     /* synthetic images (count, c*h*w), or NULL */
    int32_t *labels;   /* (count) */
} dataset_t;

void dataset_free(dataset_t *d);

/* Makes `count` synthetic samples of shape (c, h, w) with labels in
 * [0, classes). Returns 0 or RT_ENOMEM. */
int dataset_synthetic(dataset_t *d, int c, int h, int w, int classes,
                      size_t count, uint64_t seed);

/* The input a model takes. IDX files must match it exactly: their images
 * are one channel, so c must be 1. */
typedef struct {
    int c, h, w, classes;
} dataset_shape_t;

/* Reads an IDX image file and its label file (each plain or gzip; each must
 * be a regular file). Every header field is checked against want and
 * against the file's size before anything is allocated; labels must be <
 * want->classes. On bad input returns RT_EFORMAT (malformed, truncated,
 * corrupt gzip, not a regular file, wrong shape), RT_ENOENT (missing) or
 * RT_EINVAL (unreadable), RT_EIO / RT_ENOMEM on failure, with a message in
 * err naming the file and the problem. */
int dataset_load_idx(dataset_t *d, const char *images_path, const char *labels_path,
                     const dataset_shape_t *want, char *err, size_t err_bytes);

/* Fashion-MNIST from dir: train-* into train, t10k-* into test (test may be
 * NULL). Finds "<name>" or "<name>.gz". */
int dataset_load_fashion_mnist(dataset_t *train, dataset_t *test, const char *dir,
                               const dataset_shape_t *want, char *err, size_t err_bytes);

/* Fashion-MNIST's sizes, for estimating memory before the files are read. */
#define DATASET_FMNIST_TRAIN 60000
#define DATASET_FMNIST_TEST 10000

/* Bytes a data set of `count` samples of `per` values holds once loaded
 * (synthetic: floats; IDX: bytes; int32 labels either way). */
size_t dataset_memory_bytes(int synthetic, size_t count, size_t per);

/* Hands out each rank's slice of each global batch. */
typedef struct {
    const dataset_t *ds;
    int rank, ranks, batch;   /* batch per rank */
    int shuffle;              /* permute per epoch (real data) */
    uint64_t seed;
    size_t steps_per_epoch;   /* global batches per epoch (remainder dropped) */
    long epoch;               /* epoch the permutation is for, -1 = none */
    uint32_t *perm;           /* (ds->count) */
    float *images;            /* (batch, c*h*w) staging for real data */
    int32_t *labels;          /* (batch) */
    uint32_t *indices;        /* (batch) dataset indices of the last batch */
} sampler_t;

/* Where the data stands: the next global batch starts at sample `sample`
 * of epoch `epoch`'s permutation. A position, unlike a step count, means
 * the same thing at every world size, so a checkpoint written by n ranks
 * resumes on m without skipping or repeating a sample of the epoch. */
typedef struct {
    uint64_t epoch;
    uint64_t sample;
} sampler_pos_t;

int sampler_init(sampler_t *s, const dataset_t *ds, int rank, int ranks,
                 int batch, int shuffle, uint64_t seed);
/* Bytes sampler_init allocates over `count` samples of `per` values. */
size_t sampler_memory_bytes(size_t count, int batch, size_t per);
void sampler_free(sampler_t *s);
/* Samples in one global batch (batch x ranks). */
size_t sampler_global_batch(const sampler_t *s);
/* The position of global step `step` (0-based) of a run that kept this
 * world size from the start. */
sampler_pos_t sampler_pos_at_step(const sampler_t *s, uint64_t step);
/* The position after one more global batch: the epoch ends (its remainder
 * dropped) when the next batch would not fit in it. */
void sampler_pos_advance(const sampler_t *s, sampler_pos_t *p);
/* p moved to the next epoch when a global batch no longer fits in the rest
 * of its epoch (a position written by a run of another world size). */
void sampler_pos_fit(const sampler_t *s, sampler_pos_t *p);
/* Global steps from p until `epochs` epochs are done at this world size:
 * epoch floor(epochs) runs ceil(frac x steps_per_epoch) steps, so a run
 * that never changed size takes ceil(epochs x steps_per_epoch) in all. */
uint64_t sampler_steps_until(const sampler_t *s, sampler_pos_t p, double epochs);
/* Batch at position p: points *images / *labels at this rank's samples
 * (normalised floats) and fills s->indices. No allocation. p must leave
 * room for a whole global batch in its epoch. */
void sampler_batch_at(sampler_t *s, sampler_pos_t p, const float **images,
                      const int32_t **labels);
/* sampler_batch_at(sampler_pos_at_step(step)). */
void sampler_batch(sampler_t *s, uint64_t step, const float **images,
                   const int32_t **labels);
/* Fills images/labels with samples [first, first+count) of the dataset in
 * order (for evaluation). */
void dataset_copy_range(const dataset_t *d, size_t first, size_t count,
                        float *images, int32_t *labels);

#endif
