/* ringtrain worker: parameter-server mode, see ps.h. */
#include "ps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "kernels/kernels.h"

void ps_free(ps_t *ps)
{
    if (!ps)
        return;
    free(ps->server_ranks);
    free(ps->worker_ranks);
    free(ps->shard);
    rt_free_aligned(ps->staging);
    free(ps->sends);
    free(ps->recvs);
    memset(ps, 0, sizeof *ps);
}

int ps_init(ps_t *ps, const char *list, int rank, int size, size_t arena_floats,
            char *err, size_t err_bytes)
{
    memset(ps, 0, sizeof *ps);
    if (!list || !*list) {
        snprintf(err, err_bytes,
                 "--variable_update=parameter_server needs RINGTRAIN_PS_RANKS=r1,r2,... naming "
                 "the parameter-server ranks (ringtrain-launcher --tfjob sets it)");
        return RT_EINVAL;
    }
    char *is_server = calloc((size_t)size, 1);
    if (!is_server)
        return RT_ENOMEM;
    const char *p = list;
    while (*p) {
        uint64_t r;
        char item[32];
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof item) {
            snprintf(err, err_bytes, "RINGTRAIN_PS_RANKS=%s: empty or overlong entry", list);
            free(is_server);
            return RT_EINVAL;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        if (rt_parse_u64(item, 0, (uint64_t)size - 1, 0, &r) != 0) {
            snprintf(err, err_bytes, "RINGTRAIN_PS_RANKS=%s: '%s' is not a rank of this %d-rank job",
                     list, item, size);
            free(is_server);
            return RT_EINVAL;
        }
        if (is_server[r]) {
            snprintf(err, err_bytes, "RINGTRAIN_PS_RANKS=%s: rank %s listed twice", list, item);
            free(is_server);
            return RT_EINVAL;
        }
        is_server[r] = 1;
        ps->servers++;
        p += len;
        if (*p == ',')
            p++;
    }
    ps->workers = size - ps->servers;
    if (ps->workers < 1) {
        snprintf(err, err_bytes, "RINGTRAIN_PS_RANKS=%s lists every rank: no worker is left", list);
        free(is_server);
        return RT_EINVAL;
    }
    int most = ps->servers > ps->workers ? ps->servers : ps->workers;
    ps->server_ranks = calloc((size_t)ps->servers, sizeof(int));
    ps->worker_ranks = calloc((size_t)ps->workers, sizeof(int));
    ps->shard = calloc((size_t)ps->servers + 1, sizeof(size_t));
    ps->sends = calloc((size_t)most, sizeof(coll_msg_t));
    ps->recvs = calloc((size_t)most, sizeof(coll_msg_t));
    if (!ps->server_ranks || !ps->worker_ranks || !ps->shard || !ps->sends || !ps->recvs) {
        free(is_server);
        ps_free(ps);
        return RT_ENOMEM;
    }
    int s = 0, w = 0;
    for (int r = 0; r < size; r++) {
        if (is_server[r]) {
            if (r == rank)
                ps->index = s;
            ps->server_ranks[s++] = r;
        } else {
            if (r == rank)
                ps->index = w;
            ps->worker_ranks[w++] = r;
        }
    }
    ps->is_server = is_server[rank];
    free(is_server);
    ps->chief = ps->worker_ranks[0];
    ps->enabled = 1;
    /* Contiguous shards, boundaries 64-byte aligned. */
    for (int j = 0; j <= ps->servers; j++) {
        size_t at = arena_floats * (size_t)j / (size_t)ps->servers;
        ps->shard[j] = j == ps->servers ? arena_floats : rt_align_up(at, 16);
        if (ps->shard[j] > arena_floats)
            ps->shard[j] = arena_floats;
    }
    if (ps->is_server) {
        size_t floats = ps->shard[ps->index + 1] - ps->shard[ps->index];
        ps->staging = rt_alloc_aligned((floats ? floats : 1) * (size_t)ps->workers * sizeof(float), 64);
        if (!ps->staging) {
            ps_free(ps);
            return RT_ENOMEM;
        }
    }
    return 0;
}

int ps_worker_exchange(ps_t *ps, coll_comm_t *comm, float *grads, float *params)
{
    for (int j = 0; j < ps->servers; j++) {
        size_t first = ps->shard[j], bytes = (ps->shard[j + 1] - first) * sizeof(float);
        ps->sends[j] = (coll_msg_t){grads + first, bytes, ps->server_ranks[j]};
        ps->recvs[j] = (coll_msg_t){params + first, bytes, ps->server_ranks[j]};
    }
    return coll_exchange(comm, ps->sends, ps->servers, ps->recvs, ps->servers);
}

int ps_server_step(ps_t *ps, coll_comm_t *comm, float *params, float *momentum,
                   float *grads, float lr, float momentum_coef, float weight_decay)
{
    size_t first = ps->shard[ps->index];
    size_t floats = ps->shard[ps->index + 1] - first;
    for (int w = 0; w < ps->workers; w++)
        ps->recvs[w] = (coll_msg_t){ps->staging + (size_t)w * floats, floats * sizeof(float),
                                    ps->worker_ranks[w]};
    int rc = coll_exchange(comm, NULL, 0, ps->recvs, ps->workers);
    if (rc)
        return rc;
    /* Average as the allreduce does: sum in worker order, then one scale. */
    float *g = grads + first;
    memcpy(g, ps->staging, floats * sizeof(float));
    for (int w = 1; w < ps->workers; w++)
        add_inplace_cpu(g, ps->staging + (size_t)w * floats, floats);
    float scale = 1.0f / (float)ps->workers;
    for (size_t i = 0; i < floats; i++)
        g[i] *= scale;
    sgd_update_cpu(params + first, momentum + first, g, floats, lr, momentum_coef, weight_decay);
    for (int w = 0; w < ps->workers; w++)
        ps->sends[w] = (coll_msg_t){params + first, floats * sizeof(float), ps->worker_ranks[w]};
    return coll_exchange(comm, ps->sends, ps->workers, NULL, 0);
}
