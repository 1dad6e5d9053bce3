/* Unit tests for the launcher's TFJob support: the parser on fixtures
 * (kubeflow.org/v1 and v1beta1, Master or Chief, Evaluator, lower-case
 * replica types, default replicas), the mapping to one MPI job in both
 * modes (hosts, slots, ranks and roles, idle hosts, RINGTRAIN_PS_RANKS),
 * cluster domains, parameter-server mode detection in program arguments,
 * and a table of bad and hostile TFJobs that must each be refused with an
 * error naming the field. */
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

static launch_tfjob_t load_ok(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tfjob/%s", FIXTURE_DIR, name);
    launch_tfjob_t job;
    launch_error_t err = {{0}};
    int rc = launch_tfjob_load(path, &job, &err);
    if (rc != 0)
        fprintf(stderr, "unexpected error for %s: %s\n", name, err.text);
    assert_int_equal(rc, 0);
    return job;
}

static launch_tfjob_t parse_ok(const char *yaml)
{
    launch_tfjob_t job;
    launch_error_t err = {{0}};
    int rc = launch_tfjob_parse(yaml, strlen(yaml), &job, &err);
    if (rc != 0)
        fprintf(stderr, "unexpected error: %s\n", err.text);
    assert_int_equal(rc, 0);
    return job;
}

static void map_ok(const launch_tfjob_t *job, int ps_mode, uint32_t slots, const char *domain,
                   launch_tf_map_t *map)
{
    launch_tf_map_opts_t opts = {.ps_mode = ps_mode,
                                 .slots = slots,
                                 .cluster_domain = domain,
                                 .mpi = LAUNCH_MPI_OPENMPI};
    launch_error_t err = {{0}};
    int rc = launch_tfjob_map(job, &opts, map, &err);
    if (rc != 0)
        fprintf(stderr, "unexpected map error: %s\n", err.text);
    assert_int_equal(rc, 0);
}

static char *render(const launch_tf_map_t *map)
{
    char *text = NULL;
    size_t bytes = 0;
    assert_int_equal(launch_hostfile_render(&map->hosts, &text, &bytes), 0);
    assert_int_equal(bytes, strlen(text));
    return text;
}

static char *ps_ranks(const launch_tf_map_t *map)
{
    char *text = NULL;
    assert_int_equal(launch_tf_map_ps_ranks(map, &text), 0);
    return text;
}

static void assert_role(const launch_tf_role_t *role, launch_tf_type_t type, uint32_t index,
                        uint64_t first_rank)
{
    assert_int_equal(role->type, type);
    assert_int_equal(role->index, index);
    assert_int_equal(role->first_rank, first_rank);
}

/* The acceptance: 1 Master, 2 Workers, 1 PS. */
static void test_master_2workers_ps_parse(void **state)
{
    (void)state;
    launch_tfjob_t job = load_ok("v1-master-2workers-ps.yaml");
    assert_string_equal(job.api_version, "kubeflow.org/v1");
    assert_string_equal(job.name, "dist-mnist");
    assert_string_equal(job.namespace_name, "default");
    assert_true(job.present[LAUNCH_TF_MASTER]);
    assert_false(job.present[LAUNCH_TF_CHIEF]);
    assert_false(job.present[LAUNCH_TF_EVALUATOR]);
    assert_int_equal(job.replicas[LAUNCH_TF_MASTER], 1);
    assert_int_equal(job.replicas[LAUNCH_TF_WORKER], 2);
    assert_int_equal(job.replicas[LAUNCH_TF_PS], 1);
    assert_int_equal(job.replicas[LAUNCH_TF_CHIEF], 0);
}

static void test_master_2workers_ps_allreduce(void **state)
{
    (void)state;
    launch_tfjob_t job = load_ok("v1-master-2workers-ps.yaml");
    launch_tf_map_t map;
    map_ok(&job, 0, 0, NULL, &map);
    char *text = render(&map);
    assert_string_equal(text, "dist-mnist-master-0.default.svc slots=1\n"
                              "dist-mnist-worker-0.default.svc slots=1\n"
                              "dist-mnist-worker-1.default.svc slots=1\n");
    free(text);
    assert_int_equal(map.ranks, 3);
    assert_int_equal(map.ps_ranks, 0);
    assert_role(&map.roles[0], LAUNCH_TF_MASTER, 0, 0);
    assert_role(&map.roles[1], LAUNCH_TF_WORKER, 0, 1);
    assert_role(&map.roles[2], LAUNCH_TF_WORKER, 1, 2);
    /* The parameter server is reported, not run. */
    assert_int_equal(map.idle_count, 1);
    assert_string_equal(map.idle[0], "dist-mnist-ps-0.default.svc");
    assert_int_equal(map.idle_roles[0].type, LAUNCH_TF_PS);
    text = ps_ranks(&map);
    assert_string_equal(text, "");
    free(text);
    assert_false(map.hosts.first_is_local);
    launch_tf_map_free(&map);
    launch_tf_map_free(&map); /* safe twice */
}

