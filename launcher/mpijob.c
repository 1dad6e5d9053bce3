/* MPIJob manifest -> launch_job_t, for kubeflow.org/v2beta1 and v1
 * (mpiReplicaSpecs) and the legacy v1alpha1 (gpus / processingUnits /
 * replicas with per-node sizing). Every value is type- and range-checked
 * here, before anything is written or run: names are DNS labels, counts are
 * decimal integers in bounds, and each error names the field and the fix.
 * Types follow what Kubernetes itself would accept after YAML->JSON: a
 * quoted "2" is a string, not a number. */
#include "launcher.h"
#include "launcher_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"

const char *launch_mpi_name(launch_mpi_t mpi)
{
    switch (mpi) {
    case LAUNCH_MPI_OPENMPI:
        return "OpenMPI";
    case LAUNCH_MPI_INTEL:
        return "Intel";
    case LAUNCH_MPI_MPICH:
        return "MPICH";
    }
    return "?";
}

int launch_mpi_parse(const char *text, launch_mpi_t *mpi)
{
    if (strcmp(text, "OpenMPI") == 0)
        *mpi = LAUNCH_MPI_OPENMPI;
    else if (strcmp(text, "Intel") == 0)
        *mpi = LAUNCH_MPI_INTEL;
    else if (strcmp(text, "MPICH") == 0)
        *mpi = LAUNCH_MPI_MPICH;
    else
        return RT_EINVAL;
    return 0;
}

/* ---- names ------------------------------------------------------------- */

static bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

int launch_is_dns1123_label(const char *text, size_t bytes)
{
    if (bytes == 0 || bytes > LAUNCH_LABEL_MAX)
        return 0;
    for (size_t i = 0; i < bytes; i++)
        if (!is_lower_alnum(text[i]) && text[i] != '-')
            return 0;
    return is_lower_alnum(text[0]) && is_lower_alnum(text[bytes - 1]);
}

int launch_is_dns1035_label(const char *text, size_t bytes)
{
    return launch_is_dns1123_label(text, bytes) && text[0] >= 'a' && text[0] <= 'z';
}

int launch_is_dns1123_subdomain(const char *text, size_t bytes)
{
    if (bytes == 0 || bytes > LAUNCH_HOST_MAX)
        return 0;
    size_t start = 0;
    for (size_t i = 0; i <= bytes; i++) {
        if (i == bytes || text[i] == '.') {
            if (!launch_is_dns1123_label(text + start, i - start))
                return 0;
            start = i + 1;
        }
    }
    return 1;
}


/* ---- the job ----------------------------------------------------------- */

static const char api_v2beta1[] = "kubeflow.org/v2beta1";
static const char api_v1[] = "kubeflow.org/v1";
static const char api_v1alpha1[] = "kubeflow.org/v1alpha1";


/* Whole units in a resource quantity: "8", 8, "4000m". */
static int quantity_units(const launch__yaml_node_t *node, int64_t *units)
{
    if (node->kind != LAUNCH__YAML_SCALAR)
        return RT_EFORMAT;
    const char *s = node->text;
    size_t bytes = node->bytes;
    bool milli = bytes > 1 && s[bytes - 1] == 'm';
    size_t digits = milli ? bytes - 1 : bytes;
    if (!launch__all_digits(s, digits) || digits > 15)
        return RT_EFORMAT;
    int64_t v = 0;
    for (size_t i = 0; i < digits; i++)
        v = v * 10 + (s[i] - '0');
    if (milli) {
        if (v % 1000 != 0)
            return RT_ERANGE;
        v /= 1000;
    }
    *units = v;
    return 0;
}

/* Workers and units per worker for legacy v1alpha1, as its controller sized
 * them: total below the per-node count -> one worker with all of it; a
 * multiple -> total/perNode workers with perNode each; otherwise an error. */
