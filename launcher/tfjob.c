/* TFJob manifest (kubeflow tf-operator, kubeflow.org/v1 and v1beta1) ->
 * launch_tfjob_t, and a TFJob as one MPI job: the chief (Chief or Master)
 * is rank 0, the workers follow, the parameter servers come last and only
 * in parameter-server mode; the Evaluator is never part of the training
 * cluster (tf-operator leaves it out of TF_CONFIG's cluster too).
 * Host names are tf-operator's, one headless Service per replica:
 * "<job>-<type>-<i>.<namespace>.svc", type in lower case.
 * The same checks as for an MPIJob: strict YAML, types as Kubernetes sees
 * them, DNS names, bounded counts; each error names the field. */
#include "launcher.h"
#include "launcher_internal.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/common.h"

static const char *const type_names[LAUNCH_TF_TYPES] = {"Chief", "Master", "Worker", "PS",
                                                        "Evaluator"};
/* In host names, as tf-operator lower-cases the type. */
static const char *const type_lower[LAUNCH_TF_TYPES] = {"chief", "master", "worker", "ps",
                                                        "evaluator"};

const char *launch_tf_type_name(launch_tf_type_t type)
{
    return (unsigned)type < LAUNCH_TF_TYPES ? type_names[type] : "?";
}

/* The replica type a key names; tf-operator folds keys of any case to the
 * canonical one ("ps", "WORKER"). -1 when it names none. */
static int type_of_key(const launch__yaml_node_t *key)
{
    for (int t = 0; t < LAUNCH_TF_TYPES; t++)
        if (key->bytes == strlen(type_names[t]) &&
            strncasecmp(key->text, type_names[t], key->bytes) == 0 &&
            memchr(key->text, '\0', key->bytes) == NULL)
            return t;
    return -1;
}

/* One replica spec: replicas (default 1, as tf-operator defaults it) and
 * restartPolicy; the pod template and anything else is the operator's. */
static int parse_replica_spec(launch__ctx_t *c, const launch__yaml_node_t *spec, int type,
                              const char *key, uint32_t *replicas)
{
    char field[96];
    snprintf(field, sizeof field, "spec.tfReplicaSpecs.%s", key);
    int rc = launch__want_map(c, spec, field);
    if (rc != 0)
        return rc;
    /* One chief: it is rank 0. Zero is allowed (the operator creates no
     * pod; Worker 0 then leads, as in TensorFlow). */
    int64_t max = (type == LAUNCH_TF_CHIEF || type == LAUNCH_TF_MASTER) ? 1
                                                                        : LAUNCH_REPLICAS_MAX;
    char sub[128];
    snprintf(sub, sizeof sub, "%s.replicas", field);
    bool have = false;
    int64_t value = 0;
    if ((rc = launch__get_int(c, spec, "replicas", sub, 0, max, &have, &value)))
        return rc;
    *replicas = have ? (uint32_t)value : 1;

    snprintf(sub, sizeof sub, "%s.restartPolicy", field);
    const launch__yaml_node_t *policy;
    if ((rc = launch__get_string(c, spec, "restartPolicy", sub, false, &policy)))
        return rc;
    static const char *const policies[] = {"Always", "OnFailure", "Never", "ExitCode", NULL};
    if (policy != NULL && !launch__text_in(policy->text, policies)) {
        char shown[120];
        launch__quote(policy->text, policy->bytes, shown, sizeof shown);
        launch__error_set(c->err, "%s: %s is not a restart policy (line %d); use Always, "
                          "OnFailure, Never or ExitCode", sub, shown, policy->line);
        return RT_EINVAL;
    }
    return 0;
}