static void test_master_2workers_ps_parameter_server(void **state)
{
    (void)state;
    launch_tfjob_t job = load_ok("v1-master-2workers-ps.yaml");
    launch_tf_map_t map;
    map_ok(&job, 1, 0, NULL, &map);
    char *text = render(&map);
    assert_string_equal(text, "dist-mnist-master-0.default.svc slots=1\n"
                              "dist-mnist-worker-0.default.svc slots=1\n"
                              "dist-mnist-worker-1.default.svc slots=1\n"
                              "dist-mnist-ps-0.default.svc slots=1\n");
    free(text);
    assert_int_equal(map.ranks, 4);
    assert_int_equal(map.ps_ranks, 1);
    assert_role(&map.roles[0], LAUNCH_TF_MASTER, 0, 0);
    assert_role(&map.roles[3], LAUNCH_TF_PS, 0, 3);
    assert_int_equal(map.idle_count, 0);
    text = ps_ranks(&map);
    assert_string_equal(text, "3");
    free(text);
    launch_tf_map_free(&map);
}

static void test_chief_evaluator(void **state)
{
    (void)state;
    launch_tfjob_t job = load_ok("v1-chief-evaluator.yaml");
    assert_string_equal(job.namespace_name, "ml-team");
    assert_true(job.present[LAUNCH_TF_CHIEF]);
    assert_int_equal(job.replicas[LAUNCH_TF_CHIEF], 1);
    assert_int_equal(job.replicas[LAUNCH_TF_WORKER], 3);
    assert_int_equal(job.replicas[LAUNCH_TF_PS], 1); /* replicas defaults to 1 */
    assert_int_equal(job.replicas[LAUNCH_TF_EVALUATOR], 1);
    launch_tf_map_t map;
    map_ok(&job, 1, 0, NULL, &map);
    char *text = render(&map);
    assert_string_equal(text, "mnist-chief-chief-0.ml-team.svc slots=1\n"
                              "mnist-chief-worker-0.ml-team.svc slots=1\n"
                              "mnist-chief-worker-1.ml-team.svc slots=1\n"
                              "mnist-chief-worker-2.ml-team.svc slots=1\n"
                              "mnist-chief-ps-0.ml-team.svc slots=1\n");
    free(text);
    assert_role(&map.roles[0], LAUNCH_TF_CHIEF, 0, 0);
    assert_role(&map.roles[4], LAUNCH_TF_PS, 0, 4);
    /* The evaluator is never part of the training cluster. */
    assert_int_equal(map.idle_count, 1);
    assert_string_equal(map.idle[0], "mnist-chief-evaluator-0.ml-team.svc");
    assert_int_equal(map.idle_roles[0].type, LAUNCH_TF_EVALUATOR);
    launch_tf_map_free(&map);

    /* Allreduce mode: the PS joins the evaluator among the idle hosts. */
    map_ok(&job, 0, 0, NULL, &map);
    assert_int_equal(map.hosts.count, 4);
    assert_int_equal(map.idle_count, 2);
    assert_string_equal(map.idle[0], "mnist-chief-ps-0.ml-team.svc");
    assert_string_equal(map.idle[1], "mnist-chief-evaluator-0.ml-team.svc");
    launch_tf_map_free(&map);
}

/* A claim and an empty document beside the TFJob: the only TFJob is taken. */
static void test_other_documents_beside_the_job(void **state)
{
    (void)state;
    launch_tfjob_t job = load_ok("pvc-and-tfjob.yaml");
    assert_string_equal(job.name, "mnist");
    assert_int_equal(job.replicas[LAUNCH_TF_WORKER], 3);
}

