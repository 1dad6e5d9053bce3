/* ringtrain-launcher: the launcher of an MPIJob. Reads the MPIJob (or the
 * operator's /etc/mpi/hostfile, or a tf-operator TFJob mapped to one MPI
 * job), writes the hostfile and discover_hosts.sh
 * the mpi-operator controller would write, waits for every worker's ssh
 * port, runs mpirun (posix_spawn, no shell) and exits with the job's status.
 * --local runs mpirun on this machine only. Exit codes: the job's own, 2 for
 * bad input, 1 for a launcher failure (workers never came, spawn failed). */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "launcher/launcher.h"

extern char **environ;

#define PROG "ringtrain-launcher"

/* In parts: ISO C bounds one string literal at 4095 characters. */
static const char *const usage_text[] = {
    "usage: " PROG " --mpijob FILE [options] -- PROGRAM [ARGS...]\n"
    "       " PROG " --tfjob FILE [options] -- PROGRAM [ARGS...]\n"
    "       " PROG " [--hostfile FILE] [options] -- PROGRAM [ARGS...]\n"
    "       " PROG " --local -np N [--oversubscribe] [options] -- PROGRAM [ARGS...]\n"
    "\n"
    "Runs PROGRAM on every slot of an MPIJob the way mpi-operator's launcher does:\n"
    "writes the hostfile and discover_hosts.sh the controller would write, waits\n"
    "until every worker resolves and accepts TCP on its ssh port, then runs mpirun\n"
    "(never through a shell), forwards SIGINT/SIGTERM/SIGHUP to it and exits with\n"
    "the job's status (128+signal when a signal ended it). Without --mpijob the\n"
    "operator-written hostfile (/etc/mpi/hostfile) is used as it is.\n"
    "\n"
    "A TFJob (tf-operator) runs as one MPI job on its replicas' pods, named as\n"
    "tf-operator names them (<job>-<type>-<i>.<namespace>.svc): the Chief or Master\n"
    "is rank 0, the Workers follow; the PS replicas come last and are ranks only\n"
    "when PROGRAM's arguments say --variable_update=parameter_server (their ranks\n"
    "are then given to every rank as " LAUNCH_PS_RANKS_ENV "=r,r,...); otherwise they\n"
    "are reported as unused. Evaluators are not part of the training cluster.\n"
    "Run the launcher in the chief's pod (or Worker 0's when there is no chief).\n"
    "\n"
    "Input:\n"
    "  --mpijob FILE            MPIJob YAML: kubeflow.org/v2beta1, v1 or legacy v1alpha1\n"
    "  --tfjob FILE             TFJob YAML: kubeflow.org/v1 or v1beta1 (see above)\n"
    "  --slots-per-worker N     TFJob: ranks per Chief/Master/Worker pod (default 1:\n"
    "                           tf-operator runs one task per pod); PS pods run one\n"
    "                           rank each\n"
    "  --hostfile FILE          existing hostfile to use when no --mpijob is given\n"
    "                           (default " LAUNCH_HOSTFILE_DEFAULT ")\n"
    "  --local                  run on this machine only (no hostfile, no waiting)\n"
    "  --mpi-implementation X   OpenMPI, Intel or MPICH for --hostfile/--local/--tfjob\n"
    "                           (default: from the MPIJob, the hostfile's syntax, or\n"
    "                           OpenMPI)\n"
    "  --cluster-domain D       append .D to every host (e.g. cluster.local)\n"
    "  --gpus-per-node N        v1alpha1 `gpus` sizing: GPUs per node (default 8)\n"
    "  --processing-units-per-node N\n"
    "                           v1alpha1 `processingUnits` sizing (default: --gpus-per-node)\n"
    "  --output-dir DIR         where hostfile and discover_hosts.sh are written\n"
    "                           (default $TMPDIR or /tmp, + /ringtrain-<namespace>-<job>)\n"
    "\n",
    "Readiness:\n"
    "  --ssh-port P             port each worker must accept TCP on (default 22; the\n"
    "                           mpi-operator images use 2222)\n"
    "  --wait-timeout S         seconds to wait for all workers (default 300); at the\n"
    "                           deadline exit 1 naming each missing host and why\n"
    "  --no-wait                do not wait (mpirun retries ssh itself)\n"
    "\n"
    "mpirun:\n"
    "  -np N, -n N, --np N      processes (default: workers x slots, plus the launcher's\n"
    "                           slots with runLauncherAsWorker; --local needs it; a\n"
    "                           TFJob's count is fixed by its replicas)\n"
    "  --oversubscribe          allow more processes than slots (Open MPI)\n"
    "  --bind-to POLICY         Open MPI --bind-to (default none, as Horovod advises for\n"
    "                           multi-threaded ranks; `default` leaves mpirun's choice)\n"
    "  -x NAME[=VALUE], --export NAME[=VALUE]\n"
    "                           also forward this variable to every rank (repeatable;\n"
    "                           PATH, LD_LIBRARY_PATH, NCCL_*, RINGTRAIN_*, OMP_* and\n"
    "                           OPENBLAS_* are forwarded already)\n"
    "  --mpirun-arg ARG         pass ARG to mpirun before PROGRAM (repeatable), e.g.\n"
    "                           --mpirun-arg --mca --mpirun-arg btl_tcp_if_include\n"
    "                           --mpirun-arg eth0\n"
    "  --mpirun PATH            mpirun to run (default: mpirun found in PATH)\n"
    "  --allow-run-as-root      pass --allow-run-as-root to Open MPI's mpirun (done\n"
    "                           automatically when running as root)\n"
    "  --kill-grace S           after forwarding a signal, SIGKILL what is left of\n"
    "                           mpirun's process group after S seconds (default 5)\n"
    "\n"
    "Output:\n"
    "  --dry-run                print the hostfile, discover_hosts.sh, the environment\n"
    "                           added and the exact mpirun argv; write and run nothing\n"
    "  --print-hostfile         print only the hostfile and exit\n"
    "  --print-discover-hosts   print only discover_hosts.sh and exit\n"
    "  -h, --help               this text\n"
    "  --version                print the version\n"
    "\n"
    "Environment given to mpirun when absent (as the operator sets on a launcher):\n"
    "  K_MPI_JOB_ROLE=launcher; Open MPI: OMPI_MCA_orte_keep_fqdn_hostnames=true,\n"
    "  OMPI_MCA_orte_default_hostfile, OMPI_MCA_plm_rsh_args=\"-o ConnectionAttempts=10\",\n"
    "  OMPI_MCA_orte_set_default_slots; Intel MPI: I_MPI_HYDRA_HOST_FILE,\n"
    "  I_MPI_HYDRA_BOOTSTRAP_EXEC_EXTRA_ARGS, I_MPI_PERHOST; MPICH: HYDRA_HOST_FILE,\n"
    "  HYDRA_LAUNCH_EXTRA_ARGS.\n"
    "\n"
    "Exit status: the job's; 2 for bad input; 1 when workers never came or mpirun\n"
    "could not be started.\n",
};