static int parse_replica_specs(launch__ctx_t *c, const launch__yaml_node_t *specs,
                               launch_tfjob_t *job)
{
    const launch__yaml_node_t *seen[LAUNCH_TF_TYPES] = {NULL};
    for (size_t i = 0; i + 1 < specs->count; i += 2) {
        const launch__yaml_node_t *key = specs->kids[i];
        const launch__yaml_node_t *value = specs->kids[i + 1];
        int type = type_of_key(key);
        if (type < 0) {
            char shown[120];
            launch__quote(key->text, key->bytes, shown, sizeof shown);
            launch__error_set(c->err, "spec.tfReplicaSpecs: replica type %s is unknown (line %d); "
                              "use Chief (or Master), Worker, PS or Evaluator", shown,
                              key->line);
            return RT_EINVAL;
        }
        if (seen[type] != NULL) {
            /* tf-operator would keep one of them at random (a Go map). */
            char first[120], second[120];
            launch__quote(seen[type]->text, seen[type]->bytes, first, sizeof first);
            launch__quote(key->text, key->bytes, second, sizeof second);
            launch__error_set(c->err, "spec.tfReplicaSpecs: %s (line %d) and %s (line %d) are "
                              "the same replica type; keep one", first, seen[type]->line, second,
                              key->line);
            return RT_EFORMAT;
        }
        seen[type] = key;
        if (launch__is_null(value)) {
            /* tf-operator refuses a replica type without a spec too. */
            launch__error_set(c->err, "spec.tfReplicaSpecs.%s: empty (line %d); give it a "
                              "mapping, e.g. %s: {replicas: 1}", key->text, key->line, key->text);
            return RT_EFORMAT;
        }
        /* The key is a replica type name, so it is safe to print as it is. */
        int rc = parse_replica_spec(c, value, type, key->text, &job->replicas[type]);
        if (rc != 0)
            return rc;
        job->present[type] = 1;
    }
    if (job->present[LAUNCH_TF_CHIEF] && job->present[LAUNCH_TF_MASTER]) {
        launch__error_set(c->err, "spec.tfReplicaSpecs: both Chief (line %d) and Master (line %d) "
                          "are given; they are the same role (Master is the older name), keep "
                          "one", seen[LAUNCH_TF_CHIEF]->line, seen[LAUNCH_TF_MASTER]->line);
        return RT_EINVAL;
    }
    uint64_t training = (uint64_t)job->replicas[LAUNCH_TF_CHIEF] +
                        job->replicas[LAUNCH_TF_MASTER] + job->replicas[LAUNCH_TF_WORKER];
    if (training == 0) {
        launch__error_set(c->err, "spec.tfReplicaSpecs: no Worker and no Chief/Master replica, "
                          "so there is nothing to train on; add a Worker (replicas >= 1) or a "
                          "Chief");
        return RT_EFORMAT;
    }
    return 0;
}

static int tfjob_parse_named(const char *yaml, size_t bytes, const char *source,
                             launch_tfjob_t *job_out, launch_error_t *err)
{
    launch__ctx_t ctx = {.source = source,
                         .kind_article = "a TFJob",
                         .examples = "see the tf-operator examples",
                         .err = err};
    launch__ctx_t *c = &ctx;
    launch__yaml_node_t *root = NULL;
    int rc = launch__yaml_load(yaml, bytes, source, "TFJob", &root, err);
    if (rc != 0)
        return rc;
    launch_tfjob_t job;
    memset(&job, 0, sizeof job);
    strcpy(job.namespace_name, "default");

    const launch__yaml_node_t *node, *metadata, *spec, *specs;
    if (root->kind != LAUNCH__YAML_MAP) {
        launch__error_set(err, "%s: the document is %s, not a mapping; give a TFJob manifest "
                          "(apiVersion, kind, metadata, spec)", source, launch__kind_text(root));
        rc = RT_EFORMAT;
        goto done;
    }
    if ((rc = launch__check_kind(c, root, "TFJob")) ||
        (rc = launch__get_string(c, root, "apiVersion", "apiVersion", true, &node)))
        goto done;
    if (strcmp(node->text, LAUNCH_TF_API_V1) != 0 &&
        strcmp(node->text, LAUNCH_TF_API_V1BETA1) != 0) {
        char shown[120];
        launch__quote(node->text, node->bytes, shown, sizeof shown);
        launch__error_set(err, "apiVersion: %s is not supported for a TFJob (line %d); use %s "
                          "(or the older %s)", shown, node->line, LAUNCH_TF_API_V1,
                          LAUNCH_TF_API_V1BETA1);
        rc = RT_EINVAL;
        goto done;
    }
    snprintf(job.api_version, sizeof job.api_version, "%s", node->text);

    if ((rc = launch__get_map(c, root, "metadata", "metadata", true, &metadata)) ||
        (rc = launch__get_string(c, metadata, "name", "metadata.name", true, &node)) ||
        (rc = launch__check_label(c, node, "metadata.name", true)))
        goto done;
    memcpy(job.name, node->text, node->bytes + 1);
    if ((rc = launch__get_string(c, metadata, "namespace", "metadata.namespace", false, &node)))
        goto done;
    if (node != NULL) {
        if ((rc = launch__check_label(c, node, "metadata.namespace", false)))
            goto done;
        memcpy(job.namespace_name, node->text, node->bytes + 1);
    }

    if ((rc = launch__get_map(c, root, "spec", "spec", true, &spec)) ||
        (rc = launch__get_map(c, spec, "tfReplicaSpecs", "spec.tfReplicaSpecs", true, &specs)) ||
        (rc = parse_replica_specs(c, specs, &job)))
        goto done;

    /* Each replica's Service (and pod) is named "<job>-<type>-<i>", a
     * DNS-1035 label: the longest of each type must fit in 63. */
    for (int t = 0; t < LAUNCH_TF_TYPES; t++) {
        if (job.replicas[t] == 0)
            continue;
        char longest[128];
        snprintf(longest, sizeof longest, "%s-%s-%u", job.name, type_lower[t],
                 job.replicas[t] - 1);
        if (strlen(longest) > LAUNCH_LABEL_MAX) {
            launch__error_set(err, "metadata.name: Service name \"%s\" (%s) would be %zu "
                              "characters, over the 63 of a DNS label; shorten the job name",
                              longest, type_names[t], strlen(longest));
            rc = RT_EINVAL;
            goto done;
        }
    }
    *job_out = job;
done:
    launch__yaml_free(root);
    return rc;
}

