/* collectives: the algorithm table and the one place that chooses an
 * allreduce algorithm per call (by bytes, ranks and topology), or takes the
 * one forced by name (coll_config_t.algorithm, else RINGTRAIN_ALLREDUCE).
 *
 * The automatic choice follows measurements on a 2-core host (np=2, and np
 * 3..5 oversubscribed); see collectives/README.md for the numbers:
 *   one rank                          copy
 *   every rank on one host, shm up:   two ranks: shm_oneshot at every size
 *                                     more: shm_oneshot up to SHM_ONESHOT_MAX
 *                                     bytes, shm (two-shot) above
 *   ranks on several hosts:           rd           up to RD_MAX bytes
 *                                     ring         above
 *   CUDA mode on NCCL:                nccl
 *   CUDA mode staged through host:    the above, on the pinned copy
 * With two ranks one-shot moves the same bytes through the shared cache as
 * two-shot (each rank needs the other's half of the input and half of the
 * result either way) but synchronises once per segment instead of three
 * times and makes one pass over the output: 1.1-1.9x faster at every size
 * measured. With more ranks its reads grow with n, and two-shot wins for
 * large vectors (np=3: from 16 MiB).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll_internal.h"

const coll__algo_t coll__algos[COLL__ALGO_COUNT] = {
    [COLL__ALGO_COPY] = {"copy", coll__allreduce_copy, 0, "host:copy"},
    [COLL__ALGO_RING] = {"ring", coll__allreduce_ring, 0, "host:ring"},
    [COLL__ALGO_RD] = {"rd", coll__allreduce_rd, 0, "host:rd"},
    [COLL__ALGO_SHM] = {"shm", coll__allreduce_shm, 1, "host:shm"},
    [COLL__ALGO_SHM_ONESHOT] = {"shm_oneshot", coll__allreduce_shm_oneshot, 1,
                                "host:shm_oneshot"},
    [COLL__ALGO_MPI] = {"mpi", coll__allreduce_mpi, 0, "host:mpi"},
    [COLL__ALGO_HIER] = {"hier", coll__allreduce_hier, 0, "host:hier"},
    [COLL__ALGO_NCCL] = {"nccl", coll__allreduce_nccl_unattached, 0, "nccl"},
};

static const char *const algo_names[COLL__ALGO_COUNT + 1] = {
    "copy", "ring", "rd", "shm", "shm_oneshot", "mpi", "hier", "nccl", NULL,
};

int coll__allreduce_nccl_unattached(coll_comm_t *comm, const void *sendbuf,
                                    void *recvbuf, size_t count,
                                    coll_dtype_t dtype, coll_op_t op)
{
    (void)sendbuf;
    (void)recvbuf;
    (void)count;
    (void)dtype;
    (void)op;
    if (comm->rank == 0)
        rt_log_error("collectives: allreduce algorithm 'nccl' works on device "
                     "buffers only; call coll_comm_attach_cuda() first");
    return RT_EINVAL;
}

/* Thresholds (bytes per rank's vector). */
#define SHM_ONESHOT_MAX ((size_t)8 << 20)
#define RD_MAX ((size_t)64 << 10)

const char *const *coll_algorithm_names(void) { return algo_names; }

int coll__algo_lookup(const char *name)
{
    if (name == NULL)
        return -1;
    for (int a = 0; a < COLL__ALGO_COUNT; a++)
        if (strcmp(name, coll__algos[a].name) == 0)
            return a;
    return -1;
}

int coll__algo_usable(const coll_comm_t *comm, int algo, const char **why)
{
    if (algo == COLL__ALGO_COPY && comm->size != 1) {
        *why = "copy only works with one rank";
        return 0;
    }
    if (algo == COLL__ALGO_NCCL && !coll__cuda_nccl_built()) {
        *why = "this build has no NCCL backend (build with CUDA and libnccl, "
               "meson -Dnccl=enabled)";
        return 0;
    }
    if (coll__algos[algo].needs_shm && comm->size > 1 &&
        (comm->shm == NULL || comm->host_count > 1)) {
        *why = comm->host_count > 1
                   ? "ranks are on several hosts (shared memory needs one)"
                   : "the shared-memory segment could not be created";
        return 0;
    }
    if (algo == COLL__ALGO_HIER && comm->size > 1 && !comm->hier.shm_ok) {
        *why = "a host's shared-memory segment could not be created";
        return 0;
    }
    return 1;
}

int coll__select_init(coll_comm_t *comm, const char *cfg_algorithm)
{
    const char *name = cfg_algorithm;
    const char *source = "coll_config_t.algorithm";
    if (name == NULL) {
        name = getenv("RINGTRAIN_ALLREDUCE");
        source = "RINGTRAIN_ALLREDUCE";
    }
    comm->forced = -1;
    if (name == NULL || name[0] == '\0' || strcmp(name, "auto") == 0)
        return 0;
    int algo = coll__algo_lookup(name);
    if (algo < 0) {
        char list[256] = "auto";
        for (int a = 0; a < COLL__ALGO_COUNT; a++) {
            strncat(list, ", ", sizeof list - strlen(list) - 1);
            strncat(list, coll__algos[a].name, sizeof list - strlen(list) - 1);
        }
        if (comm->rank == 0)
            rt_log_error("collectives: unknown allreduce algorithm '%s' in "
                         "%s; valid names: %s", name, source, list);
        return RT_EINVAL;
    }
    comm->forced = algo;
    return 0;
}

int coll__select(const coll_comm_t *comm, size_t count, coll_dtype_t dtype)
{
    /* A forced algorithm runs even on one rank (each handles that case),
     * so tests exercise what they name. */
    if (comm->forced >= 0)
        return comm->forced;
    if (comm->cuda_nccl)
        return COLL__ALGO_NCCL;
    if (comm->size == 1)
        return COLL__ALGO_COPY;
    size_t bytes = count * coll_dtype_size(dtype);
    if (comm->shm != NULL && comm->host_count == 1)
        return comm->size == 2 || bytes <= SHM_ONESHOT_MAX
                   ? COLL__ALGO_SHM_ONESHOT
                   : COLL__ALGO_SHM;
    if (bytes <= RD_MAX)
        return COLL__ALGO_RD;
    if (comm->hier.max_local_size > 1 && comm->hier.shm_ok)
        return COLL__ALGO_HIER;
    return COLL__ALGO_RING;
}
