/* Tests of the ringtrain-launcher program itself: --help covers every flag
 * the parser takes, --dry-run / --print-hostfile output, bad input exits 2
 * with "ringtrain-launcher: error:" and writes nothing, readiness failure
 * exits 1 naming each host, the argv and environment mpirun really gets
 * (through a stand-in mpirun), signal forwarding and exit codes, and a real
 * local mpirun run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_tmpdir.h"

#include "common/common.h"
#include "launcher/launcher.h"

#define FAKE FIXTURE_DIR "/fake-mpirun.sh"
#define JOBS FIXTURE_DIR "/mpijob/"
#define TFJOBS FIXTURE_DIR "/tfjob/"

extern char **environ;

typedef struct {
    int code;
    char out[16384];
    char err[16384];
    double seconds;
} result_t;

static void slurp(const char *path, char *buf, size_t bytes)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    size_t got = fread(buf, 1, bytes - 1, f);
    buf[got] = '\0';
    fclose(f);
}

/* Starts the launcher with args (NULL-terminated), stdout/stderr to files. */
static pid_t start(const char *const *args, char *const *envp, const char *tag)
{
    char out[128], err[128];
    snprintf(out, sizeof out, "%s/%s.out", test_dir, tag);
    snprintf(err, sizeof err, "%s/%s.err", test_dir, tag);
    const char *argv[64];
    size_t count = 0;
    argv[count++] = LAUNCHER_EXE;
    for (size_t i = 0; args[i] != NULL && count < 63; i++)
        argv[count++] = args[i];
    argv[count] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, LAUNCHER_EXE, &fa, NULL, (char *const *)argv,
                         envp ? envp : environ);
    posix_spawn_file_actions_destroy(&fa);
    assert_int_equal(rc, 0);
    return pid;
}

static void finish(pid_t pid, const char *tag, double t0, result_t *r)
{
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    r->seconds = rt_now() - t0;
    r->code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    char path[128];
    snprintf(path, sizeof path, "%s/%s.out", test_dir, tag);
    slurp(path, r->out, sizeof r->out);
    snprintf(path, sizeof path, "%s/%s.err", test_dir, tag);
    slurp(path, r->err, sizeof r->err);
}

static result_t *run(const char *const *args, char *const *envp)
{
    static result_t r;
    double t0 = rt_now();
    pid_t pid = start(args, envp, "run");
    finish(pid, "run", t0, &r);
    return &r;
}

/* run() for a launcher that might hang: SIGKILLed after seconds (exit 137). */
static result_t *run_for(const char *const *args, char *const *envp, double seconds)
{
    static result_t r;
    double t0 = rt_now();
    pid_t pid = start(args, envp, "run-for");
    int status = 0;
    pid_t got;
    while ((got = waitpid(pid, &status, WNOHANG)) == 0 && rt_now() - t0 < seconds)
        usleep(20 * 1000);
    if (got == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    r.seconds = rt_now() - t0;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    char path[128];
    snprintf(path, sizeof path, "%s/run-for.out", test_dir);
    slurp(path, r.out, sizeof r.out);
    snprintf(path, sizeof path, "%s/run-for.err", test_dir);
    slurp(path, r.err, sizeof r.err);
    return &r;
}

static bool wait_for_file(const char *path, double seconds)
{
    double end = rt_now() + seconds;
    while (rt_now() < end) {
        if (access(path, F_OK) == 0)
            return true;
        usleep(20 * 1000);
    }
    return false;
}

static bool process_gone(pid_t pid)
{
    char path[64], stat[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    slurp(path, stat, sizeof stat);
    if (stat[0] == '\0')
        return true;
    /* A zombie waiting for its (re)parent to reap it has stopped running. */
    const char *close_paren = strrchr(stat, ')');
    return close_paren != NULL && close_paren[1] == ' ' && close_paren[2] == 'Z';
}

static void test_help_documents_every_flag(void **state)
{
    (void)state;
    static const char *const flags[] = {
        "--mpijob", "--hostfile", "--local", "--mpi-implementation", "--cluster-domain",
        "--gpus-per-node", "--processing-units-per-node", "--output-dir", "--ssh-port",
        "--wait-timeout", "--no-wait", "-np", "-n", "--np", "--oversubscribe", "--bind-to", "-x",
        "--export", "--mpirun-arg", "--mpirun", "--allow-run-as-root", "--kill-grace",
        "--dry-run", "--print-hostfile", "--print-discover-hosts", "-h", "--help", "--version",
        "--tfjob", "--slots-per-worker", "--stop-grace", "--max-restarts", "--min-np",
        "--max-np", "--discovery-interval"};
    const char *args[] = {"--help", NULL};
    result_t *r = run(args, NULL);
    assert_int_equal(r->code, 0);
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        char needle[64];
        snprintf(needle, sizeof needle, " %s", flags[i]);
        if (strstr(r->out, needle) == NULL)
            fail_msg("--help does not mention %s", flags[i]);
    }
    /* And every documented flag is accepted (none is "unknown"). */
    static const struct {
        const char *flag;
        const char *value;
    } with_value[] = {{"--gpus-per-node", "8"}, {"--processing-units-per-node", "4"},
                      {"--output-dir", "/tmp/x"}, {"--ssh-port", "2222"},
                      {"--wait-timeout", "1"}, {"-np", "2"}, {"-n", "2"}, {"--np", "2"},
                      {"--bind-to", "core"}, {"-x", "FOO"}, {"--export", "BAR=1"},
                      {"--mpirun-arg", "--tag-output"}, {"--mpirun", "/usr/bin/mpirun"},
                      {"--kill-grace", "2"}, {"--cluster-domain", "cluster.local"},
                      {"--stop-grace", "10"}, {"--max-restarts", "3"}, {"--min-np", "4"},
                      {"--max-np", "16"}, {"--discovery-interval", "2"},
                      {"--no-wait", NULL}, {"--oversubscribe", NULL},
                      {"--allow-run-as-root", NULL}, {"--print-hostfile", NULL},
                      {"--print-discover-hosts", NULL}};
    for (size_t i = 0; i < sizeof with_value / sizeof with_value[0]; i++) {
        const char *a[] = {"--mpijob", JOBS "v2beta1-2x8.yaml", "--dry-run", with_value[i].flag,
                           with_value[i].value, NULL};
        r = run(a, NULL);
        if (r->code != 0)
            fail_msg("%s %s: exit %d: %s", with_value[i].flag,
                     with_value[i].value ? with_value[i].value : "", r->code, r->err);
    }
    const char *tf[] = {"--tfjob", TFJOBS "v1-master-2workers-ps.yaml", "--dry-run",
                        "--slots-per-worker", "2", "--mpi-implementation", "MPICH", NULL};
    r = run(tf, NULL);
    if (r->code != 0)
        fail_msg("--tfjob --slots-per-worker --mpi-implementation: exit %d: %s", r->code, r->err);
    /* The hostfile is the v2 controller's: v1 and v1alpha1 jobs get v2 host
     * names (ssh needs them), and --help says so. */
    const char *help[] = {"--help", NULL};
    r = run(help, NULL);
    assert_non_null(strstr(r->out, "kubeflow.org/v1 and v1alpha1 MPIJobs get the v2 host names\n"
                                   "(<pod>.<job>.<namespace>.svc, which ssh can reach)"));
    const char *v[] = {"--version", NULL};
    r = run(v, NULL);
    assert_int_equal(r->code, 0);
    assert_int_equal(strncmp(r->out, "ringtrain-launcher ", 19), 0);
}

static void test_dry_run_2x8(void **state)
{
    (void)state;
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    const char *args[] = {"--mpijob", JOBS "v2beta1-2x8.yaml", "--output-dir", "/tmp/rt-job",
                          "--dry-run", "--", "ringtrain-worker", "--model", "mlp", NULL};
    result_t *r = run(args, envp);
    assert_int_equal(r->code, 0);
    char expected[4096];
    snprintf(expected, sizeof expected,
             "# ringtrain-launcher --dry-run: nothing is written or run\n"
             "# MPIJob default/tensorflow-benchmarks (kubeflow.org/v2beta1): 2 workers x 8 "
             "slots, OpenMPI, 16 processes\n"
             "# hostfile /tmp/rt-job/hostfile\n"
             "tensorflow-benchmarks-worker-0.tensorflow-benchmarks.default.svc slots=8\n"
             "tensorflow-benchmarks-worker-1.tensorflow-benchmarks.default.svc slots=8\n"
             "# readiness: wait up to 300 s for 2 hosts to accept TCP on port 22 (the default; "
             "mpi-operator images listen on 2222: give --ssh-port 2222)\n"
             "# /tmp/rt-job/discover_hosts.sh (once the workers are up)\n"
             "#!/bin/sh\n"
             "echo tensorflow-benchmarks-worker-0.tensorflow-benchmarks.default.svc\n"
             "echo tensorflow-benchmarks-worker-1.tensorflow-benchmarks.default.svc\n"
             "# environment added for mpirun (where not already set)\n"
             "K_MPI_JOB_ROLE=launcher\n"
             "OMPI_MCA_orte_keep_fqdn_hostnames=true\n"
             "OMPI_MCA_orte_default_hostfile=/tmp/rt-job/hostfile\n"
             "OMPI_MCA_plm_rsh_args=-o ConnectionAttempts=10\n"
             "OMPI_MCA_orte_set_default_slots=8\n"
             "# argv\n"
             "mpirun%s -np 16 --hostfile /tmp/rt-job/hostfile --map-by slot --bind-to none "
             "-x PATH ringtrain-worker --model mlp\n",
             geteuid() == 0 ? " --allow-run-as-root" : "");
    assert_string_equal(r->out, expected);
    assert_int_equal(access("/tmp/rt-job", F_OK), -1); /* nothing written */
}

/* Fields the launcher reads but leaves to the operator, and elastic bounds
 * in the program's arguments: one note each, on stderr. */
static void test_dry_run_notes_unused_fields(void **state)
{
    (void)state;
    const char *args[] = {"--mpijob", JOBS "v2beta1-operator-fields.yaml", "--dry-run", "--",
                          "horovodrun", "--min-np", "2", "--max-np=8", "python3", "train.py",
                          NULL};
    result_t *r = run(args, NULL);
    print_message("exit %d, stderr:\n%s", r->code, r->err);
    assert_int_equal(r->code, 0);
    static const char *const notes[] = {
        "ringtrain-launcher: note: spec.sshAuthMountPath: /home/mpiuser/.ssh is not used: ",
        "ringtrain-launcher: note: spec.runPolicy.cleanPodPolicy: Running is the operator's: ",
        "ringtrain-launcher: note: spec.launcherCreationPolicy: WaitForWorkersReady is the "
        "operator's: ",
        "ringtrain-launcher: note: --min-np/--max-np in the program's arguments: ",
    };
    size_t lines = 0;
    for (const char *c = r->err; *c; c++)
        lines += *c == '\n';
    assert_int_equal(lines, sizeof notes / sizeof notes[0]);
    for (size_t i = 0; i < sizeof notes / sizeof notes[0]; i++)
        if (strstr(r->err, notes[i]) == NULL)
            fail_msg("no note \"%s\" in:\n%s", notes[i], r->err);
    /* v1's cleanPodPolicy, at the top of spec or in runPolicy. */
    const char *v1[] = {"--mpijob", JOBS "v1.yaml", "--dry-run", "--", "w", NULL};
    r = run(v1, NULL);
    assert_non_null(strstr(r->err, "note: spec.runPolicy.cleanPodPolicy: Running is the "
                                   "operator's"));
    /* None of it: no note. */
    const char *plain[] = {"--mpijob", JOBS "v2beta1-defaults.yaml", "--dry-run", "--", "w", NULL};
    r = run(plain, NULL);
    assert_string_equal(r->err, "");
}

/* v1 and v1alpha1 controllers wrote bare pod names (for kubectl exec); the
 * launcher writes the v2 names ssh can reach, and its dry run says so. */
static void test_dry_run_v1_host_names(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        const char *version;
    } jobs[] = {{"v1.yaml", "v1"}, {"v1alpha1-gpus16.yaml", "v1alpha1"}};
    for (size_t i = 0; i < sizeof jobs / sizeof jobs[0]; i++) {
        char path[512], want[512];
        snprintf(path, sizeof path, "%s%s", JOBS, jobs[i].file);
        const char *args[] = {"--mpijob", path, "--dry-run", "--", "w", NULL};
        result_t *r = run(args, NULL);
        assert_int_equal(r->code, 0);
        snprintf(want, sizeof want, "# hosts: named as the v2 controller names them "
                 "(<pod>.<job>.<namespace>.svc, which ssh can reach), not the bare pod names the "
                 "%s controller wrote for kubectl exec\n# hostfile ", jobs[i].version);
        print_message("%s:\n%.400s", jobs[i].file, r->out);
        assert_non_null(strstr(r->out, want));
    }
    const char *v2[] = {"--mpijob", JOBS "v2beta1-2x8.yaml", "--dry-run", "--", "w", NULL};
    assert_null(strstr(run(v2, NULL)->out, "# hosts: "));
}

