/* ringtrain worker: parameter-server mode (--variable_update=parameter_server).
 *
 * RINGTRAIN_PS_RANKS=r1,r2,... names the parameter servers (the launcher sets
 * it for TFJobs); every other rank is a worker and the lowest worker rank is
 * the chief that prints. The parameter arena is split into one contiguous
 * shard per server (a function of the arena size and the list only). Each
 * step every worker sends each server its shard of the gradients and gets
 * the updated shard of the parameters back; a server averages its workers'
 * gradients and runs the optimizer (its momentum never leaves it). Messages
 * go through coll_exchange (MPI point-to-point inside collectives/). */
#ifndef RINGTRAIN_WORKER_PS_H
#define RINGTRAIN_WORKER_PS_H

#include <stddef.h>

#include "collectives/collectives.h"

typedef struct {
    int enabled;          /* parameter-server mode */
    int is_server;
    int servers, workers;
    int *server_ranks;    /* (servers) ascending */
    int *worker_ranks;    /* (workers) ascending */
    int index;            /* this rank's index among servers or workers */
    int chief;            /* lowest worker rank */
    size_t *shard;        /* (servers + 1) float offsets into the arena */
    float *staging;       /* server: (workers, shard floats) gradients */
    coll_msg_t *sends, *recvs; /* (max(servers, workers)) each, reused */
} ps_t;

/* Parses list (RINGTRAIN_PS_RANKS) for a job of `size` ranks and plans the
 * shards of an arena of arena_floats. Returns RT_EINVAL with a message in err
 * for an unset/empty list, a rank out of range, a duplicate, or no worker
 * left. */
int ps_init(ps_t *ps, const char *list, int rank, int size, size_t arena_floats,
            char *err, size_t err_bytes);
void ps_free(ps_t *ps);

/* Worker: sends its gradients' shards and receives the parameters' shards. */
int ps_worker_exchange(ps_t *ps, coll_comm_t *comm, float *grads, float *params);

/* Server: one step: gathers its shard of every worker's gradients, averages,
 * updates params/momentum with SGD, sends the shard back to every worker. */
int ps_server_step(ps_t *ps, coll_comm_t *comm, float *params, float *momentum,
                   float *grads, float lr, float momentum_coef, float weight_decay);

#endif
