/* Unit tests for the launcher's MPIJob parser: every API version and MPI
 * implementation on fixtures, defaults, legacy v1alpha1 sizing and its
 * error, and a table of bad and hostile inputs that must each be refused
 * with an error naming the field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/common.h"
#include "launcher/launcher.h"

#ifndef FIXTURE_DIR
#error "FIXTURE_DIR must point at tests/unit/fixtures"
#endif

static launch_job_t load_ok(const char *name, const launch_legacy_opts_t *legacy)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/mpijob/%s", FIXTURE_DIR, name);
    launch_job_t job;
    launch_error_t err = {{0}};
    int rc = launch_job_load(path, legacy, &job, &err);
    if (rc != 0)
        fprintf(stderr, "unexpected error for %s: %s\n", name, err.text);
    assert_int_equal(rc, 0);
    return job;
}

static void test_v2beta1_2x8(void **state)
{
    (void)state;
    launch_job_t job = load_ok("v2beta1-2x8.yaml", NULL);
    assert_string_equal(job.api_version, "kubeflow.org/v2beta1");
    assert_string_equal(job.name, "tensorflow-benchmarks");
    assert_string_equal(job.namespace_name, "default");
    assert_int_equal(job.mpi, LAUNCH_MPI_OPENMPI);
    assert_int_equal(job.workers, 2);
    assert_int_equal(job.slots, 8);
    assert_int_equal(job.launcher_is_worker, 0);
    assert_string_equal(job.ssh_auth_mount_path, "/root/.ssh");
}

static void test_v2beta1_defaults(void **state)
{
    (void)state;
    launch_job_t job = load_ok("v2beta1-defaults.yaml", NULL);
    assert_string_equal(job.name, "minimal");
    assert_string_equal(job.namespace_name, "default");
    assert_int_equal(job.workers, 1);
    assert_int_equal(job.slots, 1); /* slotsPerWorker defaults to 1 */
    assert_int_equal(job.mpi, LAUNCH_MPI_OPENMPI);
}

static void test_v2beta1_each_mpi(void **state)
{
    (void)state;
    launch_job_t intel = load_ok("v2beta1-intel.yaml", NULL);
    assert_int_equal(intel.mpi, LAUNCH_MPI_INTEL);
    assert_string_equal(intel.namespace_name, "hpc");
    assert_int_equal(intel.workers, 3);
    assert_int_equal(intel.slots, 2);
    assert_string_equal(intel.ssh_auth_mount_path, "/home/mpiuser/.ssh");
    launch_job_t mpich = load_ok("v2beta1-mpich.yaml", NULL);
    assert_int_equal(mpich.mpi, LAUNCH_MPI_MPICH);
    assert_int_equal(mpich.workers, 2);
    assert_int_equal(mpich.slots, 4);
    assert_string_equal(launch_mpi_name(LAUNCH_MPI_OPENMPI), "OpenMPI");
    assert_string_equal(launch_mpi_name(LAUNCH_MPI_INTEL), "Intel");
    assert_string_equal(launch_mpi_name(LAUNCH_MPI_MPICH), "MPICH");
}

static void test_v2beta1_launcher_as_worker(void **state)
{
    (void)state;
    launch_job_t job = load_ok("v2beta1-launcher-worker.yaml", NULL);
    assert_int_equal(job.launcher_is_worker, 1);
    assert_string_equal(job.namespace_name, "ml");
    assert_int_equal(job.workers, 2);
    assert_int_equal(job.slots, 4);
}

static launch_job_t parse_ok(const char *yaml)
{
    launch_job_t job;
    launch_error_t err = {{0}};
    int rc = launch_job_parse(yaml, strlen(yaml), NULL, &job, &err);
    if (rc != 0)
        fprintf(stderr, "unexpected error: %s\n", err.text);
    assert_int_equal(rc, 0);
    return job;
}

static void test_launcher_only_job(void **state)
{
    (void)state;
    /* No Worker spec is fine when the launcher is the worker. */
    launch_job_t job = parse_ok("apiVersion: kubeflow.org/v2beta1\nkind: MPIJob\nmetadata: "
                                "{name: solo}\nspec:\n  runLauncherAsWorker: true\n  "
                                "slotsPerWorker: 2\n  mpiReplicaSpecs:\n    Launcher: "
                                "{replicas: 1}\n");
    assert_int_equal(job.workers, 0);
    assert_int_equal(job.launcher_is_worker, 1);
    assert_int_equal(job.slots, 2);
}

static void test_v1(void **state)
{
    (void)state;
    launch_job_t job = load_ok("v1.yaml", NULL);
    assert_string_equal(job.api_version, "kubeflow.org/v1");
    assert_string_equal(job.name, "v1-job");
    assert_string_equal(job.namespace_name, "team-a");
    assert_int_equal(job.workers, 4);
    assert_int_equal(job.slots, 2);
    /* v1 (training-operator) defaults a missing Worker.replicas to 1; for
     * v2beta1 it is an error (see bad_cases). */
    job = parse_ok("apiVersion: kubeflow.org/v1\nkind: MPIJob\nmetadata: {name: j}\nspec:\n"
                   "  mpiReplicaSpecs:\n    Launcher: {replicas: 1}\n    Worker: {}\n");
    assert_int_equal(job.workers, 1);
}