/* A claim, then an MPIJob of 18 workers x 4 slots, in one file: the dry
 * run shows the MPIJob's 18-line hostfile. */
static void test_dry_run_pvc_and_mpijob(void **state)
{
    (void)state;
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    const char *args[] = {"--mpijob", JOBS "pvc-and-mpijob.yaml", "--output-dir", "/tmp/rt-pvc",
                          "--dry-run", "--", "ringtrain-worker", NULL};
    result_t *r = run(args, envp);
    print_message("exit %d, stderr: %s", r->code, r->err);
    assert_int_equal(r->code, 0);
    assert_non_null(strstr(r->out, "# MPIJob training/resnet (kubeflow.org/v2beta1): 18 workers "
                                   "x 4 slots, OpenMPI, 72 processes\n"));
    const char *hostfile = strstr(r->out, "# hostfile /tmp/rt-pvc/hostfile\n");
    assert_non_null(hostfile);
    hostfile += strlen("# hostfile /tmp/rt-pvc/hostfile\n");
    char want[4096] = "";
    for (int i = 0; i < 18; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want),
                 "resnet-worker-%d.resnet.training.svc slots=4\n", i);
    size_t lines = strcspn(hostfile, "#"); /* up to the next comment line */
    assert_int_equal(lines, strlen(want));
    assert_memory_equal(hostfile, want, strlen(want));
    assert_int_equal(access("/tmp/rt-pvc", F_OK), -1); /* nothing written */
}

/* The issue's acceptance: a TFJob with 1 Master, 2 Workers and 1 PS
 * dry-runs to the expected hostfile and ranks, in both modes. A
 * RINGTRAIN_PS_RANKS inherited from the launcher's environment is replaced. */