static void test_v1beta1_lower_case_types(void **state)
{
    (void)state;
    launch_tfjob_t job = load_ok("v1beta1-lowercase.yaml");
    assert_string_equal(job.api_version, "kubeflow.org/v1beta1");
    assert_int_equal(job.replicas[LAUNCH_TF_PS], 2);
    assert_int_equal(job.replicas[LAUNCH_TF_WORKER], 4);
    launch_tf_map_t map;
    map_ok(&job, 1, 0, NULL, &map);
    char *text = render(&map);
    /* No chief: Worker 0 is rank 0; the host names use the lower-case type. */
    assert_string_equal(text, "legacy-tf-worker-0.default.svc slots=1\n"
                              "legacy-tf-worker-1.default.svc slots=1\n"
                              "legacy-tf-worker-2.default.svc slots=1\n"
                              "legacy-tf-worker-3.default.svc slots=1\n"
                              "legacy-tf-ps-0.default.svc slots=1\n"
                              "legacy-tf-ps-1.default.svc slots=1\n");
    free(text);
    text = ps_ranks(&map);
    assert_string_equal(text, "4,5");
    free(text);
    launch_tf_map_free(&map);
}

static void test_workers_only_default_replicas(void **state)
{
    (void)state;
    launch_tfjob_t job = load_ok("v1-workers-only.yaml");
    assert_int_equal(job.replicas[LAUNCH_TF_WORKER], 1);
    launch_tf_map_t map;
    map_ok(&job, 0, 0, NULL, &map);
    assert_int_equal(map.hosts.count, 1);
    assert_string_equal(map.hosts.hosts[0], "solo-worker-0.default.svc");
    assert_int_equal(map.idle_count, 0);
    launch_tf_map_free(&map);
}

static void test_cluster_domain_and_slots(void **state)
{
    (void)state;
    launch_tfjob_t job = load_ok("v1-master-2workers-ps.yaml");
    launch_tf_map_t map;
    map_ok(&job, 1, 4, "cluster.local", &map);
    char *text = render(&map);
    /* Chief and workers get the slots; a parameter server is one rank. */
    assert_string_equal(text, "dist-mnist-master-0.default.svc.cluster.local slots=4\n"
                              "dist-mnist-worker-0.default.svc.cluster.local slots=4\n"
                              "dist-mnist-worker-1.default.svc.cluster.local slots=4\n"
                              "dist-mnist-ps-0.default.svc.cluster.local slots=1\n");
    free(text);
    assert_int_equal(map.ranks, 13);
    assert_role(&map.roles[1], LAUNCH_TF_WORKER, 0, 4);
    assert_role(&map.roles[2], LAUNCH_TF_WORKER, 1, 8);
    assert_role(&map.roles[3], LAUNCH_TF_PS, 0, 12);
    text = ps_ranks(&map);
    assert_string_equal(text, "12");
    free(text);
    launch_tf_map_free(&map);

    /* Hydra's syntax with --mpi-implementation MPICH. */
    launch_tf_map_opts_t opts = {.ps_mode = 0, .slots = 2, .mpi = LAUNCH_MPI_MPICH};
    launch_error_t err = {{0}};
    assert_int_equal(launch_tfjob_map(&job, &opts, &map, &err), 0);
    text = render(&map);
    assert_string_equal(text, "dist-mnist-master-0.default.svc:2\n"
                              "dist-mnist-worker-0.default.svc:2\n"
                              "dist-mnist-worker-1.default.svc:2\n");
    free(text);
    launch_tf_map_free(&map);

    /* A domain that is not a DNS name, and one that makes hosts too long. */
    opts = (launch_tf_map_opts_t){.cluster_domain = "Cluster.Local"};
    memset(&map, 0x5a, sizeof map);
    assert_int_equal(launch_tfjob_map(&job, &opts, &map, &err), RT_EINVAL);
    assert_int_equal(strncmp(err.text, "--cluster-domain: ", 18), 0);
    assert_null(map.hosts.hosts);
    char domain[240];
    memset(domain, 'a', sizeof domain - 1);
    domain[sizeof domain - 1] = '\0';
    for (size_t i = 60; i < sizeof domain - 1; i += 61)
        domain[i] = '.';
    opts.cluster_domain = domain;
    assert_int_equal(launch_tfjob_map(&job, &opts, &map, &err), RT_EINVAL);
    assert_non_null(strstr(err.text, "over the 253"));
    assert_null(map.hosts.hosts);
}