static int parse_v1alpha1(launch__ctx_t *c, const launch__yaml_node_t *spec,
                          const launch_legacy_opts_t *legacy, launch_job_t *job)
{
    const int64_t units_max = (int64_t)LAUNCH_REPLICAS_MAX * LAUNCH_SLOTS_MAX;
    bool have_gpus, have_pu, have_replicas, have_gpn, have_pupn, have_slots;
    int64_t gpus = 0, pu = 0, replicas = 0, gpn = 0, pupn = 0, slots = 0;
    int rc;
    if ((rc = launch__get_int(c, spec, "gpus", "spec.gpus", 1, units_max, &have_gpus, &gpus)) ||
        (rc = launch__get_int(c, spec, "processingUnits", "spec.processingUnits", 1, units_max,
                              &have_pu, &pu)) ||
        (rc = launch__get_int(c, spec, "replicas", "spec.replicas", 1, LAUNCH_REPLICAS_MAX,
                              &have_replicas, &replicas)) ||
        (rc = launch__get_int(c, spec, "gpusPerNode", "spec.gpusPerNode", 1, LAUNCH_SLOTS_MAX,
                              &have_gpn, &gpn)) ||
        (rc = launch__get_int(c, spec, "processingUnitsPerNode", "spec.processingUnitsPerNode", 1,
                              LAUNCH_SLOTS_MAX, &have_pupn, &pupn)) ||
        (rc = launch__get_int(c, spec, "slotsPerWorker", "spec.slotsPerWorker", 1, LAUNCH_SLOTS_MAX,
                              &have_slots, &slots)))
        return rc;

    const launch__yaml_node_t *type_node;
    if ((rc = launch__get_string(c, spec, "processingResourceType", "spec.processingResourceType",
                                 false, &type_node)))
        return rc;
    const char *resource = "nvidia.com/gpu";
    if (type_node != NULL) {
        if (strcmp(type_node->text, "nvidia.com/gpu") != 0 && strcmp(type_node->text, "cpu") != 0) {
            char shown[120];
            launch__quote(type_node->text, type_node->bytes, shown, sizeof shown);
            launch__error_set(c->err, "spec.processingResourceType: %s is not supported (line "
                              "%d); use nvidia.com/gpu or cpu", shown, type_node->line);
            return RT_EINVAL;
        }
        resource = type_node->text;
    }

    int sources = (int)have_gpus + (int)have_pu + (int)have_replicas;
    if (have_gpus && have_pu) {
        launch__error_set(c->err, "spec.gpus: cannot specify both GPUs and ProcessingUnits at "
                          "the same time; keep spec.processingUnits (gpus is deprecated)");
        return RT_EINVAL;
    }
    if (sources == 0) {
        launch__error_set(c->err, "spec: a v1alpha1 MPIJob needs one of gpus, processingUnits "
                          "or replicas; add one, e.g. gpus: 16");
        return RT_EFORMAT;
    }

    uint32_t gpus_per_node = legacy && legacy->gpus_per_node ? legacy->gpus_per_node
                                                             : LAUNCH_GPUS_PER_NODE_DEFAULT;
    uint32_t pu_per_node = legacy && legacy->processing_units_per_node
                               ? legacy->processing_units_per_node
                               : gpus_per_node;
    int64_t workers = 0, units_per_worker = 0;
    if (have_gpus || have_pu) {
        int64_t total = have_gpus ? gpus : pu;
        int64_t per_node = have_gpus ? (have_gpn ? gpn : gpus_per_node)
                                     : (have_pupn ? pupn : pu_per_node);
        const char *what = have_gpus ? "GPUs" : "ProcessingUnits";
        if (total < per_node) {
            workers = 1;
            units_per_worker = total;
        } else if (total % per_node == 0) {
            workers = total / per_node;
            units_per_worker = per_node;
        } else {
            launch__error_set(c->err, "%s: specified #%s is not a multiple of %s per node "
                              "(%lld); ask for fewer than %lld or a multiple of %lld, or change "
                              "%s", have_gpus ? "spec.gpus" : "spec.processingUnits", what, what,
                              (long long)per_node, (long long)per_node, (long long)per_node,
                              have_gpus ? "spec.gpusPerNode / --gpus-per-node"
                                        : "spec.processingUnitsPerNode / "
                                          "--processing-units-per-node");
            return RT_EINVAL;
        }
        if (workers > (int64_t)LAUNCH_REPLICAS_MAX) {
            launch__error_set(c->err, "%s: %lld %s at %lld per node need %lld workers, over "
                              "%u; ask for fewer", have_gpus ? "spec.gpus" :
                              "spec.processingUnits", (long long)total, what,
                              (long long)per_node, (long long)workers, LAUNCH_REPLICAS_MAX);
            return RT_ERANGE;
        }
    } else {
        workers = replicas;
        /* Units per worker from the pod template's first container. */
        const launch__yaml_node_t *tmpl, *tspec, *containers, *resources, *limits, *value;
        if ((rc = launch__get_map(c, spec, "template", "spec.template", true, &tmpl)) ||
            (rc = launch__get_map(c, tmpl, "spec", "spec.template.spec", true, &tspec)) ||
            (rc = launch__map_get(c, tspec, "containers", "spec.template.spec.containers",
                                  &containers)))
            return rc;
        if (containers == NULL || containers->kind != LAUNCH__YAML_SEQ || containers->count == 0) {
            launch__error_set(c->err, "spec.template.spec.containers: expected a list with at "
                              "least one container; add the worker container");
            return RT_EFORMAT;
        }
        const launch__yaml_node_t *first = containers->kids[0];
        if ((rc = launch__want_map(c, first, "spec.template.spec.containers[0]")) ||
            (rc = launch__get_map(c, first, "resources",
                                  "spec.template.spec.containers[0].resources", false, &resources)))
            return rc;
        value = NULL;
        if (resources != NULL) {
            if ((rc = launch__get_map(c, resources, "limits",
                              "spec.template.spec.containers[0].resources.limits", false,
                              &limits)))
                return rc;
            if (limits != NULL &&
                (rc = launch__map_get(c, limits, resource,
                              "spec.template.spec.containers[0].resources.limits", &value)))
                return rc;
        }
        if (value != NULL) {
            int64_t units = 0;
            rc = quantity_units(value, &units);
            if (rc != 0 && !have_slots) {
                char shown[120];
                launch__quote(value->text ? value->text : "", value->text ? value->bytes : 0,
                              shown, sizeof shown);
                launch__error_set(c->err, "spec.template.spec.containers[0].resources.limits.%s: "
                                  "%s is not a whole number of units (line %d); use a whole "
                                  "number or set spec.slotsPerWorker", resource, shown,
                                  value->line);
                return RT_EINVAL;
            }
            if (rc == 0)
                units_per_worker = units;
        }
    }

    if (have_slots) {
        job->slots = (uint32_t)slots;
    } else if (units_per_worker > 0) {
        if (units_per_worker > (int64_t)LAUNCH_SLOTS_MAX) {
            launch__error_set(c->err, "spec: %lld units per worker is over %u slots; set "
                              "spec.slotsPerWorker", (long long)units_per_worker,
                              LAUNCH_SLOTS_MAX);
            return RT_ERANGE;
        }
        job->slots = (uint32_t)units_per_worker;
    } else {
        job->slots = 1;
    }
    job->workers = (uint32_t)workers;
    job->mpi = LAUNCH_MPI_OPENMPI;
    job->launcher_is_worker = 0;
    return 0;
}