static void test_tfjob_dry_run_both_modes(void **state)
{
    (void)state;
    char *envp[] = {"PATH=/usr/bin:/bin", "RINGTRAIN_PS_RANKS=7", NULL};
    const char *root = geteuid() == 0 ? " --allow-run-as-root" : "";
    const char *allreduce[] = {"--tfjob", TFJOBS "v1-master-2workers-ps.yaml", "--output-dir",
                               "/tmp/rt-tf", "--ssh-port", "2222", "--dry-run", "--",
                               "ringtrain-worker", "--model", "mlp", NULL};
    result_t *r = run(allreduce, envp);
    assert_int_equal(r->code, 0);
    char expected[4096];
    snprintf(expected, sizeof expected,
             "# ringtrain-launcher --dry-run: nothing is written or run\n"
             "# TFJob default/dist-mnist (kubeflow.org/v1): Master 1, Worker 2, PS 1; allreduce "
             "mode: 3 hosts, OpenMPI, 3 processes\n"
             "# ranks: the chief first, then the workers\n"
             "# rank 0: dist-mnist-master-0.default.svc (Master 0)\n"
             "# rank 1: dist-mnist-worker-0.default.svc (Worker 0)\n"
             "# rank 2: dist-mnist-worker-1.default.svc (Worker 1)\n"
             "# no rank: dist-mnist-ps-0.default.svc (PS 0): unused without "
             "--variable_update=parameter_server\n"
             "# hostfile /tmp/rt-tf/hostfile\n"
             "dist-mnist-master-0.default.svc slots=1\n"
             "dist-mnist-worker-0.default.svc slots=1\n"
             "dist-mnist-worker-1.default.svc slots=1\n"
             "# readiness: wait up to 300 s for 3 hosts to accept TCP on port 2222 "
             "(--ssh-port)\n"
             "# /tmp/rt-tf/discover_hosts.sh (once the workers are up)\n"
             "#!/bin/sh\n"
             "echo dist-mnist-master-0.default.svc\n"
             "echo dist-mnist-worker-0.default.svc\n"
             "echo dist-mnist-worker-1.default.svc\n"
             "# environment added for mpirun (where not already set)\n"
             "K_MPI_JOB_ROLE=launcher\n"
             "OMPI_MCA_orte_keep_fqdn_hostnames=true\n"
             "OMPI_MCA_orte_default_hostfile=/tmp/rt-tf/hostfile\n"
             "OMPI_MCA_plm_rsh_args=-o ConnectionAttempts=10\n"
             "OMPI_MCA_orte_set_default_slots=1\n"
             "# environment set for mpirun from the TFJob (replacing any inherited value)\n"
             "RINGTRAIN_PS_RANKS=\n"
             "# argv\n"
             "mpirun%s -np 3 --hostfile /tmp/rt-tf/hostfile --map-by slot --bind-to none "
             "-x PATH -x RINGTRAIN_PS_RANKS ringtrain-worker --model mlp\n",
             root);
    assert_string_equal(r->out, expected);
    /* The unused parameter server is a note on stderr, not an error. */
    assert_string_equal(r->err,
                        "ringtrain-launcher: note: spec.tfReplicaSpecs.PS: 1 parameter server "
                        "unused (dist-mnist-ps-0.default.svc): the program does not ask for "
                        "--variable_update=parameter_server and allreduce needs none; those pods "
                        "stay idle\n");

    const char *ps[] = {"--tfjob", TFJOBS "v1-master-2workers-ps.yaml", "--output-dir",
                        "/tmp/rt-tf", "--ssh-port", "2222", "--dry-run", "--", "ringtrain-worker",
                        "--model", "mlp", "--variable_update", "parameter_server", NULL};
    r = run(ps, envp);
    assert_int_equal(r->code, 0);
    snprintf(expected, sizeof expected,
             "# ringtrain-launcher --dry-run: nothing is written or run\n"
             "# TFJob default/dist-mnist (kubeflow.org/v1): Master 1, Worker 2, PS 1; "
             "parameter_server mode: 4 hosts, OpenMPI, 4 processes\n"
             "# ranks: the chief first, then the workers, then the parameter servers\n"
             "# rank 0: dist-mnist-master-0.default.svc (Master 0)\n"
             "# rank 1: dist-mnist-worker-0.default.svc (Worker 0)\n"
             "# rank 2: dist-mnist-worker-1.default.svc (Worker 1)\n"
             "# rank 3: dist-mnist-ps-0.default.svc (PS 0, parameter server)\n"
             "# hostfile /tmp/rt-tf/hostfile\n"
             "dist-mnist-master-0.default.svc slots=1\n"
             "dist-mnist-worker-0.default.svc slots=1\n"
             "dist-mnist-worker-1.default.svc slots=1\n"
             "dist-mnist-ps-0.default.svc slots=1\n"
             "# readiness: wait up to 300 s for 4 hosts to accept TCP on port 2222 "
             "(--ssh-port)\n"
             "# /tmp/rt-tf/discover_hosts.sh (once the workers are up)\n"
             "#!/bin/sh\n"
             "echo dist-mnist-master-0.default.svc\n"
             "echo dist-mnist-ps-0.default.svc\n"
             "echo dist-mnist-worker-0.default.svc\n"
             "echo dist-mnist-worker-1.default.svc\n"
             "# environment added for mpirun (where not already set)\n"
             "K_MPI_JOB_ROLE=launcher\n"
             "OMPI_MCA_orte_keep_fqdn_hostnames=true\n"
             "OMPI_MCA_orte_default_hostfile=/tmp/rt-tf/hostfile\n"
             "OMPI_MCA_plm_rsh_args=-o ConnectionAttempts=10\n"
             "OMPI_MCA_orte_set_default_slots=1\n"
             "# environment set for mpirun from the TFJob (replacing any inherited value)\n"
             "RINGTRAIN_PS_RANKS=3\n"
             "# argv\n"
             "mpirun%s -np 4 --hostfile /tmp/rt-tf/hostfile --map-by slot --bind-to none "
             "-x PATH -x RINGTRAIN_PS_RANKS ringtrain-worker --model mlp --variable_update "
             "parameter_server\n",
             root);
    assert_string_equal(r->out, expected);
    assert_string_equal(r->err, "");
    assert_int_equal(access("/tmp/rt-tf", F_OK), -1); /* nothing written */

    /* Several slots per pod: ranges per host; the parameter server is one rank. */
    const char *slots[] = {"--tfjob", TFJOBS "v1-chief-evaluator.yaml", "--dry-run",
                           "--slots-per-worker", "2", "--", "w",
                           "-variable_update=parameter_server", NULL};
    r = run(slots, envp);
    assert_int_equal(r->code, 0);
    assert_non_null(strstr(r->out, "# ranks 0-1: mnist-chief-chief-0.ml-team.svc (Chief 0)\n"
                                    "# ranks 2-3: mnist-chief-worker-0.ml-team.svc (Worker 0)\n"));
    assert_non_null(strstr(r->out, "# rank 8: mnist-chief-ps-0.ml-team.svc (PS 0, parameter "
                                   "server)\n# no rank: mnist-chief-evaluator-0.ml-team.svc "
                                   "(Evaluator 0): not part of the training cluster\n"));
    assert_non_null(strstr(r->out, "\nRINGTRAIN_PS_RANKS=8\n"));
    assert_non_null(strstr(r->out, " -np 9 "));
    assert_non_null(strstr(r->err, "note: spec.tfReplicaSpecs.Evaluator: 1 evaluator not run"));
}

static void test_tfjob_print_hostfile(void **state)
{
    (void)state;
    const char *args[] = {"--tfjob", TFJOBS "v1beta1-lowercase.yaml", "--print-hostfile",
                          "--cluster-domain", "cluster.local", "--", "w",
                          "--variable_update=parameter_server", NULL};
    result_t *r = run(args, NULL);
    assert_int_equal(r->code, 0);
    assert_string_equal(r->out, "legacy-tf-worker-0.default.svc.cluster.local slots=1\n"
                                "legacy-tf-worker-1.default.svc.cluster.local slots=1\n"
                                "legacy-tf-worker-2.default.svc.cluster.local slots=1\n"
                                "legacy-tf-worker-3.default.svc.cluster.local slots=1\n"
                                "legacy-tf-ps-0.default.svc.cluster.local slots=1\n"
                                "legacy-tf-ps-1.default.svc.cluster.local slots=1\n");
    const char *intel[] = {"--tfjob", TFJOBS "v1-master-2workers-ps.yaml", "--print-hostfile",
                           "--mpi-implementation", "Intel", NULL};
    r = run(intel, NULL);
    assert_int_equal(r->code, 0);
    assert_string_equal(r->out, "dist-mnist-master-0.default.svc:1\n"
                                "dist-mnist-worker-0.default.svc:1\n"
                                "dist-mnist-worker-1.default.svc:1\n");
    assert_non_null(strstr(r->err, "1 parameter server unused"));
}

/* What mpirun really gets for a TFJob: the files, the argv, and exactly one
 * RINGTRAIN_PS_RANKS in its environment (the inherited one replaced). */