/* Other objects beside the MPIJob (a claim, a ComputeDomain) are what
 * `kubectl apply -f` files hold: the only MPIJob is taken. */
static void test_other_documents_beside_the_job(void **state)
{
    (void)state;
    launch_job_t job = load_ok("pvc-and-mpijob.yaml", NULL);
    assert_string_equal(job.name, "resnet");
    assert_string_equal(job.namespace_name, "training");
    assert_int_equal(job.workers, 18);
    assert_int_equal(job.slots, 4);
    /* An MPIJob and a TFJob in one file: each parser takes its own. */
    const char *both = "kind: ComputeDomain\nmetadata: {name: cd}\n---\n"
                       "apiVersion: kubeflow.org/v1\nkind: TFJob\nmetadata: {name: tf}\n"
                       "spec: {tfReplicaSpecs: {Worker: {replicas: 2}}}\n---\n"
                       "apiVersion: kubeflow.org/v2beta1\nkind: MPIJob\nmetadata: {name: mpi}\n"
                       "spec: {mpiReplicaSpecs: {Launcher: {replicas: 1}, Worker: {replicas: 2}}}"
                       "\n---\n";
    launch_error_t err = {{0}};
    int rc = launch_job_parse(both, strlen(both), NULL, &job, &err);
    print_message("MPIJob among three: rc %d %s\n", rc, err.text);
    assert_int_equal(rc, 0);
    assert_string_equal(job.name, "mpi");
    assert_int_equal(job.workers, 2);
    launch_tfjob_t tf;
    assert_int_equal(launch_tfjob_parse(both, strlen(both), &tf, &err), 0);
    assert_string_equal(tf.name, "tf");
    /* A TFJob and a claim given as an MPIJob: the flag to use. */
    const char *tf_only = "kind: PersistentVolumeClaim\n---\napiVersion: kubeflow.org/v1\n"
                          "kind: TFJob\n";
    assert_int_equal(launch_job_parse(tf_only, strlen(tf_only), NULL, &job, &err), RT_EFORMAT);
    print_message("TFJob and a claim: %s\n", err.text);
    assert_non_null(strstr(err.text, "none of the 2 documents is an MPIJob"));
    assert_non_null(strstr(err.text, "for a TFJob use --tfjob"));
}

/* An MPIJob of the given version whose Launcher has these containers. */
static void expect_gpu_launcher(const char *version, const char *containers, int listed)
{
    char yaml[1024];
    snprintf(yaml, sizeof yaml, "apiVersion: kubeflow.org/%s\nkind: MPIJob\nmetadata: {name: "
             "j}\nspec:\n  mpiReplicaSpecs:\n    Launcher:\n      template:\n        spec:\n"
             "          containers:\n%s    Worker: {replicas: 3}\n", version, containers);
    launch_job_t job = parse_ok(yaml);
    assert_int_equal(job.launcher_gpu, listed);
    assert_int_equal(job.launcher_is_worker, listed);
}

/* v1: a Launcher that requests a GPU is listed first by the v1 controller,
 * with slotsPerWorker slots; one without is not, and v2beta1 lists the
 * launcher only with runLauncherAsWorker. */
static void test_v1_gpu_launcher(void **state)
{
    (void)state;
    launch_job_t job = load_ok("v1-gpu-launcher.yaml", NULL);
    assert_int_equal(job.launcher_is_worker, 1);
    assert_int_equal(job.launcher_gpu, 1);
    assert_int_equal(job.workers, 2);
    assert_int_equal(job.slots, 2);
    launch_hostlist_t list;
    launch_error_t err = {{0}};
    assert_int_equal(launch_hostlist_from_job(&job, NULL, &list, &err), 0);
    char *text = NULL;
    size_t bytes = 0;
    assert_int_equal(launch_hostfile_render(&list, &text, &bytes), 0);
    assert_string_equal(text, "tf-gpu-launcher.tf-gpu.team-b.svc slots=2\n"
                              "tf-gpu-worker-0.tf-gpu.team-b.svc slots=2\n"
                              "tf-gpu-worker-1.tf-gpu.team-b.svc slots=2\n");
    assert_int_equal(list.first_is_local, 1); /* the launcher is this machine */
    free(text);
    launch_hostlist_free(&list);
    job = load_ok("v1.yaml", NULL);
    assert_int_equal(job.launcher_is_worker, 0);
    assert_int_equal(job.launcher_gpu, 0);
    /* Any limit whose name says gpu counts, as in the controller; v2beta1
     * lists the launcher only with runLauncherAsWorker. */
    expect_gpu_launcher("v1", "          - name: a\n          - name: b\n"
                              "            resources: {limits: {amd.com/gpu: 1}}\n", 1);
    expect_gpu_launcher("v2beta1", "          - name: a\n"
                                   "            resources: {limits: {nvidia.com/gpu: 1}}\n", 0);
}

