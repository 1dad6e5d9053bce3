/* ringtrain worker: tf_cnn_benchmarks' speed statistics over step times. */
#ifndef RINGTRAIN_WORKER_STATS_H
#define RINGTRAIN_WORKER_STATS_H

#include <stddef.h>

typedef struct {
    double mean;         /* images / mean step time */
    double uncertainty;  /* std of the per-step speeds / sqrt(count) */
    double jitter;       /* 1.4826 * median absolute deviation of the speeds */
} speed_stats_t;

/* Statistics of `count` (>= 1) step times, each step of `images` images.
 * scratch holds count doubles (reused: no allocation); O(count) expected
 * time, since the display step runs it over up to 2^20 times. */
void speed_stats(const double *times, size_t count, double images, double *scratch,
                 speed_stats_t *out);

/* The median of v[0..count) (count >= 1); reorders v. Expected O(count). */
double stats_median_inplace(double *v, size_t count);

#endif