static void test_tfjob_run_env(void **state)
{
    (void)state;
    char outdir[128], args_file[128], env_file[128];
    snprintf(outdir, sizeof outdir, "%s/tf", test_dir);
    snprintf(args_file, sizeof args_file, "%s/tfargs", test_dir);
    snprintf(env_file, sizeof env_file, "%s/tfenv", test_dir);
    char *envp[] = {"PATH=/usr/bin:/bin", "RINGTRAIN_PS_RANKS=0,1", NULL};
    const char *args[] = {"--tfjob", TFJOBS "v1-master-2workers-ps.yaml", "--output-dir",
                          outdir, "--no-wait", "--mpirun", FAKE, "--", "fake-job", "args",
                          args_file, "--variable_update=parameter_server", NULL};
    result_t *r = run(args, envp);
    assert_int_equal(r->code, 0);
    char text[4096], want[4096];
    slurp(args_file, text, sizeof text);
    snprintf(want, sizeof want,
             "%s\n%s-np\n4\n--hostfile\n%s/hostfile\n--map-by\nslot\n--bind-to\nnone\n-x\nPATH\n"
             "-x\nRINGTRAIN_PS_RANKS\nfake-job\nargs\n%s\n--variable_update=parameter_server\n",
             FAKE, geteuid() == 0 ? "--allow-run-as-root\n" : "", outdir, args_file);
    assert_string_equal(text, want);
    char path[256];
    snprintf(path, sizeof path, "%s/hostfile", outdir);
    slurp(path, text, sizeof text);
    assert_string_equal(text, "dist-mnist-master-0.default.svc slots=1\n"
                              "dist-mnist-worker-0.default.svc slots=1\n"
                              "dist-mnist-worker-1.default.svc slots=1\n"
                              "dist-mnist-ps-0.default.svc slots=1\n");

    const char *env_args[] = {"--tfjob", TFJOBS "v1-master-2workers-ps.yaml", "--output-dir",
                              outdir, "--no-wait", "--mpirun", FAKE, "--", "fake-job", "env",
                              env_file, "--variable_update=parameter_server", NULL};
    r = run(env_args, envp);
    assert_int_equal(r->code, 0);
    slurp(env_file, text, sizeof text);
    const char *at = strstr(text, "RINGTRAIN_PS_RANKS=");
    assert_non_null(at);
    assert_int_equal(strncmp(at, "RINGTRAIN_PS_RANKS=3\n", 21), 0);
    assert_null(strstr(at + 1, "RINGTRAIN_PS_RANKS="));
    /* Allreduce mode: set, and empty. */
    const char *plain[] = {"--tfjob", TFJOBS "v1-master-2workers-ps.yaml", "--output-dir",
                           outdir, "--no-wait", "--mpirun", FAKE, "--", "fake-job", "env",
                           env_file, NULL};
    r = run(plain, envp);
    assert_int_equal(r->code, 0);
    slurp(env_file, text, sizeof text);
    at = strstr(text, "RINGTRAIN_PS_RANKS=");
    assert_non_null(at);
    assert_int_equal(strncmp(at, "RINGTRAIN_PS_RANKS=\n", 20), 0);
    assert_null(strstr(at + 1, "RINGTRAIN_PS_RANKS="));
}

static void test_relative_program_made_absolute(void **state)
{
    (void)state;
    /* Workers resolve a relative program from their own directory, so the
     * launcher passes it as an absolute path; names from PATH and --local
     * runs are left as given. */
    char cwd[4096], want[4200];
    assert_non_null(getcwd(cwd, sizeof cwd));
    const char *rel[] = {"--mpijob", JOBS "v2beta1-2x8.yaml", "--dry-run", "--", "bin/worker",
                         "sub/arg", NULL};
    result_t *r = run(rel, NULL);
    assert_int_equal(r->code, 0);
    snprintf(want, sizeof want, " %s/bin/worker sub/arg\n", cwd);
    assert_non_null(strstr(r->out, want));
    const char *bare[] = {"--mpijob", JOBS "v2beta1-2x8.yaml", "--dry-run", "--", "python3",
                          "train.py", NULL};
    r = run(bare, NULL);
    assert_non_null(strstr(r->out, " python3 train.py\n"));
    const char *local[] = {"--local", "-np", "2", "--dry-run", "--", "bin/worker", NULL};
    r = run(local, NULL);
    assert_non_null(strstr(r->out, " bin/worker\n"));
}

static void test_print_hostfile(void **state)
{
    (void)state;
    /* v1 with a GPU launcher: listed first, as the v1 controller does, and
     * counted in -np; not waited for (it is this machine). */
    const char *gpu[] = {"--mpijob", JOBS "v1-gpu-launcher.yaml", "--dry-run", "--", "w", NULL};
    result_t *g = run(gpu, NULL);
    print_message("v1 GPU launcher: exit %d\n%s%s", g->code, g->out, g->err);
    assert_int_equal(g->code, 0);
    assert_non_null(strstr(g->out, "\ntf-gpu-launcher.tf-gpu.team-b.svc slots=2\n"
                                   "tf-gpu-worker-0.tf-gpu.team-b.svc slots=2\n"
                                   "tf-gpu-worker-1.tf-gpu.team-b.svc slots=2\n"));
    assert_non_null(strstr(g->out, " -np 6 "));
    assert_non_null(strstr(g->out, "# MPIJob team-b/tf-gpu (kubeflow.org/v1): 2 workers x 2 "
                                   "slots + the launcher (it requests a GPU, so the v1 "
                                   "controller lists it), OpenMPI, 6 processes\n"));
    assert_non_null(strstr(g->out, "for 2 hosts to accept TCP"));
    const char *args[] = {"--mpijob", JOBS "v1alpha1-gpus16.yaml", "--print-hostfile",
                          "--cluster-domain", "cluster.local", NULL};
    result_t *r = run(args, NULL);
    assert_int_equal(r->code, 0);
    assert_string_equal(r->out,
                        "tensorflow-benchmarks-16-worker-0.tensorflow-benchmarks-16.default.svc."
                        "cluster.local slots=8\n"
                        "tensorflow-benchmarks-16-worker-1.tensorflow-benchmarks-16.default.svc."
                        "cluster.local slots=8\n");
    const char *gpn[] = {"--mpijob", JOBS "v1alpha1-gpus16.yaml", "--print-hostfile",
                         "--gpus-per-node", "4", NULL};
    r = run(gpn, NULL);
    assert_int_equal(r->code, 0);
    assert_non_null(strstr(r->out, "tensorflow-benchmarks-16-worker-3."));
    assert_null(strstr(r->out, "tensorflow-benchmarks-16-worker-4."));
    const char *intel[] = {"--mpijob", JOBS "v2beta1-intel.yaml", "--print-hostfile",
                           "--print-discover-hosts", NULL};
    r = run(intel, NULL);
    assert_int_equal(r->code, 0);
    assert_string_equal(r->out, "intel-job-worker-0.intel-job.hpc.svc:2\n"
                                "intel-job-worker-1.intel-job.hpc.svc:2\n"
                                "intel-job-worker-2.intel-job.hpc.svc:2\n"
                                "#!/bin/sh\n"
                                "echo intel-job-worker-0.intel-job.hpc.svc\n"
                                "echo intel-job-worker-1.intel-job.hpc.svc\n"
                                "echo intel-job-worker-2.intel-job.hpc.svc\n");
}