static void test_v1alpha1_gpus16(void **state)
{
    (void)state;
    /* Default 8 GPUs per node: 16 -> 2 workers x 8. */
    launch_job_t job = load_ok("v1alpha1-gpus16.yaml", NULL);
    assert_string_equal(job.api_version, "kubeflow.org/v1alpha1");
    assert_int_equal(job.workers, 2);
    assert_int_equal(job.slots, 8);
    /* --gpus-per-node 4: 4 workers x 4; 1: 16 x 1; 32: one worker with all 16. */
    launch_legacy_opts_t four = {.gpus_per_node = 4};
    job = load_ok("v1alpha1-gpus16.yaml", &four);
    assert_int_equal(job.workers, 4);
    assert_int_equal(job.slots, 4);
    launch_legacy_opts_t one = {.gpus_per_node = 1};
    job = load_ok("v1alpha1-gpus16.yaml", &one);
    assert_int_equal(job.workers, 16);
    assert_int_equal(job.slots, 1);
    launch_legacy_opts_t many = {.gpus_per_node = 32};
    job = load_ok("v1alpha1-gpus16.yaml", &many);
    assert_int_equal(job.workers, 1);
    assert_int_equal(job.slots, 16);
}

static void test_v1alpha1_below_per_node(void **state)
{
    (void)state;
    launch_job_t job = load_ok("v1alpha1-gpus4.yaml", NULL);
    assert_int_equal(job.workers, 1);
    assert_int_equal(job.slots, 4);
}

static void test_v1alpha1_not_multiple(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/mpijob/v1alpha1-gpus12.yaml", FIXTURE_DIR);
    launch_job_t job;
    launch_error_t err = {{0}};
    assert_int_equal(launch_job_load(path, NULL, &job, &err), RT_EINVAL);
    assert_non_null(strstr(err.text, "specified #GPUs is not a multiple of GPUs per node (8)"));
    assert_int_equal(strncmp(err.text, "spec.gpus: ", 11), 0);
    launch_legacy_opts_t five = {.gpus_per_node = 5};
    assert_int_equal(launch_job_load(path, &five, &job, &err), RT_EINVAL);
    assert_non_null(strstr(err.text, "specified #GPUs is not a multiple of GPUs per node (5)"));
    /* 12 is a multiple of 6 and 4, and below 16. */
    launch_legacy_opts_t six = {.gpus_per_node = 6};
    job = load_ok("v1alpha1-gpus12.yaml", &six);
    assert_int_equal(job.workers, 2);
    assert_int_equal(job.slots, 6);
    launch_legacy_opts_t sixteen = {.gpus_per_node = 16};
    job = load_ok("v1alpha1-gpus12.yaml", &sixteen);
    assert_int_equal(job.workers, 1);
    assert_int_equal(job.slots, 12);
}

static void test_v1alpha1_spec_per_node_wins(void **state)
{
    (void)state;
    /* spec.gpusPerNode: 4 overrides --gpus-per-node (8 by default). */
    launch_job_t job = load_ok("v1alpha1-gpus-per-node.yaml", NULL);
    assert_int_equal(job.workers, 3);
    assert_int_equal(job.slots, 4);
}

static void test_v1alpha1_processing_units(void **state)
{
    (void)state;
    launch_job_t job = load_ok("v1alpha1-processing-units.yaml", NULL);
    assert_int_equal(job.workers, 4);
    assert_int_equal(job.slots, 2);
}

static void test_v1alpha1_replicas(void **state)
{
    (void)state;
    /* Units per worker from containers[0].resources.limits. */
    launch_job_t job = load_ok("v1alpha1-replicas.yaml", NULL);
    assert_int_equal(job.workers, 3);
    assert_int_equal(job.slots, 4);
    job = load_ok("v1alpha1-replicas-cpu.yaml", NULL);
    assert_int_equal(job.workers, 2);
    assert_int_equal(job.slots, 6); /* cpu: "6000m" */
    /* slotsPerWorker wins over the units. */
    const char *yaml = "apiVersion: kubeflow.org/v1alpha1\nkind: MPIJob\nmetadata: {name: x}\n"
                       "spec:\n  replicas: 2\n  slotsPerWorker: 3\n  template:\n    spec:\n"
                       "      containers:\n      - name: w\n        resources: {limits: "
                       "{nvidia.com/gpu: 8}}\n";
    launch_error_t err = {{0}};
    assert_int_equal(launch_job_parse(yaml, strlen(yaml), NULL, &job, &err), 0);
    assert_int_equal(job.workers, 2);
    assert_int_equal(job.slots, 3);
    /* No limits: one slot per worker. */
    yaml = "apiVersion: kubeflow.org/v1alpha1\nkind: MPIJob\nmetadata: {name: x}\n"
           "spec:\n  replicas: 5\n  template:\n    spec:\n      containers:\n      - name: w\n";
    assert_int_equal(launch_job_parse(yaml, strlen(yaml), NULL, &job, &err), 0);
    assert_int_equal(job.workers, 5);
    assert_int_equal(job.slots, 1);
}

static void test_utf8_accepted(void **state)
{
    (void)state;
    /* Two-, three- and four-byte characters in comments and strings. */
    const char *yaml = "# caf\xc3\xa9 \xe2\x98\x95 \xf0\x9d\x84\x9e\n"
                       "apiVersion: kubeflow.org/v2beta1\nkind: MPIJob\nmetadata:\n  name: job\n"
                       "  annotations: {note: \"\xe6\x97\xa5\xe6\x9c\xac\"}\n"
                       "spec:\n  mpiReplicaSpecs:\n    Launcher: {replicas: 1}\n"
                       "    Worker: {replicas: 3}\n";
    launch_job_t job;
    launch_error_t err = {{0}};
    assert_int_equal(launch_job_parse(yaml, strlen(yaml), NULL, &job, &err), 0);
    assert_int_equal(job.workers, 3);
}