/* Whether a container of the Launcher's pod template has a resource limit
 * named like a GPU ("nvidia.com/gpu", "amd.com/gpu": a name ending in
 * ".com/gpu" or holding "gpu", as the v1 controller's isGPULauncher tests). */
static int launcher_requests_gpu(launch__ctx_t *c, const launch__yaml_node_t *launcher,
                                 bool *gpu)
{
    const char *base = "spec.mpiReplicaSpecs.Launcher.template";
    const launch__yaml_node_t *tmpl, *tspec, *containers;
    char field[160];
    int rc;
    *gpu = false;
    snprintf(field, sizeof field, "%s.spec", base);
    if ((rc = launch__get_map(c, launcher, "template", base, false, &tmpl)) || tmpl == NULL ||
        (rc = launch__get_map(c, tmpl, "spec", field, false, &tspec)) || tspec == NULL)
        return rc;
    snprintf(field, sizeof field, "%s.spec.containers", base);
    if ((rc = launch__map_get(c, tspec, "containers", field, &containers)) || containers == NULL)
        return rc;
    if (containers->kind != LAUNCH__YAML_SEQ) {
        launch__error_set(c->err, "%s: expected a list, got %s (line %d); write one `- name: "
                          "...` item per container", field, launch__kind_text(containers),
                          containers->line);
        return RT_EFORMAT;
    }
    for (size_t i = 0; i < containers->count && !*gpu; i++) {
        const launch__yaml_node_t *resources, *limits;
        snprintf(field, sizeof field, "%s.spec.containers[%zu]", base, i);
        if ((rc = launch__want_map(c, containers->kids[i], field)))
            return rc;
        snprintf(field, sizeof field, "%s.spec.containers[%zu].resources", base, i);
        if ((rc = launch__get_map(c, containers->kids[i], "resources", field, false,
                                  &resources)))
            return rc;
        if (resources == NULL)
            continue;
        snprintf(field, sizeof field, "%s.spec.containers[%zu].resources.limits", base, i);
        if ((rc = launch__get_map(c, resources, "limits", field, false, &limits)))
            return rc;
        for (size_t k = 0; limits != NULL && k + 1 < limits->count; k += 2)
            *gpu = *gpu || memmem(limits->kids[k]->text, limits->kids[k]->bytes, "gpu", 3);
    }
    return rc;
}

