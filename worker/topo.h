/* ringtrain worker: host topology and core binding (hwloc). */
#ifndef RINGTRAIN_WORKER_TOPO_H
#define RINGTRAIN_WORKER_TOPO_H

typedef struct {
    int cores, numa_nodes, gpus;
    int quota_cpus;         /* cgroup CPU limit, 0 when unlimited */
    int first_core, share;  /* this rank's cores: share from first_core */
    int bound_ok;
    char bound[64];         /* "core 1", "cores 0-3", "not bound" */
} topo_info_t;

/* Reads the topology and, when bind is set, binds this process to its share
 * of the host's cores (local_rank of local_size ranks). Returns 0 or RT_E...;
 * info is filled either way. */
int topo_place(topo_info_t *info, int local_rank, int local_size, int bind);

#endif