static void test_single_quoted(void **state)
{
    (void)state;
    /* One escaped quote at a time is read right (the workaround for
     * libfyaml refuses only two in a row). */
    const char *yaml = "apiVersion: 'kubeflow.org/v2beta1'\nkind: 'MPIJob'\nmetadata:\n"
                       "  name: 'job'\nspec:\n  sshAuthMountPath: '/home/o''neil/.ss''h'\n"
                       "  mpiReplicaSpecs:\n    Launcher: {replicas: 1}\n"
                       "    Worker: {replicas: 2}\n";
    launch_job_t job;
    launch_error_t err = {{0}};
    assert_int_equal(launch_job_parse(yaml, strlen(yaml), NULL, &job, &err), 0);
    assert_string_equal(job.ssh_auth_mount_path, "/home/o'neil/.ss'h");
    assert_string_equal(job.name, "job");
}

static void test_label_checks(void **state)
{
    (void)state;
    assert_true(launch_is_dns1123_label("a", 1));
    assert_true(launch_is_dns1123_label("0abc-9", 6));
    assert_false(launch_is_dns1123_label("", 0));
    assert_false(launch_is_dns1123_label("-a", 2));
    assert_false(launch_is_dns1123_label("a-", 2));
    assert_false(launch_is_dns1123_label("a_b", 3));
    assert_false(launch_is_dns1123_label("A", 1));
    char long_label[65];
    memset(long_label, 'a', 64);
    long_label[64] = '\0';
    assert_true(launch_is_dns1123_label(long_label, 63));
    assert_false(launch_is_dns1123_label(long_label, 64));
    assert_true(launch_is_dns1035_label("abc", 3));
    assert_false(launch_is_dns1035_label("1abc", 4));
    assert_true(launch_is_dns1123_subdomain("a.b-c.d", 7));
    assert_false(launch_is_dns1123_subdomain("a..b", 4));
    assert_false(launch_is_dns1123_subdomain(".a", 2));
    assert_false(launch_is_dns1123_subdomain("a.", 2));
}

/* ---- bad inputs --------------------------------------------------------- */

#define V2 "apiVersion: kubeflow.org/v2beta1\nkind: MPIJob\n"
#define SPEC_OK "spec:\n  mpiReplicaSpecs:\n    Launcher: {replicas: 1}\n    Worker: {replicas: 2}\n"
#define META_OK "metadata:\n  name: job\n"
#define V1A "apiVersion: kubeflow.org/v1alpha1\nkind: MPIJob\nmetadata: {name: legacy}\n"
#define WORKER_REPLICAS(x)                                                                     \
    V2 META_OK "spec:\n  mpiReplicaSpecs:\n    Launcher: {replicas: 1}\n    Worker:\n      "   \
               "replicas: " x "\n"
#define SLOTS(x)                                                                               \
    V2 META_OK "spec:\n  slotsPerWorker: " x "\n  mpiReplicaSpecs:\n    Launcher: {replicas: " \
               "1}\n    Worker: {replicas: 1}\n"

typedef struct {
    const char *what;
    const char *yaml;
    int rc;           /* expected return code */
    const char *field; /* the error must start with this */
    const char *says;  /* and contain this */
} bad_case_t;