typedef struct {
    const char *mpijob;
    const char *tfjob;
    const char *hostfile_in;
    const char *output_dir;
    const char *cluster_domain;
    const char *mpirun;
    const char *bind_to;
    int mpi_hint;               /* -1: not given */
    bool local;
    bool no_wait;
    bool oversubscribe;
    bool allow_root;
    bool dry_run;
    bool print_hostfile;
    bool print_discover;
    uint64_t np;                /* 0: not given */
    uint32_t gpus_per_node;
    uint32_t pu_per_node;
    uint32_t slots_per_worker;  /* 0: not given */
    uint16_t ssh_port;
    double wait_timeout_s;
    double kill_grace_s;
    const char **exports;
    size_t export_count;
    const char **extra;
    size_t extra_count;
    char **program;
    size_t program_count;
} cli_t;

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return code;
}

static bool valid_env_name(const char *s)
{
    size_t name_bytes = strcspn(s, "=");
    if (name_bytes == 0 || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < name_bytes; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

/* Splits "--opt=value" / "--opt value"; returns the value or NULL when the
 * option does not match. *i is advanced past a separate value. */
static const char *opt_value(int argc, char **argv, int *i, const char *name, int *missing)
{
    size_t name_bytes = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, name_bytes) != 0)
        return NULL;
    if (a[name_bytes] == '=')
        return a + name_bytes + 1;
    if (a[name_bytes] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

static int parse_cli(int argc, char **argv, cli_t *c)
{
    memset(c, 0, sizeof *c);
    c->mpi_hint = -1;
    c->bind_to = "none";
    c->gpus_per_node = LAUNCH_GPUS_PER_NODE_DEFAULT;
    c->ssh_port = 22;
    c->wait_timeout_s = 300;
    c->kill_grace_s = 5;
    c->exports = calloc((size_t)argc + 1, sizeof *c->exports);
    c->extra = calloc((size_t)argc + 1, sizeof *c->extra);
    if (c->exports == NULL || c->extra == NULL)
        return fail(1, "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v;
        int missing = 0;
        uint64_t u = 0;
        if (strcmp(a, "--") == 0) {
            c->program = argv + i + 1;
            c->program_count = (size_t)(argc - i - 1);
            break;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            for (size_t k = 0; k < sizeof usage_text / sizeof usage_text[0]; k++)
                fputs(usage_text[k], stdout);
            return -1;
        } else if (strcmp(a, "--version") == 0) {
            printf(PROG " %s\n", RINGTRAIN_VERSION);
            return -1;
        } else if (strcmp(a, "--local") == 0) {
            c->local = true;
        } else if (strcmp(a, "--no-wait") == 0) {
            c->no_wait = true;
        } else if (strcmp(a, "--oversubscribe") == 0) {
            c->oversubscribe = true;
        } else if (strcmp(a, "--allow-run-as-root") == 0) {
            c->allow_root = true;
        } else if (strcmp(a, "--dry-run") == 0) {
            c->dry_run = true;
        } else if (strcmp(a, "--print-hostfile") == 0) {
            c->print_hostfile = true;
        } else if (strcmp(a, "--print-discover-hosts") == 0) {
            c->print_discover = true;
        } else if ((v = opt_value(argc, argv, &i, "--mpijob", &missing))) {
            c->mpijob = v;
        } else if ((v = opt_value(argc, argv, &i, "--tfjob", &missing))) {
            c->tfjob = v;
        } else if ((v = opt_value(argc, argv, &i, "--slots-per-worker", &missing))) {
            if (rt_parse_u64(v, 1, LAUNCH_SLOTS_MAX, 0, &u) != 0)
                return fail(2, "--slots-per-worker: \"%s\" is not 1..%u; give the ranks to run "
                            "in each Chief/Master/Worker pod", v, LAUNCH_SLOTS_MAX);
            c->slots_per_worker = (uint32_t)u;
        } else if ((v = opt_value(argc, argv, &i, "--hostfile", &missing))) {
            c->hostfile_in = v;
        } else if ((v = opt_value(argc, argv, &i, "--output-dir", &missing))) {
            c->output_dir = v;
        } else if ((v = opt_value(argc, argv, &i, "--cluster-domain", &missing))) {
            c->cluster_domain = v;
        } else if ((v = opt_value(argc, argv, &i, "--mpirun-arg", &missing))) {
            c->extra[c->extra_count++] = v;
        } else if ((v = opt_value(argc, argv, &i, "--mpirun", &missing))) {
            if (v[0] == '\0')
                return fail(2, "--mpirun: empty; give the mpirun to run, e.g. --mpirun "
                            "/usr/bin/mpirun");
            c->mpirun = v;
        } else if ((v = opt_value(argc, argv, &i, "--bind-to", &missing))) {
            if (!launch_is_dns1123_label(v, strlen(v)) && strchr(v, ':') == NULL)
                return fail(2, "--bind-to: \"%s\" is not a binding policy; use none, core, "
                            "socket, hwthread or default", v);
            c->bind_to = strcmp(v, "default") == 0 ? NULL : v;
        } else if ((v = opt_value(argc, argv, &i, "--mpi-implementation", &missing))) {
            launch_mpi_t mpi;
            if (launch_mpi_parse(v, &mpi) != 0)
                return fail(2, "--mpi-implementation: \"%s\" is not supported; use OpenMPI, "
                            "Intel or MPICH", v);
            c->mpi_hint = (int)mpi;
        } else if ((v = opt_value(argc, argv, &i, "--export", &missing)) ||
                   (v = opt_value(argc, argv, &i, "-x", &missing))) {
            if (!valid_env_name(v))
                return fail(2, "-x: \"%s\" is not NAME or NAME=VALUE (letters, digits, '_'); "
                            "fix the variable name", v);
            c->exports[c->export_count++] = v;
        } else if ((v = opt_value(argc, argv, &i, "-np", &missing)) ||
                   (v = opt_value(argc, argv, &i, "--np", &missing)) ||
                   (v = opt_value(argc, argv, &i, "-n", &missing))) {
            if (rt_parse_u64(v, 1, (uint64_t)LAUNCH_REPLICAS_MAX * LAUNCH_SLOTS_MAX, 0, &u) != 0)
                return fail(2, "-np: \"%s\" is not a process count; use 1..%llu", v,
                            (unsigned long long)LAUNCH_REPLICAS_MAX * LAUNCH_SLOTS_MAX);
            c->np = u;
        } else if ((v = opt_value(argc, argv, &i, "--gpus-per-node", &missing))) {
            if (rt_parse_u64(v, 1, LAUNCH_SLOTS_MAX, 0, &u) != 0)
                return fail(2, "--gpus-per-node: \"%s\" is not 1..%u; give the GPUs of one node",
                            v, LAUNCH_SLOTS_MAX);
            c->gpus_per_node = (uint32_t)u;
        } else if ((v = opt_value(argc, argv, &i, "--processing-units-per-node", &missing))) {
            if (rt_parse_u64(v, 1, LAUNCH_SLOTS_MAX, 0, &u) != 0)
                return fail(2, "--processing-units-per-node: \"%s\" is not 1..%u; give the units "
                            "of one node", v, LAUNCH_SLOTS_MAX);
            c->pu_per_node = (uint32_t)u;
        } else if ((v = opt_value(argc, argv, &i, "--ssh-port", &missing))) {
            if (rt_parse_u64(v, 1, 65535, 0, &u) != 0)
                return fail(2, "--ssh-port: \"%s\" is not a port (1..65535); the mpi-operator "
                            "images use 2222", v);
            c->ssh_port = (uint16_t)u;
        } else if ((v = opt_value(argc, argv, &i, "--wait-timeout", &missing))) {
            if (rt_parse_double(v, 0, 86400 * 7, &c->wait_timeout_s) != 0)
                return fail(2, "--wait-timeout: \"%s\" is not 0..604800 seconds", v);
        } else if ((v = opt_value(argc, argv, &i, "--kill-grace", &missing))) {
            if (rt_parse_double(v, 0, 3600, &c->kill_grace_s) != 0)
                return fail(2, "--kill-grace: \"%s\" is not 0..3600 seconds", v);
        } else if (missing) {
            return fail(2, "%s: needs a value; see --help", a);
        } else if (a[0] == '-') {
            return fail(2, "%s: unknown option; see --help (the program and its arguments go "
                        "after --)", a);
        } else {
            /* The program starts at the first word that is not an option. */
            c->program = argv + i;
            c->program_count = (size_t)(argc - i);
            break;
        }
        if (missing)
            return fail(2, "%s: needs a value; see --help", a);
    }
    if (c->local && (c->mpijob || c->hostfile_in || c->tfjob))
        return fail(2, "--local: cannot be combined with --mpijob, --tfjob or --hostfile; "
                    "choose one");
    if (c->tfjob && (c->mpijob || c->hostfile_in))
        return fail(2, "--tfjob: cannot be combined with --mpijob or --hostfile (the TFJob "
                    "defines the hosts); choose one");
    if (c->slots_per_worker && !c->tfjob)
        return fail(2, "--slots-per-worker: only applies with --tfjob (an MPIJob says "
                    "spec.slotsPerWorker); drop it");
    if (c->mpijob && c->hostfile_in)
        return fail(2, "--hostfile: cannot be combined with --mpijob (the MPIJob defines the "
                    "hosts); choose one");
    if (c->mpijob && c->mpi_hint >= 0)
        return fail(2, "--mpi-implementation: the MPIJob's spec.mpiImplementation decides; drop "
                    "the option");
    if (c->local && c->np == 0)
        return fail(2, "--local: needs -np N (the number of processes to start here)");
    bool printing = c->dry_run || c->print_hostfile || c->print_discover;
    if (c->program_count == 0 && !printing)
        return fail(2, "program: missing; put the program and its arguments after --, e.g. "
                    "-- ringtrain-worker --model mlp");
    if (c->program_count > 0 && c->program[0][0] == '-')
        return fail(2, "program: \"%s\" starts with '-'; give the program's path after --",
                    c->program[0]);
    if (c->program_count > 0 && c->program[0][0] == '\0')
        return fail(2, "program: empty; give the program's path after --");
    return 0;
}

static int ensure_output_dir(const char *dir)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return fail(1, "--output-dir: cannot create %s: %s; choose a writable directory", dir,
                    strerror(errno));
    struct stat st;
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return fail(1, "--output-dir: %s is not a directory; choose another", dir);
    if (st.st_uid != geteuid())
        return fail(1, "--output-dir: %s belongs to another user; choose another", dir);
    return 0;
}

/* The error naming every host that never came, and why. */
static void report_missing(const launch_host_status_t *st, size_t count, size_t waited,
                           const cli_t *c)
{
    size_t missing = 0;
    for (size_t i = 0; i < count; i++)
        missing += st[i].state != LAUNCH_HOST_READY;
    fprintf(stderr, PROG ": error: readiness: %zu of %zu hosts not ready on port %u after %g s:",
            missing, waited, (unsigned)c->ssh_port, c->wait_timeout_s);
    size_t shown = 0;
    for (size_t i = 0; i < count; i++) {
        if (st[i].state == LAUNCH_HOST_READY)
            continue;
        if (shown == 20) {
            fprintf(stderr, " and %zu more", missing - shown);
            break;
        }
        const char *why = launch_host_state_text(st[i].state);
        if (st[i].state == LAUNCH_HOST_UNREACHABLE && st[i].detail != 0)
            fprintf(stderr, "%s %s (%s: %s)", shown ? "," : "", st[i].host, why,
                    strerror(st[i].detail));
        else
            fprintf(stderr, "%s %s (%s)", shown ? "," : "", st[i].host, why);
        shown++;
    }
    fprintf(stderr, "; check that those pods are running, resolve in DNS and run sshd on port "
            "%u, or raise --wait-timeout\n", (unsigned)c->ssh_port);
}

static char *read_small_file(const char *path, size_t limit, size_t *bytes, int *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        *err = errno;
        return NULL;
    }
    char *text = malloc(limit + 1);
    if (text == NULL) {
        fclose(f);
        *err = ENOMEM;
        return NULL;
    }
    size_t got = fread(text, 1, limit + 1, f);
    fclose(f);
    if (got > limit) {
        free(text);
        *err = EFBIG;
        return NULL;
    }
    text[got] = '\0';
    *bytes = got;
    return text;
}

