/* ringtrain worker: placement with hwloc. Ranks that share a host split its
 * cores into disjoint sets (local rank i of n gets the i-th of n equal
 * shares; with more ranks than cores they wrap around), and each rank binds
 * itself (all its threads) to its share. */
#include "topo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hwloc.h>

#include "common/common.h"

/* CPUs a cgroup v2 quota allows (cpu.max "quota period"), 0 if unlimited.
 * In a pod with a CPU limit every core of the node is visible, but only the
 * quota's worth of them can run at once. */
static int cgroup_cpu_quota(void)
{
    FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");
    if (!f)
        return 0;
    char quota[32] = "";
    long period = 0;
    int n = fscanf(f, "%31s %ld", quota, &period);
    fclose(f);
    if (n != 2 || period <= 0 || strcmp(quota, "max") == 0)
        return 0;
    long q = atol(quota);
    if (q <= 0)
        return 0;
    return (int)((q + period - 1) / period);
}

static int count_gpus(hwloc_topology_t topo)
{
    int gpus = 0;
    hwloc_obj_t obj = NULL;
    while ((obj = hwloc_get_next_osdev(topo, obj)) != NULL) {
        if (obj->attr->osdev.type == HWLOC_OBJ_OSDEV_COPROC ||
            (obj->attr->osdev.type == HWLOC_OBJ_OSDEV_GPU && obj->name &&
             strncmp(obj->name, "card", 4) != 0 && strncmp(obj->name, "renderD", 7) != 0))
            gpus++;
    }
    return gpus;
}

int topo_place(topo_info_t *info, int local_rank, int local_size, int bind)
{
    memset(info, 0, sizeof *info);
    snprintf(info->bound, sizeof info->bound, "not bound");
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) != 0)
        return RT_ESYS;
    hwloc_topology_set_io_types_filter(topo, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
    if (hwloc_topology_load(topo) != 0) {
        hwloc_topology_destroy(topo);
        return RT_ESYS;
    }
    int cores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    if (cores <= 0)
        cores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
    if (cores <= 0)
        cores = 1;
    info->cores = cores;
    info->numa_nodes = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
    if (info->numa_nodes <= 0)
        info->numa_nodes = 1;
    info->gpus = count_gpus(topo);

    if (local_size < 1)
        local_size = 1;
    int share = cores / local_size;
    info->quota_cpus = cgroup_cpu_quota();
    if (info->quota_cpus > 0 && share > info->quota_cpus / local_size)
        share = info->quota_cpus / local_size;
    if (share < 1)
        share = 1;
    int first = (local_rank * share) % cores;
    info->first_core = first;
    info->share = share;
    if (!bind) {
        hwloc_topology_destroy(topo);
        return 0;
    }
    hwloc_bitmap_t set = hwloc_bitmap_alloc();
    if (!set) {
        hwloc_topology_destroy(topo);
        return RT_ENOMEM;
    }
    for (int i = 0; i < share; i++) {
        hwloc_obj_t core = hwloc_get_obj_by_type(topo, HWLOC_OBJ_CORE, (unsigned)((first + i) % cores));
        if (!core)
            core = hwloc_get_obj_by_type(topo, HWLOC_OBJ_PU, (unsigned)((first + i) % cores));
        if (core)
            hwloc_bitmap_or(set, set, core->cpuset);
    }
    int rc = 0;
    if (hwloc_set_cpubind(topo, set, HWLOC_CPUBIND_PROCESS) != 0) {
        rc = RT_ESYS;
    } else {
        info->bound_ok = 1;
        if (share == 1)
            snprintf(info->bound, sizeof info->bound, "core %d", first);
        else
            snprintf(info->bound, sizeof info->bound, "cores %d-%d", first,
                     first + share - 1);
    }
    hwloc_bitmap_free(set);
    hwloc_topology_destroy(topo);
    return rc;
}