/* Fields the operator acts on and the launcher only reads (and says so):
 * sshAuthMountPath, cleanPodPolicy (spec.runPolicy, or v1's older top-level
 * spec.cleanPodPolicy) and v2beta1's launcherCreationPolicy. Checked all the
 * same, so a typo is not taken for the operator's default. */
static int parse_operator_fields(launch__ctx_t *c, const launch__yaml_node_t *spec,
                                 launch_job_t *job)
{
    static const char *const clean_policies[] = {"None", "Running", "All", NULL};
    static const char *const creation_policies[] = {"AtStartup", "WaitForWorkersReady", NULL};
    const launch__yaml_node_t *node, *run_policy;
    int rc;
    if ((rc = launch__get_string(c, spec, "sshAuthMountPath", "spec.sshAuthMountPath", false,
                                 &node)))
        return rc;
    if (node != NULL) {
        bool ok = node->bytes > 0 && node->bytes < sizeof job->ssh_auth_mount_path &&
                  node->text[0] == '/';
        for (size_t i = 0; ok && i < node->bytes; i++)
            ok = node->text[i] > 0x20 && node->text[i] < 0x7f;
        if (!ok) {
            char shown[120];
            launch__quote(node->text, node->bytes, shown, sizeof shown);
            launch__error_set(c->err, "spec.sshAuthMountPath: %s is not an absolute path of "
                              "printable characters without spaces (line %d); use e.g. "
                              "/root/.ssh or /home/mpiuser/.ssh", shown, node->line);
            return RT_EINVAL;
        }
        memcpy(job->ssh_auth_mount_path, node->text, node->bytes + 1);
        job->ssh_auth_mount_path_set = 1;
    }
    if ((rc = launch__get_map(c, spec, "runPolicy", "spec.runPolicy", false, &run_policy)) ||
        (run_policy != NULL &&
         (rc = launch__get_enum(c, run_policy, "cleanPodPolicy", "spec.runPolicy.cleanPodPolicy",
                                clean_policies, job->clean_pod_policy,
                                sizeof job->clean_pod_policy))))
        return rc;
    if (job->clean_pod_policy[0] == '\0' && strcmp(job->api_version, api_v1) == 0) {
        if ((rc = launch__get_enum(c, spec, "cleanPodPolicy", "spec.cleanPodPolicy",
                                   clean_policies, job->clean_pod_policy,
                                   sizeof job->clean_pod_policy)))
            return rc;
        job->clean_pod_policy_in_spec = job->clean_pod_policy[0] != '\0';
    }
    if (strcmp(job->api_version, api_v2beta1) == 0)
        rc = launch__get_enum(c, spec, "launcherCreationPolicy", "spec.launcherCreationPolicy",
                              creation_policies, job->launcher_creation_policy,
                              sizeof job->launcher_creation_policy);
    return rc;
}