/* <output-dir>/hostfile and discover_hosts.sh; the directory defaults to
 * $TMPDIR/ringtrain-<namespace>-<job>. */
static void output_paths(const cli_t *c, const char *namespace_name, const char *name,
                         char *out_dir, char *hostfile_path, char *discover_path, size_t bytes)
{
    if (c->output_dir) {
        snprintf(out_dir, bytes, "%s", c->output_dir);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(out_dir, bytes, "%s/ringtrain-%s-%s", tmp && tmp[0] == '/' ? tmp : "/tmp",
                 namespace_name, name);
    }
    snprintf(hostfile_path, bytes, "%s/hostfile", out_dir);
    snprintf(discover_path, bytes, "%s/discover_hosts.sh", out_dir);
}

/* The TFJob's hosts that get no rank, said once on stderr: parameter servers
 * outside parameter-server mode, and evaluators. */
static void tf_report_idle(const launch_tf_map_t *map)
{
    static const launch_tf_type_t types[] = {LAUNCH_TF_PS, LAUNCH_TF_EVALUATOR};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        size_t count = 0;
        for (size_t i = 0; i < map->idle_count; i++)
            count += map->idle_roles[i].type == types[k];
        if (count == 0)
            continue;
        fprintf(stderr, PROG ": note: spec.tfReplicaSpecs.%s: ", launch_tf_type_name(types[k]));
        if (types[k] == LAUNCH_TF_PS)
            fprintf(stderr, "%zu parameter server%s unused (", count, count == 1 ? "" : "s");
        else
            fprintf(stderr, "%zu evaluator%s not run (", count, count == 1 ? "" : "s");
        size_t shown = 0;
        for (size_t i = 0; i < map->idle_count && shown < 3; i++)
            if (map->idle_roles[i].type == types[k])
                fprintf(stderr, "%s%s", shown++ ? ", " : "", map->idle[i]);
        if (count > shown)
            fprintf(stderr, " and %zu more", count - shown);
        if (types[k] == LAUNCH_TF_PS)
            fprintf(stderr, "): the program does not ask for --variable_update=parameter_server "
                    "and allreduce needs none; those pods stay idle\n");
        else
            fprintf(stderr, "): an evaluator is not part of the training cluster\n");
    }
}