static void test_rank_order_independent_of_key_order(void **state)
{
    (void)state;
    const char *a = "apiVersion: kubeflow.org/v1\nkind: TFJob\nmetadata: {name: j}\nspec:\n"
                    "  tfReplicaSpecs:\n    PS: {replicas: 2}\n    Worker: {replicas: 2}\n"
                    "    Evaluator: {}\n    Chief: {}\n";
    const char *b = "apiVersion: kubeflow.org/v1\nkind: TFJob\nmetadata: {name: j}\nspec:\n"
                    "  tfReplicaSpecs:\n    Chief: {}\n    Evaluator: {}\n    Worker: {replicas: 2}\n"
                    "    PS: {replicas: 2}\n";
    launch_tfjob_t ja = parse_ok(a), jb = parse_ok(b);
    launch_tf_map_t ma, mb;
    map_ok(&ja, 1, 0, NULL, &ma);
    map_ok(&jb, 1, 0, NULL, &mb);
    char *ta = render(&ma), *tb = render(&mb);
    assert_string_equal(ta, tb);
    assert_string_equal(ta, "j-chief-0.default.svc slots=1\nj-worker-0.default.svc slots=1\n"
                            "j-worker-1.default.svc slots=1\nj-ps-0.default.svc slots=1\n"
                            "j-ps-1.default.svc slots=1\n");
    free(ta);
    free(tb);
    launch_tf_map_free(&ma);
    launch_tf_map_free(&mb);
}

static void test_zero_replicas(void **state)
{
    (void)state;
    /* A chief with replicas 0 has no pod: Worker 0 leads. A PS with 0 is
     * no parameter server, so parameter-server mode is refused. */
    const char *yaml = "apiVersion: kubeflow.org/v1\nkind: TFJob\nmetadata: {name: z}\nspec:\n"
                       "  tfReplicaSpecs:\n    Chief: {replicas: 0}\n    Worker: {replicas: 2}\n"
                       "    PS: {replicas: 0}\n";
    launch_tfjob_t job = parse_ok(yaml);
    launch_tf_map_t map;
    map_ok(&job, 0, 0, NULL, &map);
    assert_int_equal(map.hosts.count, 2);
    assert_string_equal(map.hosts.hosts[0], "z-worker-0.default.svc");
    assert_int_equal(map.idle_count, 0);
    launch_tf_map_free(&map);
    launch_tf_map_opts_t opts = {.ps_mode = 1};
    launch_error_t err = {{0}};
    assert_int_equal(launch_tfjob_map(&job, &opts, &map, &err), RT_EINVAL);
    assert_int_equal(strncmp(err.text, "spec.tfReplicaSpecs.PS: ", 24), 0);
    assert_non_null(strstr(err.text, "no parameter servers"));
}

static void test_ps_mode_without_ps(void **state)
{
    (void)state;
    launch_tfjob_t job = load_ok("v1-workers-only.yaml");
    launch_tf_map_t map;
    launch_tf_map_opts_t opts = {.ps_mode = 1};
    launch_error_t err = {{0}};
    assert_int_equal(launch_tfjob_map(&job, &opts, &map, &err), RT_EINVAL);
    assert_non_null(strstr(err.text, "--variable_update=parameter_server"));
    /* An unparsed job is refused, not mapped. */
    launch_tfjob_t bad;
    memset(&bad, 0, sizeof bad);
    strcpy(bad.name, "x");
    strcpy(bad.namespace_name, "default");
    assert_int_equal(launch_tfjob_map(&bad, &opts, &map, &err), RT_EINVAL);
    assert_non_null(strstr(err.text, "not a validated TFJob"));
}