/* kubeflow.org/v2beta1 and v1: slotsPerWorker, mpiImplementation,
 * runLauncherAsWorker, sshAuthMountPath, mpiReplicaSpecs.{Launcher,Worker}. */
static int parse_replica_specs(launch__ctx_t *c, const launch__yaml_node_t *spec, launch_job_t *job)
{
    int rc;
    bool have;
    int64_t value;
    if ((rc = launch__get_int(c, spec, "slotsPerWorker", "spec.slotsPerWorker", 1, LAUNCH_SLOTS_MAX,
                      &have, &value)))
        return rc;
    job->slots = have ? (uint32_t)value : 1;

    const launch__yaml_node_t *node;
    if ((rc = launch__get_string(c, spec, "mpiImplementation", "spec.mpiImplementation", false,
                                 &node)))
        return rc;
    job->mpi = LAUNCH_MPI_OPENMPI;
    if (node != NULL && launch_mpi_parse(node->text, &job->mpi) != 0) {
        char shown[120];
        launch__quote(node->text, node->bytes, shown, sizeof shown);
        launch__error_set(c->err, "spec.mpiImplementation: %s is not supported (line %d); use "
                          "OpenMPI, Intel or MPICH", shown, node->line);
        return RT_EINVAL;
    }

    bool as_worker = false;
    if ((rc = launch__get_bool(c, spec, "runLauncherAsWorker", "spec.runLauncherAsWorker",
                               &as_worker)))
        return rc;
    job->launcher_is_worker = as_worker;

    if ((rc = parse_operator_fields(c, spec, job)))
        return rc;

    const launch__yaml_node_t *specs, *launcher, *worker;
    if ((rc = launch__get_map(c, spec, "mpiReplicaSpecs", "spec.mpiReplicaSpecs", true, &specs)) ||
        (rc = launch__get_map(c, specs, "Launcher", "spec.mpiReplicaSpecs.Launcher", true,
                              &launcher)) ||
        (rc = launch__get_map(c, specs, "Worker", "spec.mpiReplicaSpecs.Worker", false, &worker)))
        return rc;
    if ((rc = launch__get_int(c, launcher, "replicas", "spec.mpiReplicaSpecs.Launcher.replicas", 1,
                              1, &have, &value)))
        return rc;
    /* The v1 controller lists a Launcher that requests a GPU first in the
     * hostfile ("<job>-launcher slots=<slotsPerWorker>"): it runs ranks. */
    bool gpu = false;
    if (strcmp(job->api_version, api_v1) == 0 &&
        (rc = launcher_requests_gpu(c, launcher, &gpu)))
        return rc;
    job->launcher_gpu = gpu;
    job->launcher_is_worker = job->launcher_is_worker || gpu;
    job->workers = 0;
    if (worker != NULL) {
        if ((rc = launch__get_int(c, worker, "replicas", "spec.mpiReplicaSpecs.Worker.replicas", 1,
                          LAUNCH_REPLICAS_MAX, &have, &value)))
            return rc;
        /* The v2beta1 controller defaults a missing count to 0, then its
         * validation rejects the job; the v1 (training-operator) one makes 1. */
        if (!have && strcmp(job->api_version, api_v2beta1) == 0) {
            launch__error_set(c->err, "spec.mpiReplicaSpecs.Worker.replicas: missing (the Worker "
                              "spec starts at line %d); the v2beta1 controller defaults it to 0 and then "
                              "rejects the job (must be greater than or equal to 1); set it to "
                              "the number of worker pods, e.g. replicas: 2", worker->line);
            return RT_EFORMAT;
        }
        job->workers = have ? (uint32_t)value : 1;
    } else if (!job->launcher_is_worker) {
        launch__error_set(c->err, "spec.mpiReplicaSpecs.Worker: missing, so there is nothing to "
                          "run on; add a Worker replica spec (or set spec.runLauncherAsWorker: "
                          "true)");
        return RT_EFORMAT;
    }
    return 0;
}