/* The --dry-run lines that say which host holds which ranks, and why the
 * others hold none. */
static void tf_print_ranks(const launch_tfjob_t *job, const launch_tf_map_t *map,
                           const launch_hostlist_t *hosts, int ps_mode, launch_mpi_t mpi)
{
    printf("# TFJob %s/%s (%s):", job->namespace_name, job->name, job->api_version);
    static const launch_tf_type_t shown[] = {LAUNCH_TF_CHIEF, LAUNCH_TF_MASTER, LAUNCH_TF_WORKER,
                                             LAUNCH_TF_PS, LAUNCH_TF_EVALUATOR};
    int first = 1;
    for (size_t k = 0; k < sizeof shown / sizeof shown[0]; k++) {
        if (!job->present[shown[k]])
            continue;
        printf("%s %s %u", first ? "" : ",", launch_tf_type_name(shown[k]),
               job->replicas[shown[k]]);
        first = 0;
    }
    printf("; %s mode: %zu host%s, %s, %llu process%s\n",
           ps_mode ? "parameter_server" : "allreduce", hosts->count,
           hosts->count == 1 ? "" : "s", launch_mpi_name(mpi), (unsigned long long)map->ranks,
           map->ranks == 1 ? "" : "es");
    printf("# ranks: the chief first, then the workers%s\n",
           ps_mode ? ", then the parameter servers" : "");
    for (size_t h = 0; h < hosts->count; h++) {
        const launch_tf_role_t *r = &map->roles[h];
        if (hosts->slots[h] == 1)
            printf("# rank %llu: ", (unsigned long long)r->first_rank);
        else
            printf("# ranks %llu-%llu: ", (unsigned long long)r->first_rank,
                   (unsigned long long)(r->first_rank + hosts->slots[h] - 1));
        printf("%s (%s %u%s)\n", hosts->hosts[h], launch_tf_type_name(r->type), r->index,
               r->type == LAUNCH_TF_PS ? ", parameter server" : "");
    }
    for (size_t i = 0; i < map->idle_count; i++) {
        const launch_tf_role_t *r = &map->idle_roles[i];
        printf("# no rank: %s (%s %u): %s\n", map->idle[i], launch_tf_type_name(r->type),
               r->index,
               r->type == LAUNCH_TF_PS ? "unused without --variable_update=parameter_server"
                                       : "not part of the training cluster");
    }
}