static const bad_case_t bad_cases[] = {
    {"shell metacharacters in name", V2 "metadata:\n  name: \"a;rm -rf /\"\n" SPEC_OK, RT_EINVAL,
     "metadata.name: ", "not a valid DNS-1035 label"},
    {"newline in name", V2 "metadata:\n  name: \"job\\nevil-worker-0 slots=64\"\n" SPEC_OK,
     RT_EINVAL, "metadata.name: ", "\\n"},
    {"slots= in name", V2 "metadata:\n  name: \"x slots=99\"\n" SPEC_OK, RT_EINVAL,
     "metadata.name: ", "DNS-1035"},
    {"upper case name", V2 "metadata:\n  name: Job\n" SPEC_OK, RT_EINVAL, "metadata.name: ",
     "DNS-1035"},
    {"leading dash", V2 "metadata:\n  name: \"-job\"\n" SPEC_OK, RT_EINVAL, "metadata.name: ",
     "DNS-1035"},
    {"trailing dash", V2 "metadata:\n  name: job-\n" SPEC_OK, RT_EINVAL, "metadata.name: ",
     "DNS-1035"},
    {"digit first (Service names are DNS-1035)", V2 "metadata:\n  name: 1job\n" SPEC_OK,
     RT_EINVAL, "metadata.name: ", "starting with a letter"},
    {"64-character name",
     V2 "metadata:\n  name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n" SPEC_OK,
     RT_EINVAL, "metadata.name: ", "at most 63"},
    {"empty name", V2 "metadata:\n  name: \"\"\n" SPEC_OK, RT_EINVAL, "metadata.name: ",
     "DNS-1035"},
    {"name is a number", V2 "metadata:\n  name: 123\n" SPEC_OK, RT_EFORMAT, "metadata.name: ",
     "expected a string, got an integer"},
    {"name is a mapping", V2 "metadata:\n  name: {a: b}\n" SPEC_OK, RT_EFORMAT,
     "metadata.name: ", "got a mapping"},
    {"name with a NUL escape", V2 "metadata:\n  name: \"job\\0x\"\n" SPEC_OK, RT_EFORMAT,
     "metadata.name: ", "NUL"},
    {"path in namespace", V2 "metadata:\n  name: job\n  namespace: \"../etc\"\n" SPEC_OK,
     RT_EINVAL, "metadata.namespace: ", "DNS-1123 label"},
    {"newline in namespace", V2 "metadata:\n  name: job\n  namespace: \"a\\nb\"\n" SPEC_OK,
     RT_EINVAL, "metadata.namespace: ", "\\n"},
    {"pod name over 63", V2 "metadata:\n  name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
     "spec:\n  mpiReplicaSpecs:\n    Launcher: {replicas: 1}\n    Worker: {replicas: 100}\n",
     RT_EINVAL, "metadata.name: ", "over the 63"},
    {"negative replicas", WORKER_REPLICAS("-1"), RT_ERANGE,
     "spec.mpiReplicaSpecs.Worker.replicas: ", "1..100000"},
    {"zero replicas", WORKER_REPLICAS("0"), RT_ERANGE, "spec.mpiReplicaSpecs.Worker.replicas: ",
     "out of range"},
    {"too many replicas", WORKER_REPLICAS("100001"), RT_ERANGE,
     "spec.mpiReplicaSpecs.Worker.replicas: ", "out of range"},
    {"huge replicas", WORKER_REPLICAS("99999999999999999999999999"), RT_ERANGE,
     "spec.mpiReplicaSpecs.Worker.replicas: ", "out of range"},
    {"replicas as a string", WORKER_REPLICAS("\"2\""), RT_EFORMAT,
     "spec.mpiReplicaSpecs.Worker.replicas: ", "expected an integer, got a string"},
    {"replicas with a fraction", WORKER_REPLICAS("2.5"), RT_EFORMAT,
     "spec.mpiReplicaSpecs.Worker.replicas: ", "expected an integer"},
    {"replicas as a boolean", WORKER_REPLICAS("true"), RT_EFORMAT,
     "spec.mpiReplicaSpecs.Worker.replicas: ", "got a boolean"},
    {"replicas in hex", WORKER_REPLICAS("0x10"), RT_EFORMAT,
     "spec.mpiReplicaSpecs.Worker.replicas: ", "decimal"},
    /* Kubernetes' YAML decoder reads 010 as octal 8: refused, not read as 10. */
    {"replicas with a leading zero", WORKER_REPLICAS("010"), RT_EFORMAT,
     "spec.mpiReplicaSpecs.Worker.replicas: ", "\"010\" has a leading zero (line 9)"},
    {"replicas 00", WORKER_REPLICAS("00"), RT_EFORMAT, "spec.mpiReplicaSpecs.Worker.replicas: ",
     "leading zero"},
    {"replicas +02", WORKER_REPLICAS("+02"), RT_EFORMAT, "spec.mpiReplicaSpecs.Worker.replicas: ",
     "leading zero"},
    {"slots with a leading zero", SLOTS("08"), RT_EFORMAT, "spec.slotsPerWorker: ",
     "\"08\" has a leading zero (line 6)"},
    {"v1alpha1 gpus with a leading zero", V1A "spec:\n  gpus: 016\n", RT_EFORMAT, "spec.gpus: ",
     "leading zero"},
    {"replicas as a list", WORKER_REPLICAS("[1, 2]"), RT_EFORMAT,
     "spec.mpiReplicaSpecs.Worker.replicas: ", "got a list"},
    /* The v2beta1 controller defaults it to 0 and then rejects the job: not
     * run as one worker. */
    {"v2beta1 Worker without replicas", V2 META_OK "spec:\n  mpiReplicaSpecs:\n    Launcher: "
     "{replicas: 1}\n    Worker:\n      template: {spec: {containers: [{name: w}]}}\n",
     RT_EFORMAT, "spec.mpiReplicaSpecs.Worker.replicas: ", "missing (the Worker spec starts at "
     "line 9); the v2beta1 controller defaults it to 0 and then rejects the job"},
    {"v1 Launcher containers not a list", "apiVersion: kubeflow.org/v1\nkind: MPIJob\n" META_OK
     "spec:\n  mpiReplicaSpecs:\n    Launcher:\n      template: {spec: {containers: x}}\n"
     "    Worker: {replicas: 1}\n", RT_EFORMAT,
     "spec.mpiReplicaSpecs.Launcher.template.spec.containers: ", "expected a list"},
    {"unknown cleanPodPolicy", V2 META_OK "spec:\n  runPolicy: {cleanPodPolicy: Sometimes}\n"
     "  mpiReplicaSpecs:\n    Launcher: {replicas: 1}\n    Worker: {replicas: 1}\n", RT_EINVAL,
     "spec.runPolicy.cleanPodPolicy: ", "None, Running or All"},
    {"runPolicy not a mapping", V2 META_OK "spec:\n  runPolicy: 3\n"
     "  mpiReplicaSpecs:\n    Launcher: {replicas: 1}\n    Worker: {replicas: 1}\n", RT_EFORMAT,
     "spec.runPolicy: ", "expected a mapping"},
    {"unknown launcherCreationPolicy", V2 META_OK "spec:\n  launcherCreationPolicy: Later\n"
     "  mpiReplicaSpecs:\n    Launcher: {replicas: 1}\n    Worker: {replicas: 1}\n", RT_EINVAL,
     "spec.launcherCreationPolicy: ", "AtStartup or WaitForWorkersReady"},
    {"zero slots", SLOTS("0"), RT_ERANGE, "spec.slotsPerWorker: ", "1..1024"},
    {"too many slots", SLOTS("1025"), RT_ERANGE, "spec.slotsPerWorker: ", "1..1024"},
    {"negative slots", SLOTS("-8"), RT_ERANGE, "spec.slotsPerWorker: ", "out of range"},
    {"two launchers", V2 META_OK "spec:\n  mpiReplicaSpecs:\n    Launcher: {replicas: 2}\n"
     "    Worker: {replicas: 1}\n", RT_ERANGE, "spec.mpiReplicaSpecs.Launcher.replicas: ", "1..1"},
    {"no launcher", V2 META_OK "spec:\n  mpiReplicaSpecs:\n    Worker: {replicas: 1}\n",
     RT_EFORMAT, "spec.mpiReplicaSpecs.Launcher: ", "missing"},
    {"no worker", V2 META_OK "spec:\n  mpiReplicaSpecs:\n    Launcher: {replicas: 1}\n",
     RT_EFORMAT, "spec.mpiReplicaSpecs.Worker: ", "runLauncherAsWorker"},
    {"no mpiReplicaSpecs", V2 META_OK "spec:\n  slotsPerWorker: 1\n", RT_EFORMAT,
     "spec.mpiReplicaSpecs: ", "missing"},
    {"no spec", V2 META_OK, RT_EFORMAT, "spec: ", "missing"},
    {"no metadata", V2 SPEC_OK, RT_EFORMAT, "metadata: ", "missing"},
    {"no name", V2 "metadata:\n  namespace: default\n" SPEC_OK, RT_EFORMAT, "metadata.name: ",
     "missing"},
    {"spec is a list", V2 META_OK "spec: [1, 2]\n", RT_EFORMAT, "spec: ", "got a list"},
    {"unknown MPI", V2 META_OK "spec:\n  mpiImplementation: openmpi\n  mpiReplicaSpecs:\n"
     "    Launcher: {replicas: 1}\n    Worker: {replicas: 1}\n", RT_EINVAL,
     "spec.mpiImplementation: ", "OpenMPI, Intel or MPICH"},
    {"runLauncherAsWorker not a boolean", V2 META_OK "spec:\n  runLauncherAsWorker: \"yes\"\n"
     "  mpiReplicaSpecs:\n    Launcher: {replicas: 1}\n    Worker: {replicas: 1}\n", RT_EFORMAT,
     "spec.runLauncherAsWorker: ", "true or false"},
    {"relative sshAuthMountPath", V2 META_OK "spec:\n  sshAuthMountPath: root/.ssh\n"
     "  mpiReplicaSpecs:\n    Launcher: {replicas: 1}\n    Worker: {replicas: 1}\n", RT_EINVAL,
     "spec.sshAuthMountPath: ", "absolute path"},
    {"wrong kind", "apiVersion: kubeflow.org/v2beta1\nkind: Job\n" META_OK SPEC_OK, RT_EINVAL,
     "kind: ", "not MPIJob"},
    /* The kind is checked first: a Katib Experiment is not "an unsupported
     * apiVersion" of an MPIJob. */
    {"a Katib Experiment", "apiVersion: kubeflow.org/v1beta1\nkind: Experiment\n" META_OK
     "spec: {}\n", RT_EINVAL, "kind: ", "\"Experiment\" is not MPIJob (line 2)"},
    {"a Deployment", "apiVersion: apps/v1\nkind: Deployment\n" META_OK "spec: {}\n", RT_EINVAL,
     "kind: ", "--mpijob"},
    {"wrong apiVersion", "apiVersion: batch/v1\nkind: MPIJob\n" META_OK SPEC_OK, RT_EINVAL,
     "apiVersion: ", "not supported"},
    {"unsupported v1alpha2", "apiVersion: kubeflow.org/v1alpha2\nkind: MPIJob\n" META_OK SPEC_OK,
     RT_EINVAL, "apiVersion: ", "kubeflow.org/v2beta1"},
    {"no apiVersion", "kind: MPIJob\n" META_OK SPEC_OK, RT_EFORMAT, "apiVersion: ", "missing"},
    {"apiVersion is a number", "apiVersion: 2\nkind: MPIJob\n" META_OK SPEC_OK, RT_EFORMAT,
     "apiVersion: ", "expected a string"},
    {"duplicate key", V2 "metadata:\n  name: job\n  name: other\n" SPEC_OK, RT_EFORMAT,
     "metadata.name: ", "appears twice"},
    {"anchor", V2 "metadata: &m\n  name: job\n" SPEC_OK, RT_EFORMAT, "MPIJob:", "anchor"},
    {"alias bomb", V2 META_OK "x: &a [1,2,3,4,5,6,7,8,9]\ny: [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
     SPEC_OK, RT_EFORMAT, "MPIJob:", "anchor"},
    {"tag", V2 "metadata:\n  name: !!str job\n" SPEC_OK, RT_EFORMAT, "MPIJob:", "tag"},
    {"two MPIJobs", V2 META_OK SPEC_OK "---\n" V2 "metadata: {name: other}\n" SPEC_OK, RT_EFORMAT,
     "MPIJob: ", "2 MPIJobs in one file: \"job\" (line 1) and \"other\" (line 10)"},
    {"no MPIJob among several documents", "kind: PersistentVolumeClaim\n---\nkind: "
     "ComputeDomain\n", RT_EFORMAT, "MPIJob: ", "none of the 2 documents is an MPIJob (kinds: "
     "\"PersistentVolumeClaim\" (line 1) and \"ComputeDomain\" (line 3)); give the file"},
    {"root is a list", "- a\n- b\n", RT_EFORMAT, "MPIJob: ", "not a mapping"},
    {"root is a scalar", "hello\n", RT_EFORMAT, "MPIJob: ", "not a mapping"},
    {"empty", "", RT_EFORMAT, "MPIJob: ", "no YAML document"},
    {"only a comment", "# nothing\n", RT_EFORMAT, "MPIJob: ", "no YAML document"},
    {"syntax error", V2 "metadata:\n  name: \"unterminated\n" SPEC_OK, RT_EFORMAT, "MPIJob:",
     "YAML syntax error"},
    {"bad indentation", V2 "metadata:\n  name: job\n   namespace: x\n" SPEC_OK, RT_EFORMAT,
     "MPIJob:", "YAML syntax error"},
    {"complex key", V2 META_OK "? [a, b]\n: c\n" SPEC_OK, RT_EFORMAT, "MPIJob:", "key"},
    {"deep nesting", V2 META_OK "x: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
     "[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n" SPEC_OK,
     RT_ERANGE, "MPIJob:", "deeper"},
    {"v1alpha1 gpus and processingUnits", V1A "spec:\n  gpus: 8\n  processingUnits: 8\n",
     RT_EINVAL, "spec.gpus: ", "both"},
    {"v1alpha1 nothing to size", V1A "spec:\n  slotsPerWorker: 2\n", RT_EFORMAT, "spec: ",
     "gpus, processingUnits or replicas"},
    {"v1alpha1 gpus not a multiple", V1A "spec:\n  gpus: 20\n", RT_EINVAL, "spec.gpus: ",
     "specified #GPUs is not a multiple of GPUs per node (8)"},
    {"v1alpha1 processingUnits not a multiple",
     V1A "spec:\n  processingUnits: 10\n  processingUnitsPerNode: 4\n", RT_EINVAL,
     "spec.processingUnits: ", "not a multiple of ProcessingUnits per node (4)"},
    {"v1alpha1 zero gpus", V1A "spec:\n  gpus: 0\n", RT_ERANGE, "spec.gpus: ", "out of range"},
    {"v1alpha1 gpus as a string", V1A "spec:\n  gpus: \"16\"\n", RT_EFORMAT, "spec.gpus: ",
     "expected an integer"},
    {"v1alpha1 too many workers", V1A "spec:\n  gpus: 100000000\n  gpusPerNode: 1\n",
     RT_ERANGE, "spec.gpus: ", "workers"},
    {"v1alpha1 unknown resource type", V1A "spec:\n  processingUnits: 8\n"
     "  processingResourceType: tpu\n", RT_EINVAL, "spec.processingResourceType: ",
     "nvidia.com/gpu or cpu"},
    {"v1alpha1 fractional cpu", V1A "spec:\n  replicas: 2\n  processingResourceType: cpu\n"
     "  template:\n    spec:\n      containers:\n      - name: w\n        resources: {limits: "
     "{cpu: 500m}}\n", RT_EINVAL, "spec.template.spec.containers[0].resources.limits.cpu: ",
     "whole number"},
    /* Regression (tests/fuzz/fuzz_mpijob): libfyaml 0.7.12 looped forever on
     * a directive with invalid UTF-8; a hang here times the test out. */
    {"invalid UTF-8 in a directive", "%\xcf", RT_EFORMAT, "MPIJob:1:2: ", "not UTF-8"},
    {"invalid UTF-8 in a directive name", "%YAML\xcf\n" V2 META_OK SPEC_OK, RT_EFORMAT,
     "MPIJob:1:6: ", "byte 0xcf is not UTF-8"},
    {"UTF-8 surrogate", V2 META_OK "# \xed\xa0\x80\n" SPEC_OK, RT_EFORMAT, "MPIJob:5:3: ",
     "byte 0xed"},
    {"overlong UTF-8", V2 "metadata:\n  name: \"\xc0\xaf\"\n" SPEC_OK, RT_EFORMAT,
     "MPIJob:4:10: ", "not UTF-8"},
    {"Latin-1 text", V2 "metadata:\n  name: caf\xe9\n" SPEC_OK, RT_EFORMAT, "MPIJob:4:12: ",
     "save the MPIJob manifest as UTF-8"},
    /* Regression (tests/fuzz/fuzz_mpijob): libfyaml 0.7.12 reads 'a''''b' as
     * "a'''" and leaks; refused instead of read wrong. */
    {"two escaped quotes in a row", V2 META_OK "x: 'a''''b'\n" SPEC_OK, RT_EFORMAT,
     "MPIJob:5:5: ", "write the value in double quotes"},
    {"two escaped quotes in a row, in a list", V2 META_OK "x: [p, 'q''''''''''''''''''''']\n"
     SPEC_OK, RT_EFORMAT, "MPIJob:5:9: ", "two escaped quotes in a row"},
    {"v1alpha1 replicas without containers", V1A "spec:\n  replicas: 2\n  template:\n"
     "    spec: {}\n", RT_EFORMAT, "spec.template.spec.containers: ", "at least one"},
};