int launch_job_parse(const char *yaml, size_t bytes, const launch_legacy_opts_t *legacy,
                     launch_job_t *job_out, launch_error_t *err)
{
    return launch__job_parse_named(yaml, bytes, "MPIJob", legacy, job_out, err);
}

int launch__job_parse_named(const char *yaml, size_t bytes, const char *source,
                            const launch_legacy_opts_t *legacy, launch_job_t *job_out,
                            launch_error_t *err)
{
    launch__ctx_t ctx = {.source = source,
                         .kind_article = "an MPIJob",
                         .examples = "see deploy/ or the mpi-operator examples",
                         .err = err};
    launch__ctx_t *c = &ctx;
    launch__yaml_node_t *root = NULL;
    int rc = launch__yaml_load(yaml, bytes, source, "MPIJob", &root, err);
    if (rc != 0)
        return rc;
    launch_job_t job;
    memset(&job, 0, sizeof job);
    strcpy(job.namespace_name, "default");
    strcpy(job.ssh_auth_mount_path, "/root/.ssh");

    const launch__yaml_node_t *node, *metadata, *spec;
    if (root->kind != LAUNCH__YAML_MAP) {
        launch__error_set(err, "%s: the document is %s, not a mapping; give an MPIJob manifest "
                          "(apiVersion, kind, metadata, spec)", source, launch__kind_text(root));
        rc = RT_EFORMAT;
        goto done;
    }
    if ((rc = launch__check_kind(c, root, "MPIJob")) ||
        (rc = launch__get_string(c, root, "apiVersion", "apiVersion", true, &node)))
        goto done;
    if (strcmp(node->text, api_v2beta1) != 0 && strcmp(node->text, api_v1) != 0 &&
        strcmp(node->text, api_v1alpha1) != 0) {
        char shown[120];
        launch__quote(node->text, node->bytes, shown, sizeof shown);
        launch__error_set(err, "apiVersion: %s is not supported (line %d); use %s (or the "
                          "older %s, %s)", shown, node->line, api_v2beta1, api_v1, api_v1alpha1);
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

    if ((rc = launch__get_map(c, root, "spec", "spec", true, &spec)))
        goto done;
    if (strcmp(job.api_version, api_v1alpha1) == 0)
        rc = parse_v1alpha1(c, spec, legacy, &job);
    else
        rc = parse_replica_specs(c, spec, &job);
    if (rc != 0)
        goto done;

    /* Pod hostnames are DNS labels too: the longest is the last worker's. */
    char longest[128];
    if (job.workers > 0)
        snprintf(longest, sizeof longest, "%s-worker-%u", job.name, job.workers - 1);
    else
        snprintf(longest, sizeof longest, "%s-launcher", job.name);
    if (strlen(longest) > LAUNCH_LABEL_MAX ||
        (job.launcher_is_worker && strlen(job.name) + strlen("-launcher") > LAUNCH_LABEL_MAX)) {
        launch__error_set(err, "metadata.name: pod name \"%s\" would be %zu characters, over the "
                          "63 of a DNS label; shorten the job name", longest, strlen(longest));
        rc = RT_EINVAL;
        goto done;
    }
    *job_out = job;
done:
    launch__yaml_free(root);
    return rc;
}

int launch_job_load(const char *path, const launch_legacy_opts_t *legacy, launch_job_t *job,
                    launch_error_t *err)
{
    char *text = NULL;
    size_t bytes = 0;
    int rc = launch__file_read(path, "the MPIJob YAML", LAUNCH_YAML_MAX_BYTES, &text, &bytes, err);
    if (rc != 0)
        return rc;
    rc = launch__job_parse_named(text, bytes, path, legacy, job, err);
    free(text);
    return rc;
}
