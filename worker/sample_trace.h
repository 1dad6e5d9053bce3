/* ringtrain worker: RINGTRAIN_TRACE_SAMPLES=DIR, for tests that count the
 * samples a job trained on. Each rank records the dataset index of every
 * sample it trains on and, whenever a checkpoint is taken (and at the end),
 * writes what it recorded to
 * DIR/samples-<run>-<start>-<first>-<last>-r<rank>.txt, one "step epoch
 * index" line per sample (step 0-based), through the atomic writer. <run>
 * orders the runs of a job (rank 0's clock at its start) and <start> is the
 * step the run resumed from: steps a run trained at or past the step the
 * next run resumed from were lost with it and trained again, so a reader
 * keeps, of each run, the lines whose step is below the next run's start.
 * Buffers are made once; nothing allocates per step. */
#ifndef RINGTRAIN_WORKER_SAMPLE_TRACE_H
#define RINGTRAIN_WORKER_SAMPLE_TRACE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int enabled;
    char dir[1024];
    int rank, batch;
    uint64_t run;             /* rank 0's start time, ns */
    long start;               /* the step the run started at */
    size_t cap_steps, count;  /* steps held */
    long *step;               /* (cap_steps) */
    uint64_t *epoch;          /* (cap_steps) */
    uint32_t *index;          /* (cap_steps, batch) */
    char *text;               /* the file being written */
} sample_trace_t;

/* Reads RINGTRAIN_TRACE_SAMPLES; without it the trace is off (0). Room for
 * cap_steps steps between two writes. 0 or RT_ENOMEM. */
int sample_trace_init(sample_trace_t *t, int rank, int batch, size_t cap_steps, uint64_t run,
                      long start);
/* Records the batch of step `step` (0-based) of epoch `epoch`. RT_ERANGE
 * when cap_steps steps are held already. */
int sample_trace_record(sample_trace_t *t, long step, uint64_t epoch, const uint32_t *index);
/* Writes what was recorded since the last write. 0 or the writer's code
 * (err says why). */
int sample_trace_write(sample_trace_t *t, char *err, size_t err_bytes);
void sample_trace_free(sample_trace_t *t);

#endif