static void test_bad_input_exits_2(void **state)
{
    (void)state;
    char outdir[128];
    snprintf(outdir, sizeof outdir, "%s/never", test_dir);
    static const struct {
        const char *args[14];
        const char *says;
    } cases[] = {
        {{"--mpijob", JOBS "hostile-name.yaml", "--output-dir", NULL, "--", "true", NULL},
         "metadata.name: \"a;rm -rf /\""},
        {{"--mpijob", JOBS "alias-bomb.yaml", "--output-dir", NULL, "--", "true", NULL},
         "anchor"},
        {{"--mpijob", JOBS "multi-doc.yaml", "--output-dir", NULL, "--", "true", NULL},
         "2 MPIJobs in one file: \"first\" (line 1) and \"second\" (line 10)"},
        {{"--mpijob", JOBS "v1alpha1-gpus12.yaml", "--output-dir", NULL, "--", "true", NULL},
         "spec.gpus: specified #GPUs is not a multiple of GPUs per node (8)"},
        {{"--mpijob", JOBS "v2beta1-2x8.yaml", "--output-dir", NULL, "--cluster-domain",
          "bad domain", "--", "true", NULL}, "--cluster-domain: "},
        {{"--mpijob", JOBS "v2beta1-2x8.yaml", "--output-dir", NULL, "-np", "17", "--", "true",
          NULL}, "-np: 17 processes but the hosts have 16 slots"},
        {{"--mpijob", "/nonexistent.yaml", "--output-dir", NULL, "--", "true", NULL},
         "cannot open"},
        {{"--mpijob", JOBS "v2beta1-2x8.yaml", "--output-dir", NULL, NULL}, "program: missing"},
        {{"--mpijob", JOBS "v2beta1-2x8.yaml", "--output-dir", NULL, "--", "-rf", NULL},
         "starts with '-'"},
        {{"--mpijob", JOBS "v2beta1-2x8.yaml", "--output-dir", NULL, "--frobnicate", NULL},
         "--frobnicate: unknown option"},
        {{"--mpijob", JOBS "v2beta1-2x8.yaml", "--output-dir", NULL, "--ssh-port", "70000", "--",
          "true", NULL}, "--ssh-port: "},
        {{"--mpijob", JOBS "v2beta1-2x8.yaml", "--output-dir", NULL, "--wait-timeout", "-1",
          "--", "true", NULL}, "--wait-timeout: "},
        {{"--mpijob", JOBS "v2beta1-2x8.yaml", "--output-dir", NULL, "--gpus-per-node", "0",
          "--", "true", NULL}, "--gpus-per-node: "},
        {{"--mpijob", JOBS "v2beta1-2x8.yaml", "--output-dir", NULL, "-x", "A;B", "--", "true",
          NULL}, "-x: "},
        {{"--mpijob", JOBS "v2beta1-2x8.yaml", "--output-dir", NULL, "--mpi-implementation",
          "Intel", "--", "true", NULL}, "--mpi-implementation: "},
        {{"--mpijob", JOBS "v2beta1-2x8.yaml", "--output-dir", NULL, "--local", "-np", "2", "--",
          "true", NULL}, "--local: cannot be combined"},
        {{"--local", "--output-dir", NULL, "--", "true", NULL}, "--local: needs -np"},
        {{"--local", "--output-dir", NULL, "-np", "0", "--", "true", NULL}, "-np: "},
        {{"--mpijob", JOBS "v2beta1-2x8.yaml", "--output-dir", NULL, "--mpijob", NULL},
         "--mpijob: needs a value"},
        {{"--tfjob", TFJOBS "both-master-chief.yaml", "--output-dir", NULL, "--", "true", NULL},
         "spec.tfReplicaSpecs: both Chief"},
        {{"--tfjob", TFJOBS "hostile-name.yaml", "--output-dir", NULL, "--", "true", NULL},
         "metadata.name: \"a;rm -rf /\""},
        {{"--tfjob", TFJOBS "alias.yaml", "--output-dir", NULL, "--", "true", NULL}, "anchor"},
        {{"--tfjob", JOBS "v2beta1-2x8.yaml", "--output-dir", NULL, "--", "true", NULL},
         "kind: \"MPIJob\" is not TFJob (line 3); for an MPIJob use --mpijob"},
        {{"--mpijob", JOBS "katib-experiment.yaml", "--output-dir", NULL, "--", "true", NULL},
         "kind: \"Experiment\" is not MPIJob (line 3)"},
        {{"--tfjob", JOBS "katib-experiment.yaml", "--output-dir", NULL, "--", "true", NULL},
         "kind: \"Experiment\" is not TFJob (line 3)"},
        {{"--mpijob", TFJOBS "v1-master-2workers-ps.yaml", "--output-dir", NULL, "--", "true",
          NULL}, "use --tfjob"},
        {{"--tfjob", TFJOBS "v1-workers-only.yaml", "--output-dir", NULL, "--", "w",
          "--variable_update=parameter_server", NULL}, "spec.tfReplicaSpecs.PS: "},
        {{"--tfjob", TFJOBS "v1-master-2workers-ps.yaml", "--output-dir", NULL, "-np", "2", "--",
          "true", NULL}, "-np: 2 processes, but the TFJob's replicas make 3 ranks"},
        {{"--tfjob", TFJOBS "v1-master-2workers-ps.yaml", "--output-dir", NULL, "-np", "4",
          "--oversubscribe", "--", "true", NULL}, "make 3 ranks"},
        {{"--tfjob", TFJOBS "v1-master-2workers-ps.yaml", "--output-dir", NULL, "--mpijob",
          JOBS "v2beta1-2x8.yaml", "--", "true", NULL}, "--tfjob: cannot be combined"},
        {{"--tfjob", TFJOBS "v1-master-2workers-ps.yaml", "--output-dir", NULL,
          "--slots-per-worker", "0", "--", "true", NULL}, "--slots-per-worker: "},
        {{"--mpijob", JOBS "v2beta1-2x8.yaml", "--output-dir", NULL, "--slots-per-worker", "2",
          "--", "true", NULL}, "--slots-per-worker: only applies with --tfjob"},
        {{"--tfjob", TFJOBS "v1-master-2workers-ps.yaml", "--output-dir", NULL,
          "--cluster-domain", "Bad_Domain", "--", "true", NULL}, "--cluster-domain: "},
        {{"--mpijob", JOBS "v2beta1-2x8.yaml", "--output-dir", NULL, "--min-np", "8",
          "--max-np", "4", "--", "true", NULL},
         "--min-np 8 is larger than --max-np 4; give --min-np <= --max-np"},
        {{"--mpijob", JOBS "v2beta1-2x8.yaml", "--output-dir", NULL, "--max-restarts", "-1",
          "--", "true", NULL}, "--max-restarts: \"-1\" is not 0..1000"},
        {{"--mpijob", JOBS "v2beta1-2x8.yaml", "--output-dir", NULL, "--min-np", "0", "--",
          "true", NULL}, "--min-np: \"0\" is not a process count"},
        {{"--mpijob", JOBS "v2beta1-2x8.yaml", "--output-dir", NULL, "--min-np", "17", "--",
          "true", NULL}, "--min-np: 17 processes but the hosts have 16 slots"},
        {{"--mpijob", JOBS "v2beta1-2x8.yaml", "--output-dir", NULL, "-np", "4", "--min-np",
          "6", "--", "true", NULL}, "-np: 4 processes is outside --min-np 6 .. --max-np 16"},
        {{"--mpijob", JOBS "v2beta1-2x8.yaml", "--output-dir", NULL, "--discovery-interval",
          "0", "--", "true", NULL}, "--discovery-interval: "},
        {{"--mpijob", JOBS "v2beta1-2x8.yaml", "--output-dir", NULL, "--stop-grace", "x",
          "--", "true", NULL}, "--stop-grace: "},
        {{"--local", "--output-dir", NULL, "-np", "2", "--min-np", "1", "--", "true", NULL},
         "--min-np: --local runs -np processes on this machine"},
        {{"--tfjob", TFJOBS "v1-master-2workers-ps.yaml", "--output-dir", NULL, "--max-np", "3",
          "--", "true", NULL}, "--max-np: a TFJob's ranks are fixed by its replicas"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[16];
        size_t count = 0;
        /* A NULL right after --output-dir stands for outdir; the next ends the list. */
        for (size_t k = 0; k < 14; k++) {
            bool is_dir = k > 0 && cases[i].args[k - 1] != NULL &&
                          strcmp(cases[i].args[k - 1], "--output-dir") == 0;
            if (cases[i].args[k] == NULL && !is_dir)
                break;
            args[count++] = cases[i].args[k] ? cases[i].args[k] : outdir;
        }
        args[count] = NULL;
        result_t *r = run(args, NULL);
        print_message("case %zu: exit %d: %s", i, r->code, r->err);
        assert_int_equal(r->code, 2);
        assert_int_equal(strncmp(r->err, "ringtrain-launcher: error: ", 27), 0);
        assert_non_null(strstr(r->err, cases[i].says));
        /* One line: a hostile value cannot forge more output. */
        assert_ptr_equal(strchr(r->err, '\n'), r->err + strlen(r->err) - 1);
        assert_int_equal(access(outdir, F_OK), -1); /* nothing written */
    }
}

/* Writes text to <test_dir>/name; path gets its path. */
static void write_scratch(const char *name, const char *text, char *path, size_t bytes)
{
    snprintf(path, bytes, "%s/%s", test_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_hostfile_mode(void **state)
{
    (void)state;
    /* An operator-written hostfile is used as it is. */
    char hostfile[128];
    write_scratch("hostfile", "# from the operator\njob-worker-0.job.default.svc slots=4\n"
                  "job-worker-1.job.default.svc slots=4\n", hostfile, sizeof hostfile);
    FILE *f;
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    const char *args[] = {"--hostfile", hostfile, "--dry-run", "--", "prog", NULL};
    result_t *r = run(args, envp);
    assert_int_equal(r->code, 0);
    assert_non_null(strstr(r->out, "# from the operator\njob-worker-0.job.default.svc slots=4\n"));
    char want[512];
    snprintf(want, sizeof want, "-np 8 --hostfile %s --map-by slot", hostfile);
    assert_non_null(strstr(r->out, want));
    snprintf(want, sizeof want, "OMPI_MCA_orte_default_hostfile=%s\n", hostfile);
    assert_non_null(strstr(r->out, want));
    assert_non_null(strstr(r->out, "OMPI_MCA_orte_set_default_slots=4\n"));
    /* Hydra syntax -> MPICH unless told Intel. */
    f = fopen(hostfile, "w");
    fputs("a.b.svc:2\nc.d.svc:2\n", f);
    fclose(f);
    const char *intel[] = {"--hostfile", hostfile, "--mpi-implementation", "Intel", "--dry-run",
                           "--", "prog", NULL};
    r = run(intel, envp);
    assert_int_equal(r->code, 0);
    snprintf(want, sizeof want, "mpirun -n 4 -f %s prog\n", hostfile);
    assert_non_null(strstr(r->out, want));
    assert_non_null(strstr(r->out, "I_MPI_PERHOST=2\n"));
    /* A hostile hostfile is refused. */
    f = fopen(hostfile, "w");
    fputs("a slots=2 ; reboot\n", f);
    fclose(f);
    const char *bad[] = {"--hostfile", hostfile, "--dry-run", "--", "prog", NULL};
    r = run(bad, envp);
    assert_int_equal(r->code, 2);
    assert_non_null(strstr(r->err, "\";\" is not slots=N"));
    /* Without --mpijob and without /etc/mpi/hostfile: say what to give. */
    if (access("/etc/mpi/hostfile", F_OK) != 0) {
        const char *none[] = {"--", "prog", NULL};
        r = run(none, envp);
        assert_int_equal(r->code, 2);
        assert_non_null(strstr(r->err, "/etc/mpi/hostfile does not exist"));
    }
}

/* A FIFO (or a directory) given as an input file is refused at once,
 * naming it, instead of blocking forever on the open. */
static void test_input_not_regular_file(void **state)
{
    (void)state;
    char fifo[128], outdir[128];
    snprintf(fifo, sizeof fifo, "%s/job.fifo", test_dir);
    snprintf(outdir, sizeof outdir, "%s/fifo-out", test_dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    const char *flags[] = {"--mpijob", "--tfjob", "--hostfile"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        const char *args[] = {flags[i], fifo, "--output-dir", outdir, "--dry-run", "--", "w",
                              NULL};
        result_t *r = run_for(args, NULL, 5);
        print_message("%s FIFO: exit %d after %.2f s: %s", flags[i], r->code, r->seconds,
                      r->err);
        assert_int_equal(r->code, 2);
        assert_true(r->seconds < 3);
        assert_non_null(strstr(r->err, fifo));
        assert_non_null(strstr(r->err, "FIFO"));
    }
    const char *dir[] = {"--mpijob", test_dir, "--dry-run", "--", "w", NULL};
    result_t *r = run_for(dir, NULL, 5);
    print_message("--mpijob directory: exit %d: %s", r->code, r->err);
    assert_int_equal(r->code, 2);
    assert_non_null(strstr(r->err, "is a directory"));
    assert_int_equal(access(outdir, F_OK), -1);
    unlink(fifo);
}

/* The work directory must be writable by us alone: in a directory others
 * can write, they could swap the hostfile or discover_hosts.sh (which
 * Horovod runs) under the job. */
static void test_output_dir_must_be_private(void **state)
{
    (void)state;
    static const mode_t refused[] = {0777, 01777, 0770}; /* the sticky bit is no excuse */
    char dir[160], path[200];
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        snprintf(dir, sizeof dir, "%s/out-%04o", test_dir, (unsigned)refused[i]);
        assert_int_equal(mkdir(dir, 0700), 0);
        assert_int_equal(chmod(dir, refused[i]), 0);
        const char *args[] = {"--mpijob", JOBS "v2beta1-2x8.yaml", "--output-dir", dir,
                              "--no-wait", "--mpirun", FAKE, "--", "fake-job", "exit", "0", NULL};
        result_t *r = run(args, NULL);
        print_message("--output-dir mode %04o: exit %d: %s", (unsigned)refused[i], r->code,
                      r->err);
        assert_int_equal(r->code, 2);
        assert_non_null(strstr(r->err, "ringtrain-launcher: error: --output-dir: "));
        assert_non_null(strstr(r->err, refused[i] & S_IWOTH ? "is writable by others"
                                                            : "is writable by its group"));
        assert_non_null(strstr(r->err, "chmod go-w"));
        snprintf(path, sizeof path, "%s/hostfile", dir);
        assert_int_equal(access(path, F_OK), -1); /* nothing written there */
    }
    /* A new directory inside one that others can write (and that is not
     * sticky) could be renamed away and replaced while the job waits. */
    snprintf(dir, sizeof dir, "%s/open-parent", test_dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(chmod(dir, 0777), 0);
    snprintf(path, sizeof path, "%s/job", dir);
    const char *parent[] = {"--mpijob", JOBS "v2beta1-2x8.yaml", "--output-dir", path,
                            "--no-wait", "--mpirun", FAKE, "--", "fake-job", "exit", "0", NULL};
    result_t *r = run(parent, NULL);
    print_message("--output-dir in a 0777 parent: exit %d: %s", r->code, r->err);
    assert_int_equal(r->code, 2);
    assert_non_null(strstr(r->err, "its parent"));
    /* Private (0755: others may read) is fine. */
    snprintf(dir, sizeof dir, "%s/out-private", test_dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(chmod(dir, 0755), 0);
    const char *ok[] = {"--mpijob", JOBS "v2beta1-2x8.yaml", "--output-dir", dir, "--no-wait",
                        "--mpirun", FAKE, "--", "fake-job", "exit", "0", NULL};
    r = run(ok, NULL);
    assert_int_equal(r->code, 0);
    snprintf(path, sizeof path, "%s/hostfile", dir);
    assert_int_equal(access(path, F_OK), 0);
}

static uint16_t listening_port(int *fd_out)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 16), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    *fd_out = fd;
    return ntohs(a.sin_port);
}

static void test_readiness_failure_names_hosts(void **state)
{
    (void)state;
    char outdir[128];
    snprintf(outdir, sizeof outdir, "%s/job", test_dir);
    /* The fixture's hosts do not resolve here. */
    const char *args[] = {"--mpijob", JOBS "v2beta1-2x8.yaml", "--output-dir", outdir,
                          "--wait-timeout", "1", "--mpirun", FAKE, "--", "fake-job", "exit", "0",
                          NULL};
    result_t *r = run(args, NULL);
    print_message("%s", r->err);
    assert_int_equal(r->code, 1);
    assert_true(r->seconds < 1 + 5);
    assert_non_null(strstr(r->err, "ringtrain-launcher: error: readiness: 2 of 2 hosts not "
                                    "ready on port 22 after 1 s:"));
    assert_non_null(strstr(r->err, "tensorflow-benchmarks-worker-0.tensorflow-benchmarks."
                                    "default.svc (no DNS)"));
    assert_non_null(strstr(r->err, "tensorflow-benchmarks-worker-1.tensorflow-benchmarks."
                                    "default.svc (no DNS)"));
    /* The hostfile was written before waiting; discover_hosts.sh is not. */
    char path[256];
    snprintf(path, sizeof path, "%s/hostfile", outdir);
    assert_int_equal(access(path, F_OK), 0);
    snprintf(path, sizeof path, "%s/discover_hosts.sh", outdir);
    assert_int_equal(access(path, F_OK), -1);

    /* A host that resolves but refuses: "refused". */
    char hostfile[128];
    snprintf(hostfile, sizeof hostfile, "%s/hf", test_dir);
    int fd;
    uint16_t port = listening_port(&fd);
    FILE *f = fopen(hostfile, "w");
    /* 127.0.0.3 first reads as this machine (the launcher as a worker): not waited for. */
    fputs("127.0.0.3 slots=1\n127.0.0.1 slots=1\n127.0.0.2 slots=1\n", f);
    fclose(f);
    char port_text[16];
    snprintf(port_text, sizeof port_text, "%u", port);
    const char *mixed[] = {"--hostfile", hostfile, "--ssh-port", port_text, "--wait-timeout",
                           "0.5", "--mpirun", FAKE, "--", "fake-job", "exit", "0", NULL};
    r = run(mixed, NULL);
    close(fd);
    print_message("%s", r->err);
    assert_int_equal(r->code, 1);
    assert_non_null(strstr(r->err, "1 of 2 hosts not ready"));
    assert_non_null(strstr(r->err, " 127.0.0.2 (refused)"));
    assert_null(strstr(r->err, " 127.0.0.1 ("));
}

static void test_run_passes_argv_and_env(void **state)
{
    (void)state;
    char outdir[128], args_file[128], env_file[128];
    snprintf(outdir, sizeof outdir, "%s/job2", test_dir);
    snprintf(args_file, sizeof args_file, "%s/args", test_dir);
    snprintf(env_file, sizeof env_file, "%s/env", test_dir);
    char *envp[] = {"PATH=/usr/bin:/bin", "NCCL_DEBUG=INFO", "OMPI_MCA_plm_rsh_args=-p 2222",
                    NULL};
    const char *args[] = {"--mpijob", JOBS "v2beta1-launcher-worker.yaml", "--output-dir", outdir,
                          "--no-wait", "--mpirun", FAKE, "--mpirun-arg", "--tag-output", "--",
                          "fake-job", "args", args_file, "a b", "$(reboot)", "x;y", NULL};
    result_t *r = run(args, envp);
    assert_int_equal(r->code, 0);
    char text[4096];
    slurp(args_file, text, sizeof text);
    char want[4096];
    snprintf(want, sizeof want,
             "%s\n%s-np\n12\n--hostfile\n%s/hostfile\n--map-by\nslot\n--bind-to\nnone\n-x\nPATH\n"
             "-x\nNCCL_DEBUG\n--tag-output\nfake-job\nargs\n%s\na b\n$(reboot)\nx;y\n",
             FAKE, geteuid() == 0 ? "--allow-run-as-root\n" : "", outdir, args_file);
    assert_string_equal(text, want);
    /* The files the operator would mount, with its modes. */
    char path[256];
    struct stat st;
    snprintf(path, sizeof path, "%s/hostfile", outdir);
    slurp(path, text, sizeof text);
    assert_string_equal(text, "pi-launcher.pi.ml.svc slots=4\npi-worker-0.pi.ml.svc slots=4\n"
                              "pi-worker-1.pi.ml.svc slots=4\n");
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0444);
    snprintf(path, sizeof path, "%s/discover_hosts.sh", outdir);
    slurp(path, text, sizeof text);
    assert_string_equal(text, "#!/bin/sh\necho pi-launcher.pi.ml.svc\necho pi-worker-0.pi.ml.svc\n"
                              "echo pi-worker-1.pi.ml.svc\n");
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0555);

    /* Environment: operator variables added, the user's rsh args kept. */
    const char *env_args[] = {"--mpijob", JOBS "v2beta1-launcher-worker.yaml", "--output-dir",
                              outdir, "--no-wait", "--mpirun", FAKE, "--", "fake-job", "env",
                              env_file, NULL};
    r = run(env_args, envp);
    assert_int_equal(r->code, 0);
    slurp(env_file, text, sizeof text);
    assert_non_null(strstr(text, "K_MPI_JOB_ROLE=launcher\n"));
    assert_non_null(strstr(text, "OMPI_MCA_orte_keep_fqdn_hostnames=true\n"));
    snprintf(want, sizeof want, "OMPI_MCA_orte_default_hostfile=%s/hostfile\n", outdir);
    assert_non_null(strstr(text, want));
    assert_non_null(strstr(text, "OMPI_MCA_orte_set_default_slots=4\n"));
    assert_non_null(strstr(text, "OMPI_MCA_plm_rsh_args=-p 2222\n"));
    assert_null(strstr(text, "ConnectionAttempts"));

    /* Exit codes pass through. */
    const char *five[] = {"--local", "-np", "1", "--mpirun", FAKE, "--", "fake-job", "exit", "5",
                          NULL};
    r = run(five, NULL);
    assert_int_equal(r->code, 5);
    const char *killed[] = {"--local", "-np", "1", "--mpirun", FAKE, "--", "fake-job", "kill",
                            "KILL", NULL};
    r = run(killed, NULL);
    assert_int_equal(r->code, 137);
    const char *missing[] = {"--local", "-np", "1", "--mpirun", "/nonexistent/mpirun", "--",
                             "x", NULL};
    r = run(missing, NULL);
    assert_int_equal(r->code, 1);
    assert_non_null(strstr(r->err, "ringtrain-launcher: error: mpirun: cannot start "
                                    "\"/nonexistent/mpirun\""));
}

/* A TFJob whose parameter-server list is too long for one environment
 * variable (E2BIG from execve): refused before anything is written, with
 * what is too large, not "cannot start mpirun; install Open MPI". */
static void test_argv_too_large(void **state)
{
    (void)state;
    char job[128], outdir[128];
    snprintf(outdir, sizeof outdir, "%s/huge-out", test_dir);
    write_scratch("huge-tfjob.yaml", "apiVersion: kubeflow.org/v1\nkind: TFJob\nmetadata: {name: "
                  "big}\nspec:\n  tfReplicaSpecs:\n    Worker: {replicas: 1}\n    PS: {replicas: "
                  "30000}\n", job, sizeof job);
    const char *args[] = {"--tfjob", job, "--output-dir", outdir, "--no-wait", "--mpirun", FAKE,
                          "--", "fake-job", "exit", "0", "--variable_update=parameter_server",
                          NULL};
    result_t *r = run(args, NULL);
    print_message("exit %d: %.600s", r->code, r->err);
    assert_int_equal(r->code, 2);
    assert_non_null(strstr(r->err, "ringtrain-launcher: error: " LAUNCH_PS_RANKS_ENV ": "));
    assert_non_null(strstr(r->err, "bytes, over the "));
    assert_null(strstr(r->err, "install Open MPI"));
    assert_int_equal(access(outdir, F_OK), -1); /* nothing written */
    const char *dry[] = {"--tfjob", job, "--dry-run", "--", "w",
                         "--variable_update=parameter_server", NULL};
    r = run(dry, NULL);
    assert_int_equal(r->code, 2);
    assert_non_null(strstr(r->err, LAUNCH_PS_RANKS_ENV ": "));
    unlink(job);
}

/* mpirun's own status above 128 (205 after a worker container was killed)
 * is a status, not a signal; only a signal that really ended mpirun is
 * reported as one. */
static void test_exit_status_words(void **state)
{
    (void)state;
    const char *high[] = {"--local", "-np", "1", "--mpirun", FAKE, "--", "fake-job", "exit", "205",
                          NULL};
    result_t *r = run(high, NULL);
    print_message("exit %d: %s", r->code, r->err);
    assert_int_equal(r->code, 205);
    assert_non_null(strstr(r->err, "ringtrain-launcher: mpirun exited with status 205\n"));
    assert_null(strstr(r->err, "signal"));
    const char *killed[] = {"--local", "-np", "1", "--mpirun", FAKE, "--", "fake-job", "kill",
                            "KILL", NULL};
    r = run(killed, NULL);
    print_message("exit %d: %s", r->code, r->err);
    assert_int_equal(r->code, 137);
    assert_non_null(strstr(r->err, "ringtrain-launcher: mpirun was killed by signal 9 (Killed); "
                                   "exit status 137\n"));
}

/* A signal to the launcher first asks the job to stop: mpirun gets SIGUSR1
 * (which Open MPI's mpirun passes to every rank); with --stop-grace 0 it
 * gets the signal itself at once, as before. */
static void signal_case(int sig, int want_code, bool graceful)
{
    char ready[128], got[140];
    snprintf(ready, sizeof ready, "%s/trap-%d-%d", test_dir, sig, graceful);
    snprintf(got, sizeof got, "%s.%s", ready, graceful ? "usr1" : "term");
    const char *args[] = {"--local", "-np", "1", "--stop-grace", graceful ? "20" : "0",
                          "--mpirun", FAKE, "--", "fake-job", "trap", ready, NULL};
    double t0 = rt_now();
    pid_t pid = start(args, NULL, "sig");
    assert_true(wait_for_file(ready, 10));
    char pid_text[32];
    slurp(ready, pid_text, sizeof pid_text);
    pid_t fake = (pid_t)atoi(pid_text);
    kill(pid, sig);
    result_t r;
    finish(pid, "sig", t0, &r);
    print_message("signal %d: exit %d after %.2f s: %s", sig, r.code, r.seconds, r.err);
    assert_int_equal(r.code, want_code);
    char said[160];
    snprintf(said, sizeof said, "stopped by signal %d (%s); exit status %d", sig,
             graceful ? "the job was asked to stop: SIGUSR1 to mpirun, for every rank"
                      : "forwarded to mpirun",
             want_code);
    assert_non_null(strstr(r.err, said));
    assert_true(process_gone(fake));
    if (sig == SIGTERM || graceful)
        assert_true(wait_for_file(got, 2)); /* what mpirun got */
}

static void test_signals_forwarded(void **state)
{
    (void)state;
    signal_case(SIGTERM, 143, true);
    signal_case(SIGINT, 130, true);
    signal_case(SIGHUP, 129, true);
    signal_case(SIGTERM, 143, false);
}

static void test_kill_grace(void **state)
{
    (void)state;
    /* An mpirun that ignores SIGUSR1 and SIGTERM: after --stop-grace it gets
     * the SIGTERM, after --kill-grace more its whole process group is
     * killed. */
    char ready[128], child_file[140];
    snprintf(ready, sizeof ready, "%s/stubborn", test_dir);
    snprintf(child_file, sizeof child_file, "%s.child", ready);
    const char *args[] = {"--local", "-np", "1", "--stop-grace", "0.3", "--kill-grace", "0.5",
                          "--mpirun", FAKE, "--", "fake-job", "stubborn", ready, NULL};
    double t0 = rt_now();
    pid_t pid = start(args, NULL, "grace");
    assert_true(wait_for_file(ready, 10));
    char text[32];
    slurp(ready, text, sizeof text);
    pid_t fake = (pid_t)atoi(text);
    slurp(child_file, text, sizeof text);
    pid_t child = (pid_t)atoi(text);
    assert_true(fake > 0 && child > 0);
    double t_kill = rt_now();
    kill(pid, SIGTERM);
    result_t r;
    finish(pid, "grace", t0, &r);
    double took = rt_now() - t_kill;
    print_message("stubborn mpirun: exit %d %.2f s after SIGTERM\n", r.code, took);
    assert_int_equal(r.code, 143);
    assert_true(took > 0.7 && took < 3.0);
    usleep(100 * 1000);
    assert_true(process_gone(fake));
    assert_true(process_gone(child));
}

/* Lines of a file (0 when it is missing). */
static int count_lines(const char *path)
{
    char text[4096];
    slurp(path, text, sizeof text);
    int lines = 0;
    for (const char *c = text; *c; c++)
        lines += *c == '\n';
    return lines;
}

/* --max-restarts: a failed job is relaunched; when none is left the
 * launcher exits with the last failure's status, saying so once; bad input
 * (exit 2) is never relaunched; a relaunch that succeeds is exit 0. */
static void test_restarts(void **state)
{
    (void)state;
    char runs[128];
    snprintf(runs, sizeof runs, "%s/runs", test_dir);
    const char *failing[] = {"--local", "-np", "1", "--max-restarts", "2", "--mpirun", FAKE,
                             "--", "fake-job", "count", runs, "137", NULL};
    result_t *r = run(failing, NULL);
    print_message("always failing: exit %d: %s", r->code, r->err);
    assert_int_equal(r->code, 137);
    assert_int_equal(count_lines(runs), 3);
    assert_non_null(strstr(r->err, "ringtrain-launcher: restart 1 of 2: mpirun exited with "
                                   "status 137; relaunched with -np 1 on this machine; resuming "
                                   "from step 0; steps lost unknown (the job showed no step)\n"));
    assert_non_null(strstr(r->err, "ringtrain-launcher: restart 2 of 2: "));
    assert_non_null(strstr(r->err, "ringtrain-launcher: error: no restarts left (--max-restarts "
                                   "2, all used); exit status 137, the last failure's\n"));
    assert_null(strstr(r->err, "restart 3"));

    unlink(runs);
    const char *bad[] = {"--local", "-np", "1", "--max-restarts", "2", "--mpirun", FAKE, "--",
                         "fake-job", "count", runs, "2", NULL};
    r = run(bad, NULL);
    assert_int_equal(r->code, 2);
    assert_int_equal(count_lines(runs), 1);
    assert_non_null(strstr(r->err, "not relaunched: the job reported bad input (exit 2)"));

    unlink(runs);
    const char *once[] = {"--local", "-np", "1", "--max-restarts", "1", "--mpirun", FAKE, "--",
                          "fake-job", "once", runs, NULL};
    r = run(once, NULL);
    print_message("failing once: exit %d: %s", r->code, r->err);
    assert_int_equal(r->code, 0);
    assert_non_null(strstr(r->err, "restart 1 of 1: mpirun exited with status 137"));
    /* The job's stdout is passed on as it is. */
    assert_non_null(strstr(r->out, "1\timages/sec: 1.0 +/- 0.0 (jitter = 0.0)\t2.300\n"));

    /* Without --max-restarts nothing is relaunched (as before). */
    unlink(runs);
    const char *plain[] = {"--local", "-np", "1", "--mpirun", FAKE, "--", "fake-job", "count",
                           runs, "137", NULL};
    r = run(plain, NULL);
    assert_int_equal(r->code, 137);
    assert_int_equal(count_lines(runs), 1);
    assert_null(strstr(r->err, "restart"));
}

/* Whether the launcher, spawned with this environment, finds `name` on
 * PATH (posix_spawnp's search: an executable file in a PATH directory). */
static bool on_path(const char *name)
{
    const char *path = getenv("PATH");
    if (path == NULL || path[0] == '\0')
        return false;
    for (const char *dir = path; dir != NULL;) {
        const char *colon = strchr(dir, ':');
        size_t len = colon ? (size_t)(colon - dir) : strlen(dir);
        char file[4096];
        struct stat st;
        snprintf(file, sizeof file, "%.*s/%s", (int)(len ? len : 1), len ? dir : ".", name);
        if (stat(file, &st) == 0 && S_ISREG(st.st_mode) && access(file, X_OK) == 0)
            return true;
        dir = colon ? colon + 1 : NULL;
    }
    return false;
}

static void test_local_real_mpirun(void **state)
{
    (void)state;
    /* Skipped (reported as such), not passed, where there is no mpirun. */
    if (!on_path("mpirun")) {
        print_message("no mpirun on PATH; skipping the real-mpirun case\n");
        skip();
    }
    const char *args[] = {"--local", "-np", "2", "--oversubscribe", "--", "/bin/echo", "hello",
                          "a b", NULL};
    result_t *r = run(args, NULL);
    print_message("exit %d, out: %s, err: %s", r->code, r->out, r->err);
    assert_int_equal(r->code, 0);
    assert_string_equal(r->out, "hello a b\nhello a b\n");
    const char *failing[] = {"--local", "-np", "2", "--oversubscribe", "--", "/bin/false", NULL};
    r = run(failing, NULL);
    assert_int_not_equal(r->code, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_documents_every_flag),
        cmocka_unit_test(test_dry_run_2x8),
        cmocka_unit_test(test_dry_run_pvc_and_mpijob),
        cmocka_unit_test(test_dry_run_v1_host_names),
        cmocka_unit_test(test_dry_run_notes_unused_fields),
        cmocka_unit_test(test_tfjob_dry_run_both_modes),
        cmocka_unit_test(test_tfjob_print_hostfile),
        cmocka_unit_test(test_tfjob_run_env),
        cmocka_unit_test(test_relative_program_made_absolute),
        cmocka_unit_test(test_print_hostfile),
        cmocka_unit_test(test_bad_input_exits_2),
        cmocka_unit_test(test_hostfile_mode),
        cmocka_unit_test(test_input_not_regular_file),
        cmocka_unit_test(test_output_dir_must_be_private),
        cmocka_unit_test(test_readiness_failure_names_hosts),
        cmocka_unit_test(test_run_passes_argv_and_env),
        cmocka_unit_test(test_argv_too_large),
        cmocka_unit_test(test_exit_status_words),
        cmocka_unit_test(test_signals_forwarded),
        cmocka_unit_test(test_kill_grace),
        cmocka_unit_test(test_restarts),
        cmocka_unit_test(test_local_real_mpirun),
    };
    return cmocka_run_group_tests(tests, test_tmpdir_setup, test_tmpdir_teardown);
}
