/* ringtrain worker: timeline (--timeline FILE). Every rank records spans into
 * a buffer sized before training (no allocation while training); at the end
 * rank 0 collects all ranks' spans and writes Chrome trace JSON (one process
 * per rank, a compute thread and a communication thread), which Perfetto and
 * chrome://tracing open. Times are relative to a barrier at the start, so
 * ranks line up to within the barrier's skew. */
#ifndef RINGTRAIN_WORKER_TIMELINE_H
#define RINGTRAIN_WORKER_TIMELINE_H

#include <stddef.h>
#include <stdint.h>

#include "collectives/collectives.h"

typedef enum {
    TL_FORWARD,    /* node forward (arg: node) */
    TL_BACKWARD,   /* node backward (arg: node) */
    TL_LOSS,       /* loss forward and its gradient */
    TL_OPTIMIZER,  /* SGD over the arena */
    TL_WAIT,       /* compute thread waiting for the buckets */
    TL_READY,      /* instant: a bucket handed to the progress thread (arg: bucket) */
    TL_ALLREDUCE,  /* progress thread: one bucket (arg: bucket) */
    TL_STEP,       /* one whole step */
    TL_CHECKPOINT, /* rank 0 writing a checkpoint */
    TL_KIND_COUNT
} tl_kind_t;

typedef struct {
    double t0, t1;     /* seconds, relative to the start */
    int32_t kind, arg; /* tl_kind_t, node or bucket index */
    int64_t step;
    int64_t bytes;     /* allreduce size */
    int32_t algorithm; /* index into the names passed to timeline_write */
    int32_t pad;
} tl_event_t;

typedef struct {
    tl_event_t *events;
    size_t count, capacity;
    size_t dropped;
    double origin;
    long step;         /* current step, stamped on events */
} timeline_t;

/* capacity events; returns RT_ENOMEM. Collective: a barrier sets the origin. */
int timeline_init(timeline_t *tl, size_t capacity, coll_comm_t *comm);
void timeline_free(timeline_t *tl);
/* Records a span (absolute rt_now() times). Never allocates: past capacity
 * events are counted as dropped. */
void timeline_add(timeline_t *tl, tl_kind_t kind, int arg, double t0, double t1,
                  int64_t bytes, int algorithm);

typedef struct {
    const char *const *node_names;  /* per node, e.g. "conv 5x5/1 32->64" */
    int node_count;
    const char *const *algorithms;  /* names for tl_event_t.algorithm */
} timeline_names_t;

/* Collective: every other rank sends its events to rank 0 (point to point,
 * one rank after another: rank 0 holds one rank's events at a time, in its
 * own buffer, so every rank's capacity must be the same), and rank 0 writes
 * path through the atomic writer (a new O_EXCL temporary file, then rename:
 * no symlink is followed). Every rank learns the outcome. On rank 0 tl's
 * events are overwritten. Returns 0 or RT_E... on every rank (rank 0
 * prints why, with errno's text). */
int timeline_write(timeline_t *tl, coll_comm_t *comm, const char *path,
                   const timeline_names_t *names);

#endif
