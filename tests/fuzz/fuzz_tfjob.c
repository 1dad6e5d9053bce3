/* libFuzzer harness: the TFJob parser and its mapping to one MPI job.
 *   parse -> validate -> map in allreduce and parameter-server mode, with 1
 *   and 3 slots, with and without a cluster domain -> ranks and roles
 *   checked (chief first, contiguous ranks, parameter servers last and
 *   named by RINGTRAIN_PS_RANKS, every replica either ranked or idle) ->
 *   hostfile rendered and read back, discover_hosts.sh rendered.
 * The same bytes, split at NUL and newline, are also program arguments for
 * the --variable_update detection. Errors must be one printable line. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_check.h"
#include "launcher/launcher.h"

static void check_map(const launch_tfjob_t *job, const launch_tf_map_t *map, int ps_mode,
                      uint32_t slots)
{
    const launch_hostlist_t *hosts = &map->hosts;
    uint64_t replicas = 0;
    for (int t = 0; t < LAUNCH_TF_TYPES; t++)
        replicas += job->replicas[t];
    FUZZ_CHECK(hosts->count >= 1);
    FUZZ_CHECK(hosts->count + map->idle_count == replicas);
    /* Rank 0 is the chief when there is one, else Worker 0. */
    launch_tf_type_t lead = job->replicas[LAUNCH_TF_CHIEF]    ? LAUNCH_TF_CHIEF
                            : job->replicas[LAUNCH_TF_MASTER] ? LAUNCH_TF_MASTER
                                                              : LAUNCH_TF_WORKER;
    FUZZ_CHECK(map->roles[0].type == lead && map->roles[0].index == 0);
    uint64_t rank = 0, ps = 0;
    for (size_t h = 0; h < hosts->count; h++) {
        const launch_tf_role_t *r = &map->roles[h];
        FUZZ_CHECK(r->first_rank == rank);
        FUZZ_CHECK(r->type != LAUNCH_TF_EVALUATOR);
        FUZZ_CHECK(r->index < job->replicas[r->type]);
        FUZZ_CHECK(hosts->slots[h] == (r->type == LAUNCH_TF_PS ? 1 : slots));
        if (r->type == LAUNCH_TF_PS) {
            FUZZ_CHECK(ps_mode);
            ps++;
        } else {
            FUZZ_CHECK(ps == 0); /* parameter servers come last */
        }
        rank += hosts->slots[h];
    }
    FUZZ_CHECK(rank == map->ranks && ps == map->ps_ranks);
    FUZZ_CHECK(launch_hostlist_total_slots(hosts) == map->ranks);
    for (size_t i = 0; i < map->idle_count; i++) {
        launch_tf_type_t t = map->idle_roles[i].type;
        FUZZ_CHECK(t == LAUNCH_TF_EVALUATOR || (t == LAUNCH_TF_PS && !ps_mode));
        FUZZ_CHECK(launch_is_dns1123_subdomain(map->idle[i], strlen(map->idle[i])));
    }
    /* RINGTRAIN_PS_RANKS: the last ps ranks, ascending. */
    char *text = NULL;
    FUZZ_CHECK(launch_tf_map_ps_ranks(map, &text) == 0);
    const char *p = text;
    for (uint64_t k = 0; k < ps; k++) {
        char *end = NULL;
        unsigned long long v = strtoull(p, &end, 10);
        FUZZ_CHECK(end != p && v == map->ranks - ps + k);
        FUZZ_CHECK(*end == (k + 1 < ps ? ',' : '\0'));
        p = end + (*end == ',');
    }
    FUZZ_CHECK(ps > 0 || text[0] == '\0');
    free(text);
    if (hosts->count <= 4096)
        fuzz_check_hostlist(hosts, (unsigned)map->ranks * 2654435761u);
}

static void fuzz_tfjob(const char *data, size_t bytes)
{
    launch_tfjob_t job;
    launch_error_t err = {{0}};
    if (launch_tfjob_parse(data, bytes, &job, &err) != 0) {
        fuzz_check_error(&err);
        return;
    }
    FUZZ_CHECK(launch_is_dns1035_label(job.name, strlen(job.name)));
    FUZZ_CHECK(!(job.present[LAUNCH_TF_CHIEF] && job.present[LAUNCH_TF_MASTER]));
    FUZZ_CHECK(job.replicas[LAUNCH_TF_CHIEF] <= 1 && job.replicas[LAUNCH_TF_MASTER] <= 1);
    FUZZ_CHECK(job.replicas[LAUNCH_TF_CHIEF] + job.replicas[LAUNCH_TF_MASTER] +
                   job.replicas[LAUNCH_TF_WORKER] >= 1);
    uint64_t total = 0;
    for (int t = 0; t < LAUNCH_TF_TYPES; t++) {
        FUZZ_CHECK(job.present[t] || job.replicas[t] == 0);
        total += job.replicas[t];
    }
    static const struct {
        int ps_mode;
        uint32_t slots;
        const char *domain;
        launch_mpi_t mpi;
    } variants[] = {
        {0, 1, NULL, LAUNCH_MPI_OPENMPI},
        {1, 1, "cluster.local", LAUNCH_MPI_OPENMPI},
        {0, 3, "cluster.local", LAUNCH_MPI_MPICH},
        {1, 3, NULL, LAUNCH_MPI_INTEL},
    };
    /* Huge jobs once: more hosts is slower, not deeper. */
    size_t count = total > 4096 ? 1 : sizeof variants / sizeof variants[0];
    for (size_t v = 0; v < count; v++) {
        launch_tf_map_opts_t opts = {.ps_mode = variants[v].ps_mode,
                                     .slots = variants[v].slots,
                                     .cluster_domain = variants[v].domain,
                                     .mpi = variants[v].mpi};
        launch_tf_map_t map;
        int rc = launch_tfjob_map(&job, &opts, &map, &err);
        if (opts.ps_mode && job.replicas[LAUNCH_TF_PS] == 0) {
            FUZZ_CHECK(rc == RT_EINVAL);
            fuzz_check_error(&err);
            continue;
        }
        FUZZ_CHECK(rc == 0);
        check_map(&job, &map, opts.ps_mode, opts.slots);
        launch_tf_map_free(&map);
        launch_tf_map_free(&map); /* safe twice */
    }
}

/* The bytes as a program's arguments: words split at NUL and newline. */
static void fuzz_args(const char *data, size_t bytes)
{
    char *copy = malloc(bytes + 1);
    const char *args[64];
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, data, bytes);
    copy[bytes] = '\0';
    size_t count = 0;
    size_t start = 0;
    for (size_t i = 0; i <= bytes && count < 64; i++) {
        if (i == bytes || copy[i] == '\0' || copy[i] == '\n') {
            copy[i] = '\0';
            args[count++] = copy + start;
            start = i + 1;
        }
    }
    int ps_mode = launch_args_ps_mode(args, count);
    FUZZ_CHECK(ps_mode == 0 || ps_mode == 1);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_tfjob((const char *)data, size);
    fuzz_args((const char *)data, size);
    return 0;
}
