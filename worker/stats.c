/* ringtrain worker: tf_cnn_benchmarks' speed statistics (mean speed from the
 * mean time, uncertainty = std / sqrt(n), jitter = 1.4826 * MAD). Medians by
 * selection (Hoare's quickselect, median-of-three pivots), not by sorting:
 * the display step computes them over every timed step so far. */
#include "stats.h"

#include <math.h>

static void swap(double *a, double *b)
{
    double t = *a;
    *a = *b;
    *b = t;
}

/* Puts the k-th smallest of v[0..count) at v[k], smaller ones before it and
 * larger ones after. */
static void select_kth(double *v, size_t count, size_t k)
{
    size_t lo = 0, hi = count - 1;
    while (hi > lo) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] < v[lo])
            swap(&v[mid], &v[lo]);
        if (v[hi] < v[lo])
            swap(&v[hi], &v[lo]);
        if (v[hi] < v[mid])
            swap(&v[hi], &v[mid]);
        double pivot = v[mid];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot)
                i++;
            while (pivot < v[j])
                j--;
            if (i <= j) {
                swap(&v[i], &v[j]);
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return;
    }
}

double stats_median_inplace(double *v, size_t count)
{
    size_t k = count / 2;
    select_kth(v, count, k);
    if (count % 2)
        return v[k];
    /* The other middle value is the largest of the lower part. */
    double below = v[0];
    for (size_t i = 1; i < k; i++)
        if (v[i] > below)
            below = v[i];
    return 0.5 * (below + v[k]);
}

void speed_stats(const double *times, size_t count, double images, double *scratch,
                 speed_stats_t *out)
{
    double tsum = 0, ssum = 0, ssq = 0;
    for (size_t i = 0; i < count; i++) {
        double s = images / times[i];
        tsum += times[i];
        ssum += s;
        ssq += s * s;
        scratch[i] = s;
    }
    out->mean = images / (tsum / (double)count);
    double smean = ssum / (double)count;
    double var = ssq / (double)count - smean * smean;
    out->uncertainty = var > 0 ? sqrt(var) / sqrt((double)count) : 0.0;
    double median = stats_median_inplace(scratch, count);
    for (size_t i = 0; i < count; i++)
        scratch[i] = fabs(scratch[i] - median);
    out->jitter = 1.4826 * stats_median_inplace(scratch, count);
}