static void test_args_ps_mode(void **state)
{
    (void)state;
    static const struct {
        const char *args[6];
        int want;
    } cases[] = {
        {{"ringtrain-worker", "--model", "mlp"}, 0},
        {{"ringtrain-worker", "--variable_update=parameter_server"}, 1},
        {{"ringtrain-worker", "--variable_update", "parameter_server"}, 1},
        {{"python3", "tf_cnn_benchmarks.py", "-variable_update=parameter_server"}, 1},
        {{"python3", "tf_cnn_benchmarks.py", "-variable_update", "parameter_server"}, 1},
        {{"w", "--variable_update=horovod"}, 0},
        {{"w", "--variable_update=allreduce"}, 0},
        {{"w", "--variable_update=parameter_server", "--variable_update=allreduce"}, 0},
        {{"w", "--variable_update=allreduce", "--variable_update=parameter_server"}, 1},
        {{"w", "--variable_update"}, 0},
        {{"w", "--variable_updates=parameter_server"}, 0},
        {{"w", "--variable_update=parameter_server_x"}, 0},
        {{"w", "parameter_server"}, 0},
        {{"w", "--model", "--variable_update=parameter_server"}, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t count = 0;
        while (count < 6 && cases[i].args[count] != NULL)
            count++;
        int got = launch_args_ps_mode(cases[i].args, count);
        if (got != cases[i].want)
            fail_msg("case %zu (%s %s): got %d, want %d", i, cases[i].args[1],
                     cases[i].args[2] ? cases[i].args[2] : "", got, cases[i].want);
    }
    assert_int_equal(launch_args_ps_mode(NULL, 0), 0);
}

static void test_type_names(void **state)
{
    (void)state;
    assert_string_equal(launch_tf_type_name(LAUNCH_TF_CHIEF), "Chief");
    assert_string_equal(launch_tf_type_name(LAUNCH_TF_MASTER), "Master");
    assert_string_equal(launch_tf_type_name(LAUNCH_TF_WORKER), "Worker");
    assert_string_equal(launch_tf_type_name(LAUNCH_TF_PS), "PS");
    assert_string_equal(launch_tf_type_name(LAUNCH_TF_EVALUATOR), "Evaluator");
    assert_string_equal(launch_tf_type_name(LAUNCH_TF_TYPES), "?");
}

/* ---- bad inputs --------------------------------------------------------- */

#define TF "apiVersion: kubeflow.org/v1\nkind: TFJob\n"
#define META "metadata:\n  name: job\n"
#define SPECS(x) "spec:\n  tfReplicaSpecs:\n" x
#define OK_SPECS SPECS("    Worker: {replicas: 2}\n    PS: {replicas: 1}\n")
#define WORKER(x) TF META SPECS("    Worker:\n      " x "\n")

typedef struct {
    const char *what;
    const char *yaml;
    int rc;            /* expected return code */
    const char *field; /* the error must start with this */
    const char *says;  /* and contain this */
} bad_case_t;

static const bad_case_t bad_cases[] = {
    {"shell metacharacters in name", TF "metadata:\n  name: \"a;rm -rf /\"\n" OK_SPECS, RT_EINVAL,
     "metadata.name: ", "not a valid DNS-1035 label"},
    {"newline in name", TF "metadata:\n  name: \"job\\nevil-worker-0 slots=64\"\n" OK_SPECS,
     RT_EINVAL, "metadata.name: ", "\\n"},
    {"upper case name", TF "metadata:\n  name: Job\n" OK_SPECS, RT_EINVAL, "metadata.name: ",
     "DNS-1035"},
    {"name is a number", TF "metadata:\n  name: 42\n" OK_SPECS, RT_EFORMAT, "metadata.name: ",
     "expected a string, got an integer"},
    {"path in namespace", TF "metadata:\n  name: job\n  namespace: \"../etc\"\n" OK_SPECS,
     RT_EINVAL, "metadata.namespace: ", "DNS-1123 label"},
    {"Service name over 63",
     TF "metadata:\n  name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
        SPECS("    Worker: {replicas: 2}\n    Evaluator: {replicas: 1}\n"),
     RT_EINVAL, "metadata.name: ", "over the 63"},
    {"both Master and Chief",
     TF META SPECS("    Master: {replicas: 1}\n    Chief: {replicas: 1}\n    Worker: {}\n"),
     RT_EINVAL, "spec.tfReplicaSpecs: ", "both Chief"},
    {"both Master and Chief, one with no replicas",
     TF META SPECS("    Chief: {replicas: 0}\n    Master: {replicas: 1}\n"), RT_EINVAL,
     "spec.tfReplicaSpecs: ", "same role"},
    {"no Worker and no Master", TF META SPECS("    PS: {replicas: 2}\n"), RT_EFORMAT,
     "spec.tfReplicaSpecs: ", "nothing to train on"},
    {"only an Evaluator", TF META SPECS("    Evaluator: {replicas: 1}\n"), RT_EFORMAT,
     "spec.tfReplicaSpecs: ", "no Worker and no Chief/Master"},
    {"zero workers, no chief", TF META SPECS("    Worker: {replicas: 0}\n    PS: {}\n"),
     RT_EFORMAT, "spec.tfReplicaSpecs: ", "nothing to train on"},
    {"empty tfReplicaSpecs", TF META "spec:\n  tfReplicaSpecs: {}\n", RT_EFORMAT,
     "spec.tfReplicaSpecs: ", "nothing to train on"},
    {"negative replicas", WORKER("replicas: -1"), RT_ERANGE,
     "spec.tfReplicaSpecs.Worker.replicas: ", "0..100000"},
    {"too many replicas", WORKER("replicas: 100001"), RT_ERANGE,
     "spec.tfReplicaSpecs.Worker.replicas: ", "out of range"},
    {"huge replicas", WORKER("replicas: 99999999999999999999999"), RT_ERANGE,
     "spec.tfReplicaSpecs.Worker.replicas: ", "out of range"},
    {"replicas as a string", WORKER("replicas: \"2\""), RT_EFORMAT,
     "spec.tfReplicaSpecs.Worker.replicas: ", "expected an integer, got a string"},
    {"replicas with a leading zero (octal to Kubernetes)", WORKER("replicas: 010"), RT_EFORMAT,
     "spec.tfReplicaSpecs.Worker.replicas: ", "\"010\" has a leading zero (line 8)"},
    {"replicas with a fraction", WORKER("replicas: 1.5"), RT_EFORMAT,
     "spec.tfReplicaSpecs.Worker.replicas: ", "expected an integer"},
    {"two chiefs", TF META SPECS("    Chief: {replicas: 2}\n    Worker: {}\n"), RT_ERANGE,
     "spec.tfReplicaSpecs.Chief.replicas: ", "0..1"},
    {"two masters (lower-case key)", TF META SPECS("    master: {replicas: 2}\n"), RT_ERANGE,
     "spec.tfReplicaSpecs.master.replicas: ", "0..1"},
    {"negative PS replicas", TF META SPECS("    Worker: {}\n    PS: {replicas: -3}\n"),
     RT_ERANGE, "spec.tfReplicaSpecs.PS.replicas: ", "out of range"},
    {"unknown replica type", TF META SPECS("    Worker: {}\n    Launcher: {replicas: 1}\n"),
     RT_EINVAL, "spec.tfReplicaSpecs: ", "replica type \"Launcher\" is unknown"},
    {"hostile replica type", TF META SPECS("    \"Worker\\nevil slots=9\": {replicas: 1}\n"),
     RT_EINVAL, "spec.tfReplicaSpecs: ", "\"Worker\\nevil slots=9\" is unknown"},
    {"replica type with a NUL", TF META SPECS("    \"PS\\0\": {replicas: 1}\n    Worker: {}\n"),
     RT_EINVAL, "spec.tfReplicaSpecs: ", "\\x00"},
    {"Worker and worker", TF META SPECS("    Worker: {}\n    worker: {replicas: 2}\n"),
     RT_EFORMAT, "spec.tfReplicaSpecs: ", "same replica type"},
    {"Worker twice", TF META SPECS("    Worker: {}\n    Worker: {replicas: 2}\n"), RT_EFORMAT,
     "spec.tfReplicaSpecs: ", "keep one"},
    {"replica spec is a number", TF META SPECS("    Worker: 3\n"), RT_EFORMAT,
     "spec.tfReplicaSpecs.Worker: ", "expected a mapping, got an integer"},
    {"replica spec is null", TF META SPECS("    Worker:\n"), RT_EFORMAT,
     "spec.tfReplicaSpecs.Worker: ", "empty (line 7)"},
    {"unknown restartPolicy", WORKER("restartPolicy: Sometimes"), RT_EINVAL,
     "spec.tfReplicaSpecs.Worker.restartPolicy: ", "Always, OnFailure, Never or ExitCode"},
    {"restartPolicy in lower case", WORKER("restartPolicy: never"), RT_EINVAL,
     "spec.tfReplicaSpecs.Worker.restartPolicy: ", "\"never\""},
    {"restartPolicy a boolean", WORKER("restartPolicy: no"), RT_EFORMAT,
     "spec.tfReplicaSpecs.Worker.restartPolicy: ", "expected a string, got a boolean"},
    {"no tfReplicaSpecs", TF META "spec:\n  runPolicy: {}\n", RT_EFORMAT,
     "spec.tfReplicaSpecs: ", "missing; a TFJob needs it"},
    {"tfReplicaSpecs is a list", TF META "spec:\n  tfReplicaSpecs: [Worker]\n", RT_EFORMAT,
     "spec.tfReplicaSpecs: ", "got a list"},
    {"no spec", TF META, RT_EFORMAT, "spec: ", "missing"},
    {"no metadata", TF OK_SPECS, RT_EFORMAT, "metadata: ", "missing"},
    {"wrong kind (an MPIJob)", "apiVersion: kubeflow.org/v1\nkind: MPIJob\n" META OK_SPECS,
     RT_EINVAL, "kind: ", "use --mpijob"},
    {"wrong kind", "apiVersion: kubeflow.org/v1\nkind: PyTorchJob\n" META OK_SPECS, RT_EINVAL,
     "kind: ", "not TFJob"},
    {"no kind", "apiVersion: kubeflow.org/v1\n" META OK_SPECS, RT_EFORMAT, "kind: ",
     "missing"},
    {"a Deployment (kind checked first)", "apiVersion: apps/v1\nkind: Deployment\n" META
     OK_SPECS, RT_EINVAL, "kind: ", "\"Deployment\" is not TFJob (line 2)"},
    {"an MPIJob v2beta1 (kind checked first)", "apiVersion: kubeflow.org/v2beta1\nkind: MPIJob\n"
     META OK_SPECS, RT_EINVAL, "kind: ", "use --mpijob"},
    {"MPIJob apiVersion", "apiVersion: kubeflow.org/v2beta1\nkind: TFJob\n" META OK_SPECS,
     RT_EINVAL, "apiVersion: ", "kubeflow.org/v1"},
    {"v1alpha2 apiVersion", "apiVersion: kubeflow.org/v1alpha2\nkind: TFJob\n" META OK_SPECS,
     RT_EINVAL, "apiVersion: ", "not supported"},
    {"anchor", TF "metadata: &m\n  name: job\n" OK_SPECS, RT_EFORMAT, "TFJob:", "anchor"},
    {"alias bomb", TF META "x: &a [1,2,3,4,5,6,7,8,9]\ny: [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n" OK_SPECS,
     RT_EFORMAT, "TFJob:", "anchor"},
    {"tag", TF "metadata:\n  name: !!str job\n" OK_SPECS, RT_EFORMAT, "TFJob:", "tag"},
    {"two TFJobs", TF META OK_SPECS "---\n" TF META OK_SPECS, RT_EFORMAT, "TFJob: ",
     "2 TFJobs in one file: \"job\" (line 1) and \"job\" (line 10)"},
    {"root is a list", "- TFJob\n", RT_EFORMAT, "TFJob: ", "not a mapping"},
    {"empty", "", RT_EFORMAT, "TFJob: ", "no YAML document"},
    {"syntax error", TF "metadata:\n  name: \"job\n" OK_SPECS, RT_EFORMAT, "TFJob:",
     "YAML syntax error"},
    {"invalid UTF-8 in a directive (hung libfyaml 0.7.12)", "%a\xcf\n" TF META OK_SPECS,
     RT_EFORMAT, "TFJob:1:3: ", "save the TFJob manifest as UTF-8"},
    {"duplicate name", TF "metadata:\n  name: job\n  name: other\n" OK_SPECS, RT_EFORMAT,
     "metadata.name: ", "appears twice"},
};

static void test_bad_inputs(void **state)
{
    (void)state;
    size_t count = sizeof bad_cases / sizeof bad_cases[0];
    assert_true(count >= 10);
    for (size_t i = 0; i < count; i++) {
        const bad_case_t *bc = &bad_cases[i];
        launch_tfjob_t job;
        memset(&job, 0x5a, sizeof job);
        launch_tfjob_t untouched = job;
        launch_error_t err = {{0}};
        int rc = launch_tfjob_parse(bc->yaml, strlen(bc->yaml), &job, &err);
        print_message("bad TFJob %zu (%s): rc %d, \"%s\"\n", i, bc->what, rc, err.text);
        assert_int_equal(rc, bc->rc);
        if (strncmp(err.text, bc->field, strlen(bc->field)) != 0)
            fail_msg("case %zu (%s): error \"%s\" does not start with \"%s\"", i, bc->what,
                     err.text, bc->field);
        if (strstr(err.text, bc->says) == NULL)
            fail_msg("case %zu (%s): error \"%s\" does not say \"%s\"", i, bc->what, err.text,
                     bc->says);
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
        {"alias.yaml", "anchor"},
        {"both-master-chief.yaml", "both Chief (line 8) and Master (line 10)"},
        {"hostile-name.yaml", "metadata.name: \"a;rm -rf /\""},
        /* Only other objects beside an MPIJob: none is a TFJob. */
        {"../mpijob/pvc-and-mpijob.yaml", "none of the 2 documents is a TFJob (kinds: "
         "\"PersistentVolumeClaim\" (line 3) and \"MPIJob\" (line 14)); for an MPIJob use "
         "--mpijob"},
        /* An MPIJob given as a TFJob. */
        {"../mpijob/v2beta1-2x8.yaml", "kind: \"MPIJob\" is not TFJob (line 3); for an MPIJob use --mpijob"},
        {"../mpijob/v1.yaml", "kind: \"MPIJob\" is not TFJob"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/tfjob/%s", FIXTURE_DIR, files[i].file);
        launch_tfjob_t job;
        launch_error_t err = {{0}};
        assert_int_not_equal(launch_tfjob_load(path, &job, &err), 0);
        print_message("%s: %s\n", files[i].file, err.text);
        if (strstr(err.text, files[i].says) == NULL)
            fail_msg("%s: error \"%s\" does not say \"%s\"", files[i].file, err.text,
                     files[i].says);
    }
    /* And the other way round: a TFJob given as an MPIJob says --tfjob. */
    char path[1024];
    snprintf(path, sizeof path, "%s/tfjob/v1-master-2workers-ps.yaml", FIXTURE_DIR);
    launch_job_t mpijob;
    launch_error_t err = {{0}};
    assert_int_equal(launch_job_load(path, NULL, &mpijob, &err), RT_EINVAL);
    assert_non_null(strstr(err.text, "use --tfjob"));
}

static void test_oversized_and_missing(void **state)
{
    (void)state;
    size_t big = LAUNCH_YAML_MAX_BYTES + 1;
    char *text = malloc(big);
    assert_non_null(text);
    memset(text, '#', big);
    launch_tfjob_t job;
    launch_error_t err = {{0}};
    assert_int_equal(launch_tfjob_parse(text, big, &job, &err), RT_ERANGE);
    assert_non_null(strstr(err.text, "1 MiB limit for a TFJob manifest"));
    char path[] = "/tmp/ringtrain-test-tfjob-big-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, big), (ssize_t)big);
    close(fd);
    int rc = launch_tfjob_load(path, &job, &err);
    unlink(path);
    free(text);
    assert_int_equal(rc, RT_ERANGE);
    assert_non_null(strstr(err.text, "1 MiB"));
    assert_int_equal(launch_tfjob_load("/nonexistent/tf.yaml", &job, &err), RT_ENOENT);
    assert_non_null(strstr(err.text, "/nonexistent/tf.yaml: cannot open"));
    assert_non_null(strstr(err.text, "the TFJob YAML"));
    assert_int_equal(launch_tfjob_load("/tmp", &job, &err), RT_EFORMAT);
    assert_non_null(strstr(err.text, "/tmp: is a directory, not a regular file"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_master_2workers_ps_parse),
        cmocka_unit_test(test_master_2workers_ps_allreduce),
        cmocka_unit_test(test_master_2workers_ps_parameter_server),
        cmocka_unit_test(test_chief_evaluator),
        cmocka_unit_test(test_other_documents_beside_the_job),
        cmocka_unit_test(test_v1beta1_lower_case_types),
        cmocka_unit_test(test_workers_only_default_replicas),
        cmocka_unit_test(test_cluster_domain_and_slots),
        cmocka_unit_test(test_rank_order_independent_of_key_order),
        cmocka_unit_test(test_zero_replicas),
        cmocka_unit_test(test_ps_mode_without_ps),
        cmocka_unit_test(test_args_ps_mode),
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_bad_fixture_files),
        cmocka_unit_test(test_oversized_and_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