int launch_tfjob_parse(const char *yaml, size_t bytes, launch_tfjob_t *job, launch_error_t *err)
{
    return tfjob_parse_named(yaml, bytes, "TFJob", job, err);
}

int launch_tfjob_load(const char *path, launch_tfjob_t *job, launch_error_t *err)
{
    char *text = NULL;
    size_t bytes = 0;
    int rc = launch__file_read(path, "the TFJob YAML", LAUNCH_YAML_MAX_BYTES, &text, &bytes, err);
    if (rc != 0)
        return rc;
    rc = tfjob_parse_named(text, bytes, path, job, err);
    free(text);
    return rc;
}

/* ---- a TFJob as one MPI job --------------------------------------------- */

void launch_tf_map_free(launch_tf_map_t *map)
{
    if (map == NULL)
        return;
    launch_hostlist_free(&map->hosts);
    if (map->idle != NULL)
        for (size_t i = 0; i < map->idle_count; i++)
            free(map->idle[i]);
    free(map->idle);
    free(map->roles);
    free(map->idle_roles);
    map->idle = NULL;
    map->roles = NULL;
    map->idle_roles = NULL;
    map->idle_count = 0;
}

/* "<job>-<type>-<i>.<namespace>.svc[.<domain>]", malloc'd, or NULL with err. */
static char *host_name(const launch_tfjob_t *job, int type, uint32_t index, const char *domain,
                       launch_error_t *err)
{
    char host[LAUNCH_HOST_MAX + 64];
    bool has_domain = domain != NULL && domain[0] != '\0';
    int len = snprintf(host, sizeof host, "%s-%s-%u.%s.svc%s%s", job->name, type_lower[type],
                       index, job->namespace_name, has_domain ? "." : "",
                       has_domain ? domain : "");
    if (len < 0 || (size_t)len > LAUNCH_HOST_MAX) {
        launch__error_set(err, "--cluster-domain: host name of %s %u would be %d characters, "
                          "over the 253 of a DNS name; use a shorter domain, job name or "
                          "namespace", type_names[type], index, len);
        return NULL;
    }
    char *copy = strdup(host);
    if (copy == NULL)
        launch__error_set(err, "hosts: out of memory; retry");
    return copy;
}