int main(int argc, char **argv)
{
    cli_t c;
    int rc = parse_cli(argc, argv, &c);
    if (rc != 0) {
        free(c.exports);
        free(c.extra);
        return rc < 0 ? 0 : rc;
    }
    int code = 0;
    launch_error_t err = {{0}};
    launch_job_t job;
    launch_tfjob_t tfjob;
    launch_tf_map_t tfmap = {0};
    launch_hostlist_t hosts = {0};
    launch_env_t tf_env = {0}, merged = {0};
    const char **tf_base = NULL; /* environ without the variables the TFJob decides */
    char *ps_ranks = NULL;
    int ps_mode = 0;
    launch_env_t additions = {0}, exports = {0}, env = {0};
    char **mpirun_argv = NULL;
    char *hostfile_text = NULL, *discover_text = NULL, *line = NULL;
    size_t hostfile_bytes = 0, discover_bytes = 0;
    char hostfile_path[4096] = "", discover_path[4096] = "", out_dir[4096] = "";
    bool have_job = false, have_tf = false;
    char *raw_hostfile = NULL; /* an existing hostfile, printed as it is */
    size_t raw_hostfile_bytes = 0;
    launch_mpi_t mpi = c.mpi_hint >= 0 ? (launch_mpi_t)c.mpi_hint : LAUNCH_MPI_OPENMPI;

    if (c.mpijob) {
        launch_legacy_opts_t legacy = {.gpus_per_node = c.gpus_per_node,
                                       .processing_units_per_node = c.pu_per_node};
        if (launch_job_load(c.mpijob, &legacy, &job, &err) != 0 ||
            launch_hostlist_from_job(&job, c.cluster_domain, &hosts, &err) != 0) {
            code = fail(2, "%s", err.text);
            goto done;
        }
        have_job = true;
        mpi = job.mpi;
        output_paths(&c, job.namespace_name, job.name, out_dir, hostfile_path, discover_path,
                     sizeof out_dir);
    } else if (c.tfjob) {
        ps_mode = launch_args_ps_mode((const char *const *)c.program, c.program_count);
        launch_tf_map_opts_t mo = {.ps_mode = ps_mode,
                                   .slots = c.slots_per_worker,
                                   .cluster_domain = c.cluster_domain,
                                   .mpi = mpi};
        if (launch_tfjob_load(c.tfjob, &tfjob, &err) != 0 ||
            launch_tfjob_map(&tfjob, &mo, &tfmap, &err) != 0) {
            code = fail(2, "%s", err.text);
            goto done;
        }
        have_tf = true;
        if (launch_tf_map_ps_ranks(&tfmap, &ps_ranks) != 0) {
            code = fail(1, "out of memory");
            goto done;
        }
        /* The map keeps the roles; hosts takes the host list. */
        hosts = tfmap.hosts;
        memset(&tfmap.hosts, 0, sizeof tfmap.hosts);
        output_paths(&c, tfjob.namespace_name, tfjob.name, out_dir, hostfile_path, discover_path,
                     sizeof out_dir);
    } else if (!c.local) {
        const char *path = c.hostfile_in ? c.hostfile_in : LAUNCH_HOSTFILE_DEFAULT;
        size_t bytes = 0;
        int e = 0;
        char *text = read_small_file(path, (size_t)16 << 20, &bytes, &e);
        if (text == NULL) {
            if (c.hostfile_in == NULL && e == ENOENT)
                code = fail(2, "input: no --mpijob given and %s does not exist; give --mpijob "
                            "FILE, --hostfile FILE or --local -np N", path);
            else
                code = fail(2, "--hostfile: cannot read %s: %s; give a readable hostfile", path,
                            e == EFBIG ? "over 16 MiB" : strerror(e));
            goto done;
        }
        rc = launch_hostlist_parse(text, bytes, c.mpi_hint, path, &hosts, &err);
        raw_hostfile = text;
        raw_hostfile_bytes = bytes;
        if (rc != 0) {
            code = fail(2, "%s", err.text);
            goto done;
        }
        mpi = hosts.mpi;
        snprintf(hostfile_path, sizeof hostfile_path, "%s", path);
    }
    if (c.cluster_domain && !c.mpijob && !c.tfjob) {
        code = fail(2, "--cluster-domain: only applies with --mpijob or --tfjob (an existing "
                    "hostfile is used as it is); drop it");
        goto done;
    }
    if (c.local && mpi != LAUNCH_MPI_OPENMPI && c.oversubscribe) {
        code = fail(2, "--oversubscribe: only Open MPI's mpirun has it; drop it");
        goto done;
    }

    uint64_t slots_total = c.local ? c.np : launch_hostlist_total_slots(&hosts);
    uint64_t np = c.np ? c.np : slots_total;
    if (have_tf && np != slots_total) {
        /* Each replica is one task with its role and rank: fewer processes
         * would drop roles (the parameter servers come last), more have none. */
        code = fail(2, "-np: %llu processes, but the TFJob's replicas make %llu ranks; drop -np "
                    "(or change the replicas or --slots-per-worker)", (unsigned long long)np,
                    (unsigned long long)slots_total);
        goto done;
    }
    if (!c.local && np > slots_total && !c.oversubscribe) {
        code = fail(2, "-np: %llu processes but the hosts have %llu slots; use -np up to %llu or "
                    "add --oversubscribe", (unsigned long long)np,
                    (unsigned long long)slots_total, (unsigned long long)slots_total);
        goto done;
    }

    /* The input is good: say what of the TFJob will not run. */
    if (have_tf)
        tf_report_idle(&tfmap);

    if (raw_hostfile != NULL) {
        hostfile_text = raw_hostfile;
        hostfile_bytes = raw_hostfile_bytes;
        raw_hostfile = NULL;
    } else if (hosts.count > 0) {
        if (launch_hostfile_render(&hosts, &hostfile_text, &hostfile_bytes) != 0) {
            code = fail(1, "out of memory rendering the hostfile");
            goto done;
        }
    }
    if (hosts.count > 0 &&
        launch_discover_hosts_render(&hosts, NULL, &discover_text, &discover_bytes) != 0) {
        code = fail(1, "out of memory rendering discover_hosts.sh");
        goto done;
    }
    if (c.print_hostfile || c.print_discover) {
        if (hosts.count == 0) {
            code = fail(2, "--print-hostfile: --local has no hostfile; use --mpijob or "
                        "--hostfile");
            goto done;
        }
        if (c.print_hostfile)
            fwrite(hostfile_text, 1, hostfile_bytes, stdout);
        if (c.print_discover)
            fwrite(discover_text, 1, discover_bytes, stdout);
        goto done;
    }

    /* What mpirun gets: the operator's launcher variables, the forwarded
     * variables, the argv. */
    uint32_t default_slots = hosts.count > 0 ? hosts.slots[hosts.count - 1] : 1;
    const char *const *base = (const char *const *)environ;
    if (have_tf) {
        /* The TFJob decides which ranks are parameter servers: a value
         * inherited from the launcher's environment is replaced, and in
         * allreduce mode set empty, so no rank mistakes itself for one. */
        size_t count = 0;
        while (environ[count] != NULL)
            count++;
        tf_base = calloc(count + 1, sizeof *tf_base);
        if (tf_base == NULL) {
            code = fail(1, "out of memory building the environment");
            goto done;
        }
        size_t kept = 0;
        for (size_t i = 0; i < count; i++)
            if (strncmp(environ[i], LAUNCH_PS_RANKS_ENV "=", strlen(LAUNCH_PS_RANKS_ENV) + 1) != 0)
                tf_base[kept++] = environ[i];
        base = tf_base;
        default_slots = c.slots_per_worker ? c.slots_per_worker : 1;
        size_t bytes = strlen(LAUNCH_PS_RANKS_ENV) + strlen(ps_ranks) + 2;
        tf_env.vars = calloc(2, sizeof *tf_env.vars);
        char *var = malloc(bytes);
        if (tf_env.vars == NULL || var == NULL) {
            free(var);
            code = fail(1, "out of memory building the environment");
            goto done;
        }
        snprintf(var, bytes, "%s=%s", LAUNCH_PS_RANKS_ENV, ps_ranks);
        tf_env.vars[0] = var;
        tf_env.count = 1;
    }
    if (!c.local &&
        launch_env_additions(base, mpi, hostfile_path, default_slots, &additions) != 0) {
        code = fail(1, "out of memory building the environment");
        goto done;
    }
    if (launch_env_merge(base, &additions, &merged) != 0 ||
        launch_env_merge((const char *const *)merged.vars, &tf_env, &env) != 0 ||
        launch_exports_collect(have_tf ? (const char *const *)env.vars : base, c.exports,
                               c.export_count, &exports) != 0) {
        code = fail(1, "out of memory building the environment");
        goto done;
    }
    /* Remote orteds look a relative program up from their own directory
     * before moving to mpirun's, so "build/x" would not be found on a worker:
     * make a relative path with a '/' absolute (same image, same layout). */
    char program_abs[8192];
    if (!c.local && c.program_count > 0 && c.program[0][0] != '/' &&
        strchr(c.program[0], '/') != NULL) {
        char cwd[4096];
        if (getcwd(cwd, sizeof cwd) != NULL &&
            (size_t)snprintf(program_abs, sizeof program_abs, "%s/%s",
                             strcmp(cwd, "/") == 0 ? "" : cwd, c.program[0]) < sizeof program_abs)
            c.program[0] = program_abs;
    }
    static const char *const placeholder[] = {"PROGRAM", "[ARGS...]"};
    launch_argv_opts_t ao = {
        .mpirun = c.mpirun ? c.mpirun : "mpirun",
        .mpi = mpi,
        .np = np,
        .hostfile = c.local ? NULL : hostfile_path,
        .oversubscribe = c.oversubscribe,
        .allow_run_as_root = c.allow_root || geteuid() == 0,
        .bind_to = c.bind_to,
        .map_by_slot = 1,
        .exports = (const char *const *)exports.vars,
        .export_count = exports.count,
        .extra = c.extra,
        .extra_count = c.extra_count,
        .program = c.program_count ? (const char *const *)c.program : placeholder,
        .program_count = c.program_count ? c.program_count : 2,
    };
    if (launch_argv_build(&ao, &mpirun_argv, NULL) != 0 ||
        launch_argv_format(mpirun_argv, &line) != 0) {
        code = fail(1, "out of memory building the mpirun command");
        goto done;
    }

    if (c.dry_run) {
        printf("# " PROG " --dry-run: nothing is written or run\n");
        if (have_tf)
            tf_print_ranks(&tfjob, &tfmap, &hosts, ps_mode, mpi);
        if (have_job)
            printf("# MPIJob %s/%s (%s): %u worker%s x %u slot%s%s, %s, %llu process%s\n",
                   job.namespace_name, job.name, job.api_version, job.workers,
                   job.workers == 1 ? "" : "s", job.slots, job.slots == 1 ? "" : "s",
                   job.launcher_is_worker ? " + the launcher as a worker" : "",
                   launch_mpi_name(job.mpi), (unsigned long long)np, np == 1 ? "" : "es");
        if (hosts.count > 0) {
            printf("# hostfile %s%s\n", hostfile_path,
                   have_job || have_tf ? "" : " (used as it is)");
            fwrite(hostfile_text, 1, hostfile_bytes, stdout);
        }
        size_t remote = hosts.count - (hosts.first_is_local && hosts.count > 0 ? 1 : 0);
        if (remote > 0 && c.no_wait)
            printf("# readiness: not waited for (--no-wait)\n");
        else if (remote > 0)
            printf("# readiness: wait up to %g s for %zu host%s to accept TCP on port %u\n",
                   c.wait_timeout_s, remote, remote == 1 ? "" : "s", (unsigned)c.ssh_port);
        if (have_job || have_tf) {
            printf("# %s (once the workers are up)\n", discover_path);
            fwrite(discover_text, 1, discover_bytes, stdout);
        }
        if (additions.count > 0) {
            printf("# environment added for mpirun (where not already set)\n");
            for (size_t i = 0; i < additions.count; i++)
                printf("%s\n", additions.vars[i]);
        }
        if (tf_env.count > 0) {
            printf("# environment set for mpirun from the TFJob (replacing any inherited value)\n");
            for (size_t i = 0; i < tf_env.count; i++)
                printf("%s\n", tf_env.vars[i]);
        }
        printf("# argv\n%s\n", line);
        goto done;
    }

    if (have_job || have_tf) {
        if ((code = ensure_output_dir(out_dir)) != 0)
            goto done;
        if (launch_file_write_atomic(hostfile_path, hostfile_text, hostfile_bytes, 0444, &err) !=
            0) {
            code = fail(1, "%s", err.text);
            goto done;
        }
    }

    /* Wait for every remote host (the launcher itself, when it is a worker,
     * is this machine). */
    size_t first = hosts.first_is_local ? 1 : 0;
    size_t remote = hosts.count > first ? hosts.count - first : 0;
    if (remote > 0 && !c.no_wait) {
        launch_host_status_t *st = calloc(remote, sizeof *st);
        if (st == NULL) {
            code = fail(1, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < remote; i++)
            st[i].host = hosts.hosts[first + i];
        launch_wait_opts_t wo;
        launch_wait_opts_default(&wo);
        wo.port = c.ssh_port;
        wo.timeout_s = c.wait_timeout_s;
        fprintf(stderr, PROG ": waiting up to %g s for %zu host%s on port %u\n",
                c.wait_timeout_s, remote, remote == 1 ? "" : "s", (unsigned)c.ssh_port);
        double t0 = rt_now();
        rc = launch_hosts_wait(st, remote, &wo);
        if (rc == RT_ETIMEDOUT) {
            report_missing(st, remote, remote, &c);
            free(st);
            code = 1;
            goto done;
        }
        free(st);
        if (rc != 0) {
            code = fail(1, "readiness: %s", rt_strerror(rc));
            goto done;
        }
        fprintf(stderr, PROG ": all %zu host%s ready after %.1f s\n", remote,
                remote == 1 ? "" : "s", rt_now() - t0);
    }
    if ((have_job || have_tf) &&
        launch_file_write_atomic(discover_path, discover_text, discover_bytes, 0555, &err) != 0) {
        code = fail(1, "%s", err.text);
        goto done;
    }

    fprintf(stderr, PROG ": running: %s\n", line);
    fflush(stdout);
    fflush(stderr);
    int exit_code = 0, forwarded = 0;
    if (launch_run(mpirun_argv, env.vars, c.kill_grace_s, &exit_code, &forwarded) != 0) {
        code = fail(1, "mpirun: cannot start \"%s\": %s; install Open MPI (Debian: openmpi-bin) "
                    "or give its path with --mpirun", mpirun_argv[0], strerror(errno));
        goto done;
    }
    if (forwarded)
        fprintf(stderr, PROG ": stopped by signal %d (forwarded to mpirun); exit status %d\n",
                forwarded, exit_code);
    else if (exit_code > 128)
        fprintf(stderr, PROG ": mpirun exited with status %d (128 + signal %d)\n", exit_code,
                exit_code - 128);
    else if (exit_code != 0)
        fprintf(stderr, PROG ": mpirun exited with status %d\n", exit_code);
    code = exit_code;

done:
    free(line);
    free(ps_ranks);
    free(tf_base);
    launch_env_free(&tf_env);
    launch_env_free(&merged);
    launch_tf_map_free(&tfmap);
    launch_argv_free(mpirun_argv);
    launch_env_free(&env);
    launch_env_free(&exports);
    launch_env_free(&additions);
    free(hostfile_text);
    free(raw_hostfile);
    free(discover_text);
    launch_hostlist_free(&hosts);
    free(c.exports);
    free(c.extra);
    return code;
}