static void test_bad_inputs(void **state)
{
    (void)state;
    size_t count = sizeof bad_cases / sizeof bad_cases[0];
    assert_true(count >= 20);
    for (size_t i = 0; i < count; i++) {
        const bad_case_t *bc = &bad_cases[i];
        launch_job_t job;
        memset(&job, 0x5a, sizeof job);
        launch_job_t untouched = job;
        launch_error_t err = {{0}};
        int rc = launch_job_parse(bc->yaml, strlen(bc->yaml), NULL, &job, &err);
        print_message("bad input %zu (%s): rc %d, \"%s\"\n", i, bc->what, rc, err.text);
        assert_int_equal(rc, bc->rc);
        assert_int_equal(strncmp(err.text, bc->field, strlen(bc->field)), 0);
        assert_non_null(strstr(err.text, bc->says));
        /* One line, and the job untouched. */
        assert_null(strchr(err.text, '\n'));
        assert_memory_equal(&job, &untouched, sizeof job);
    }
}

static void test_bad_fixture_files(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        const char *says;
    } files[] = {
        {"alias-bomb.yaml", "anchor"},
        {"multi-doc.yaml", "2 MPIJobs in one file: \"first\" (line 1) and \"second\" (line 10)"},
        {"hostile-name.yaml", "metadata.name: \"a;rm -rf /\""},
        {"katib-experiment.yaml", "kind: \"Experiment\" is not MPIJob (line 3)"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/mpijob/%s", FIXTURE_DIR, files[i].file);
        launch_job_t job;
        launch_error_t err = {{0}};
        assert_int_not_equal(launch_job_load(path, NULL, &job, &err), 0);
        print_message("%s: %s\n", files[i].file, err.text);
        assert_non_null(strstr(err.text, files[i].says));
    }
}

