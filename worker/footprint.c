/* ringtrain worker: per-rank memory estimate and the refusal when it cannot
 * fit. See footprint.h for what counts and why. */
#include "footprint.h"

#include <stdio.h>
#include <string.h>

#include "common/common.h"
#include "data.h"
#include "timeline.h"

/* The worker's cap on timeline events (train.c), at most all of it used. */
#define TIMELINE_MAX_EVENTS ((size_t)4 << 20)

int footprint_estimate(const worker_options_t *o, const model_ops_t *ops, int ranks, int batch,
                       footprint_t *f)
{
    memset(f, 0, sizeof *f);
    int c, h, w, classes;
    int rc = model_default_shape(o->model, &c, &h, &w, &classes);
    size_t model = 0, params = 0;
    if (!rc)
        rc = model_plan_bytes(o->model, classes, batch, ops, &model, &params);
    if (rc)
        return rc;
    if (!ops || !ops->device_memory)
        f->model = model;
    size_t per = (size_t)c * (size_t)h * (size_t)w;
    int synthetic = o->data == WORKER_DATA_SYNTHETIC;
    /* Synthetic data is the whole global batch on every rank. */
    size_t count = synthetic ? (size_t)batch * (size_t)ranks : DATASET_FMNIST_TRAIN;
    f->data = dataset_memory_bytes(synthetic, count, per) + sampler_memory_bytes(count, batch, per);
    if (o->eval) {
        if (!synthetic)
            f->data += dataset_memory_bytes(0, DATASET_FMNIST_TEST, per);
        f->data += (size_t)batch * (per * sizeof(float) + sizeof(int32_t));
    }
    /* A resume reads the whole checkpoint (parameters and momentum). */
    if (o->checkpoint_dir[0])
        f->other += 2 * params;
    if (o->timeline[0])
        f->other += TIMELINE_MAX_EVENTS * sizeof(tl_event_t);
    f->other += FOOTPRINT_RUNTIME_BYTES;
    f->total = f->model + f->data + f->other;
    return 0;
}

static int fits(const footprint_t *f, int local_ranks, uint64_t available)
{
    return (double)f->total * (double)local_ranks <= (double)available;
}

/* The largest batch below o->batch_size that fits, rounded down to a power
 * of two; 0 when not even one sample does. */
static int batch_that_fits(const worker_options_t *o, const model_ops_t *ops, int ranks,
                           int local_ranks, uint64_t available)
{
    int lo = 0, hi = o->batch_size; /* lo fits (or is 0), hi does not */
    while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        footprint_t f;
        if (footprint_estimate(o, ops, ranks, mid, &f) == 0 && fits(&f, local_ranks, available))
            lo = mid;
        else
            hi = mid;
    }
    int pow2 = 1;
    while (lo > 0 && pow2 * 2 <= lo)
        pow2 *= 2;
    return lo > 0 ? pow2 : 0;
}

int footprint_check(const worker_options_t *o, const model_ops_t *ops, int ranks,
                    int local_ranks, char *err, size_t err_bytes)
{
    rt_host_memory_t host;
    footprint_t f;
    if (rt_host_memory(&host) != 0 ||
        footprint_estimate(o, ops, ranks, o->batch_size, &f) != 0 ||
        fits(&f, local_ranks, host.available))
        return 0; /* unknown: let the allocation decide; a bad model is reported later */
    char total[32], model[32], data[32], other[32], all[32], have[160], tail[160];
    rt_format_bytes(f.total, total, sizeof total);
    rt_format_bytes(f.model, model, sizeof model);
    rt_format_bytes(f.data, data, sizeof data);
    rt_format_bytes(f.other, other, sizeof other);
    rt_format_bytes((uint64_t)f.total * (uint64_t)local_ranks, all, sizeof all);
    rt_host_memory_describe(&host, have, sizeof have);
    char on_host[80] = "";
    if (local_ranks > 1)
        snprintf(on_host, sizeof on_host, ", %s for the %d ranks on this host", all, local_ranks);
    int best = batch_that_fits(o, ops, ranks, local_ranks, host.available);
    if (best > 0)
        snprintf(tail, sizeof tail, "use --batch_size=%d or less", best);
    else
        snprintf(tail, sizeof tail, "not even --batch_size=1 fits: use a smaller model, fewer "
                                    "ranks per host or a host with more memory");
    snprintf(err, err_bytes, "--model=%s --batch_size=%d needs about %s on this rank (model %s, "
             "data %s, other %s)%s; this host has %s; %s", o->model, o->batch_size, total, model,
             data, other, on_host, have, tail);
    return RT_EINVAL;
}
