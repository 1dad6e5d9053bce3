/* ringtrain worker: the sample trace for tests (sample_trace.h). */
#include "sample_trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

/* "step epoch index\n": three 20-digit numbers at most. */
#define LINE_BYTES 64

int sample_trace_init(sample_trace_t *t, int rank, int batch, size_t cap_steps, uint64_t run,
                      long start)
{
    memset(t, 0, sizeof *t);
    const char *dir = getenv("RINGTRAIN_TRACE_SAMPLES");
    if (!dir || !dir[0])
        return 0;
    snprintf(t->dir, sizeof t->dir, "%s", dir);
    t->rank = rank;
    t->batch = batch;
    t->run = run;
    t->start = start;
    t->cap_steps = cap_steps ? cap_steps : 1;
    t->step = calloc(t->cap_steps, sizeof *t->step);
    t->epoch = calloc(t->cap_steps, sizeof *t->epoch);
    t->index = calloc(t->cap_steps * (size_t)batch, sizeof *t->index);
    t->text = malloc(t->cap_steps * (size_t)batch * LINE_BYTES + 1);
    if (!t->step || !t->epoch || !t->index || !t->text) {
        sample_trace_free(t);
        return RT_ENOMEM;
    }
    t->enabled = 1;
    return 0;
}

int sample_trace_record(sample_trace_t *t, long step, uint64_t epoch, const uint32_t *index)
{
    if (!t->enabled)
        return 0;
    if (t->count == t->cap_steps)
        return RT_ERANGE;
    t->step[t->count] = step;
    t->epoch[t->count] = epoch;
    memcpy(t->index + t->count * (size_t)t->batch, index, (size_t)t->batch * sizeof *index);
    t->count++;
    return 0;
}

int sample_trace_write(sample_trace_t *t, char *err, size_t err_bytes)
{
    if (!t->enabled || t->count == 0)
        return 0;
    size_t used = 0;
    for (size_t k = 0; k < t->count; k++)
        for (int i = 0; i < t->batch; i++)
            used += (size_t)snprintf(t->text + used, LINE_BYTES, "%ld %llu %u\n", t->step[k],
                                     (unsigned long long)t->epoch[k],
                                     t->index[k * (size_t)t->batch + (size_t)i]);
    char path[1200];
    snprintf(path, sizeof path, "%s/samples-%020llu-%012ld-%012ld-%012ld-r%d.txt", t->dir,
             (unsigned long long)t->run, t->start, t->step[0], t->step[t->count - 1], t->rank);
    int rc = rt_file_write_atomic(path, t->text, used, 0644, err, err_bytes);
    if (rc == 0)
        t->count = 0;
    return rc;
}

void sample_trace_free(sample_trace_t *t)
{
    free(t->step);
    free(t->epoch);
    free(t->index);
    free(t->text);
    memset(t, 0, sizeof *t);
}