static void test_oversized_file(void **state)
{
    (void)state;
    char path[] = "/tmp/ringtrain-test-big-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(V2 META_OK SPEC_OK, f);
    /* A valid YAML comment block just over 1 MiB in all. */
    char line[101];
    memset(line, 'x', 99);
    line[0] = '#';
    line[99] = '\n';
    line[100] = '\0';
    for (size_t bytes = 0; bytes <= LAUNCH_YAML_MAX_BYTES; bytes += 100)
        fputs(line, f);
    fclose(f);
    launch_job_t job;
    launch_error_t err = {{0}};
    int rc = launch_job_load(path, NULL, &job, &err);
    unlink(path);
    assert_int_equal(rc, RT_ERANGE);
    assert_non_null(strstr(err.text, "1 MiB"));
    /* The same through launch_job_parse. */
    size_t big = LAUNCH_YAML_MAX_BYTES + 1;
    char *text = malloc(big);
    assert_non_null(text);
    memset(text, '#', big);
    assert_int_equal(launch_job_parse(text, big, NULL, &job, &err), RT_ERANGE);
    free(text);
}

static void test_missing_file(void **state)
{
    (void)state;
    launch_job_t job;
    launch_error_t err = {{0}};
    assert_int_equal(launch_job_load("/nonexistent/job.yaml", NULL, &job, &err), RT_ENOENT);
    assert_non_null(strstr(err.text, "/nonexistent/job.yaml: cannot open"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v2beta1_2x8),
        cmocka_unit_test(test_v2beta1_defaults),
        cmocka_unit_test(test_v2beta1_each_mpi),
        cmocka_unit_test(test_v2beta1_launcher_as_worker),
        cmocka_unit_test(test_launcher_only_job),
        cmocka_unit_test(test_v1),
        cmocka_unit_test(test_other_documents_beside_the_job),
        cmocka_unit_test(test_v1_gpu_launcher),
        cmocka_unit_test(test_v1alpha1_gpus16),
        cmocka_unit_test(test_v1alpha1_below_per_node),
        cmocka_unit_test(test_v1alpha1_not_multiple),
        cmocka_unit_test(test_v1alpha1_spec_per_node_wins),
        cmocka_unit_test(test_v1alpha1_processing_units),
        cmocka_unit_test(test_v1alpha1_replicas),
        cmocka_unit_test(test_utf8_accepted),
        cmocka_unit_test(test_single_quoted),
        cmocka_unit_test(test_label_checks),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_bad_fixture_files),
        cmocka_unit_test(test_oversized_file),
        cmocka_unit_test(test_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