int launch_tfjob_map(const launch_tfjob_t *job, const launch_tf_map_opts_t *opts,
                     launch_tf_map_t *map, launch_error_t *err)
{
    memset(map, 0, sizeof *map);
    const char *domain = opts->cluster_domain;
    if (domain != NULL && domain[0] != '\0' &&
        !launch_is_dns1123_subdomain(domain, strlen(domain))) {
        char shown[120];
        launch__quote(domain, strlen(domain), shown, sizeof shown);
        launch__error_set(err, "--cluster-domain: %s is not a DNS name (dot-separated labels of "
                          "lower-case letters, digits and '-'); use e.g. cluster.local", shown);
        return RT_EINVAL;
    }
    uint32_t slots = opts->slots ? opts->slots : 1;
    uint64_t training = 0, hosts_total = 0;
    bool valid = launch_is_dns1035_label(job->name, strlen(job->name)) &&
                 launch_is_dns1123_label(job->namespace_name, strlen(job->namespace_name)) &&
                 slots <= LAUNCH_SLOTS_MAX && !(job->present[LAUNCH_TF_CHIEF] &&
                                                job->present[LAUNCH_TF_MASTER]);
    for (int t = 0; t < LAUNCH_TF_TYPES; t++) {
        uint32_t max = (t == LAUNCH_TF_CHIEF || t == LAUNCH_TF_MASTER) ? 1 : LAUNCH_REPLICAS_MAX;
        valid = valid && job->replicas[t] <= max && (job->present[t] || job->replicas[t] == 0);
        hosts_total += job->replicas[t];
        if (t != LAUNCH_TF_PS && t != LAUNCH_TF_EVALUATOR)
            training += job->replicas[t];
    }
    if (!valid || training == 0) {
        launch__error_set(err, "job: not a validated TFJob; parse it with launch_tfjob_parse");
        return RT_EINVAL;
    }
    uint32_t ps = job->replicas[LAUNCH_TF_PS];
    if (opts->ps_mode && ps == 0) {
        launch__error_set(err, "spec.tfReplicaSpecs.PS: the program asks for "
                          "--variable_update=parameter_server but the TFJob has no parameter "
                          "servers; add a PS replica spec, or run with --variable_update=allreduce");
        return RT_EINVAL;
    }
    size_t ranked = (size_t)training + (opts->ps_mode ? ps : 0);
    size_t idle = (size_t)hosts_total - ranked;

    int rc = RT_ENOMEM;
    map->hosts.hosts = calloc(ranked, sizeof *map->hosts.hosts);
    map->hosts.slots = calloc(ranked, sizeof *map->hosts.slots);
    map->roles = calloc(ranked, sizeof *map->roles);
    map->idle = calloc(idle ? idle : 1, sizeof *map->idle);
    map->idle_roles = calloc(idle ? idle : 1, sizeof *map->idle_roles);
    if (map->hosts.hosts == NULL || map->hosts.slots == NULL || map->roles == NULL ||
        map->idle == NULL || map->idle_roles == NULL) {
        launch__error_set(err, "hosts: out of memory for %zu hosts; retry", ranked + idle);
        goto fail;
    }
    map->hosts.mpi = opts->mpi;

    /* Rank order: chief, workers, parameter servers (PS mode); then the
     * hosts that get no rank, in the same type order. */
    static const launch_tf_type_t order[] = {LAUNCH_TF_CHIEF, LAUNCH_TF_MASTER, LAUNCH_TF_WORKER,
                                             LAUNCH_TF_PS, LAUNCH_TF_EVALUATOR};
    uint64_t rank = 0;
    for (size_t o = 0; o < sizeof order / sizeof order[0]; o++) {
        launch_tf_type_t t = order[o];
        bool ranked_type = t != LAUNCH_TF_EVALUATOR && (t != LAUNCH_TF_PS || opts->ps_mode);
        for (uint32_t i = 0; i < job->replicas[t]; i++) {
            char *host = host_name(job, (int)t, i, domain, err);
            if (host == NULL) {
                rc = RT_EINVAL;
                goto fail;
            }
            launch_tf_role_t role = {.type = t, .index = i, .first_rank = 0};
            if (ranked_type) {
                size_t h = map->hosts.count++;
                uint32_t host_slots = t == LAUNCH_TF_PS ? 1 : slots;
                role.first_rank = rank;
                rank += host_slots;
                map->hosts.hosts[h] = host;
                map->hosts.slots[h] = host_slots;
                map->roles[h] = role;
                if (t == LAUNCH_TF_PS)
                    map->ps_ranks++;
            } else {
                map->idle[map->idle_count] = host;
                map->idle_roles[map->idle_count++] = role;
            }
        }
    }
    map->ranks = rank;
    /* The launcher of a TFJob runs in one of its pods, normally the chief's:
     * that host is this machine and is not waited for. */
    map->hosts.first_is_local = launch__host_is_local(map->hosts.hosts[0]);
    return 0;
fail:
    launch_tf_map_free(map);
    return rc;
}

int launch_tf_map_ps_ranks(const launch_tf_map_t *map, char **text)
{
    /* Up to 100000 ranks of at most 10 digits and a comma each. */
    size_t bytes = (size_t)map->ps_ranks * 12 + 1;
    char *out = malloc(bytes);
    if (out == NULL)
        return RT_ENOMEM;
    size_t used = 0;
    out[0] = '\0';
    for (size_t h = 0; h < map->hosts.count; h++) {
        if (map->roles[h].type != LAUNCH_TF_PS)
            continue;
        for (uint32_t s = 0; s < map->hosts.slots[h]; s++)
            used += (size_t)snprintf(out + used, bytes - used, "%s%llu", used ? "," : "",
                                     (unsigned long long)(map->roles[h].first_rank + s));
    }
    *text = out;
    return 0;
}

int launch_args_ps_mode(const char *const *args, size_t count)
{
    const char *value = launch_args_flag(args, count, "variable_update");
    return value != NULL && strcmp(value, "parameter_server") == 0;
}
