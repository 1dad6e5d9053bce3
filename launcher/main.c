/* ringtrain-launcher: the launcher of an MPIJob. Reads the MPIJob (or the
 * operator's /etc/mpi/hostfile, or a tf-operator TFJob mapped to one MPI
 * job), writes the hostfile and discover_hosts.sh the mpi-operator
 * controller would write, waits for every worker's ssh port, runs mpirun
 * (fork and execve, no shell; it dies with the launcher) and exits with the
 * job's status.
 * --local runs mpirun on this machine only. Exit codes: the job's own, 2 for
 * bad input, 1 for a launcher failure (workers never came, spawn failed). */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
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
    "writes the hostfile and discover_hosts.sh the v2 controller would write, waits\n"
    "until every worker resolves and accepts TCP on its ssh port, then runs mpirun\n"
    "(never through a shell), forwards SIGINT/SIGTERM/SIGHUP to it and exits with\n"
    "the job's status (128+signal when a signal ended it). Without --mpijob the\n"
    "operator-written hostfile (/etc/mpi/hostfile) is used as it is. The older\n"
    "kubeflow.org/v1 and v1alpha1 MPIJobs get the v2 host names\n"
    "(<pod>.<job>.<namespace>.svc, which ssh can reach), not the bare pod names\n"
    "their controllers wrote for kubectl exec.\n"
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
    "  --kill-grace S           after mpirun got a signal itself, SIGKILL what is left\n"
    "                           of its process group after S seconds (default 5)\n"
    "  --stop-grace S           Open MPI: a SIGINT/SIGTERM/SIGHUP first sends mpirun\n"
    "                           SIGUSR1, which it passes to every rank (ringtrain-worker\n"
    "                           then checkpoints and exits 143); the signal itself\n"
    "                           follows after S seconds, or at a second signal\n"
    "                           (default 20; 0: forward the signal at once)\n"
    "\n",
    "Restarts and elastic world size (as torchrun and horovodrun):\n"
    "  --max-restarts N         relaunch a job that failed (a rank or host died) up to\n"
    "                           N times (default 0), on the hosts that answer then; the\n"
    "                           workers resume from their newest checkpoint. Exit 2\n"
    "                           (bad input) is never relaunched\n"
    "  --min-np N, --max-np N   a relaunch may run on fewer or more processes, within\n"
    "                           these bounds (defaults: -np); with --max-np above the\n"
    "                           processes running, hosts that answer again are looked\n"
    "                           for, and the job is stopped with a checkpoint (SIGUSR1)\n"
    "                           and relaunched on them\n"
    "  --discovery-interval S   how often to look for those hosts (default 10)\n"
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
    bool ssh_port_given;        /* --ssh-port, not the default */
    double wait_timeout_s;
    double kill_grace_s;
    double stop_grace_s;
    uint64_t max_restarts;
    uint64_t min_np, max_np;    /* 0: not given */
    double discovery_interval_s;
    const char **exports;
    size_t export_count;
    const char **extra;
    size_t extra_count;
    char **program;
    size_t program_count;
} cli_t;

/* One line on stderr: "ringtrain-launcher: <what>: <message>". */
static void say(const char *what, const char *fmt, va_list ap)
{
    fprintf(stderr, PROG ": %s: ", what);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
}

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say("error", fmt, ap);
    va_end(ap);
    return code;
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say("note", fmt, ap);
    va_end(ap);
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

/* parse_*_option: NOT_MINE when argv[*i] is not one of theirs. */
#define NOT_MINE (-2)

/* Options without a value. */
static int parse_flag_option(const char *a, cli_t *c)
{
    static const struct {
        const char *name;
        size_t offset; /* of its bool in cli_t */
    } flags[] = {
        {"--local", offsetof(cli_t, local)},
        {"--no-wait", offsetof(cli_t, no_wait)},
        {"--oversubscribe", offsetof(cli_t, oversubscribe)},
        {"--allow-run-as-root", offsetof(cli_t, allow_root)},
        {"--dry-run", offsetof(cli_t, dry_run)},
        {"--print-hostfile", offsetof(cli_t, print_hostfile)},
        {"--print-discover-hosts", offsetof(cli_t, print_discover)},
    };
    for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++) {
        if (strcmp(a, flags[k].name) == 0) {
            *(bool *)((char *)c + flags[k].offset) = true;
            return 0;
        }
    }
    return NOT_MINE;
}

/* Options whose value is a path, a name or a word ("--opt v" or
 * "--opt=v"). *missing is set when one of them has no value. */
static int parse_text_option(int argc, char **argv, int *i, cli_t *c, int *missing)
{
    const char *v;
    if ((v = opt_value(argc, argv, i, "--mpijob", missing))) {
        c->mpijob = v;
    } else if ((v = opt_value(argc, argv, i, "--tfjob", missing))) {
        c->tfjob = v;
    } else if ((v = opt_value(argc, argv, i, "--hostfile", missing))) {
        c->hostfile_in = v;
    } else if ((v = opt_value(argc, argv, i, "--output-dir", missing))) {
        c->output_dir = v;
    } else if ((v = opt_value(argc, argv, i, "--cluster-domain", missing))) {
        c->cluster_domain = v;
    } else if ((v = opt_value(argc, argv, i, "--mpirun-arg", missing))) {
        c->extra[c->extra_count++] = v;
    } else if ((v = opt_value(argc, argv, i, "--mpirun", missing))) {
        if (v[0] == '\0')
            return fail(2, "--mpirun: empty; give the mpirun to run, e.g. --mpirun "
                        "/usr/bin/mpirun");
        c->mpirun = v;
    } else if ((v = opt_value(argc, argv, i, "--bind-to", missing))) {
        if (!launch_is_dns1123_label(v, strlen(v)) && strchr(v, ':') == NULL)
            return fail(2, "--bind-to: \"%s\" is not a binding policy; use none, core, "
                        "socket, hwthread or default", v);
        c->bind_to = strcmp(v, "default") == 0 ? NULL : v;
    } else if ((v = opt_value(argc, argv, i, "--mpi-implementation", missing))) {
        launch_mpi_t mpi;
        if (launch_mpi_parse(v, &mpi) != 0)
            return fail(2, "--mpi-implementation: \"%s\" is not supported; use OpenMPI, "
                        "Intel or MPICH", v);
        c->mpi_hint = (int)mpi;
    } else if ((v = opt_value(argc, argv, i, "--export", missing)) ||
               (v = opt_value(argc, argv, i, "-x", missing))) {
        if (!valid_env_name(v))
            return fail(2, "-x: \"%s\" is not NAME or NAME=VALUE (letters, digits, '_'); "
                        "fix the variable name", v);
        c->exports[c->export_count++] = v;
    } else {
        return NOT_MINE;
    }
    return 0;
}

/* Restarts and elastic bounds: numbers, each checked against its range. */
static int parse_elastic_option(int argc, char **argv, int *i, cli_t *c, int *missing)
{
    const char *v;
    const uint64_t most = (uint64_t)LAUNCH_REPLICAS_MAX * LAUNCH_SLOTS_MAX;
    if ((v = opt_value(argc, argv, i, "--max-restarts", missing))) {
        if (rt_parse_u64(v, 0, 1000, 0, &c->max_restarts) != 0)
            return fail(2, "--max-restarts: \"%s\" is not 0..1000; give how many times a "
                        "failed job may be relaunched (0: never)", v);
    } else if ((v = opt_value(argc, argv, i, "--min-np", missing))) {
        if (rt_parse_u64(v, 1, most, 0, &c->min_np) != 0)
            return fail(2, "--min-np: \"%s\" is not a process count; use 1..%llu", v,
                        (unsigned long long)most);
    } else if ((v = opt_value(argc, argv, i, "--max-np", missing))) {
        if (rt_parse_u64(v, 1, most, 0, &c->max_np) != 0)
            return fail(2, "--max-np: \"%s\" is not a process count; use 1..%llu", v,
                        (unsigned long long)most);
    } else if ((v = opt_value(argc, argv, i, "--discovery-interval", missing))) {
        if (rt_parse_double(v, 0.1, 3600, &c->discovery_interval_s) != 0)
            return fail(2, "--discovery-interval: \"%s\" is not 0.1..3600 seconds", v);
    } else if ((v = opt_value(argc, argv, i, "--stop-grace", missing))) {
        if (rt_parse_double(v, 0, 3600, &c->stop_grace_s) != 0)
            return fail(2, "--stop-grace: \"%s\" is not 0..3600 seconds", v);
    } else {
        return NOT_MINE;
    }
    return 0;
}

/* Options whose value is a number, each checked against its range. */
static int parse_number_option(int argc, char **argv, int *i, cli_t *c, int *missing)
{
    const char *v;
    uint64_t u = 0;
    if ((v = opt_value(argc, argv, i, "--slots-per-worker", missing))) {
        if (rt_parse_u64(v, 1, LAUNCH_SLOTS_MAX, 0, &u) != 0)
            return fail(2, "--slots-per-worker: \"%s\" is not 1..%u; give the ranks to run "
                        "in each Chief/Master/Worker pod", v, LAUNCH_SLOTS_MAX);
        c->slots_per_worker = (uint32_t)u;
    } else if ((v = opt_value(argc, argv, i, "-np", missing)) ||
               (v = opt_value(argc, argv, i, "--np", missing)) ||
               (v = opt_value(argc, argv, i, "-n", missing))) {
        if (rt_parse_u64(v, 1, (uint64_t)LAUNCH_REPLICAS_MAX * LAUNCH_SLOTS_MAX, 0, &u) != 0)
            return fail(2, "-np: \"%s\" is not a process count; use 1..%llu", v,
                        (unsigned long long)LAUNCH_REPLICAS_MAX * LAUNCH_SLOTS_MAX);
        c->np = u;
    } else if ((v = opt_value(argc, argv, i, "--gpus-per-node", missing))) {
        if (rt_parse_u64(v, 1, LAUNCH_SLOTS_MAX, 0, &u) != 0)
            return fail(2, "--gpus-per-node: \"%s\" is not 1..%u; give the GPUs of one node",
                        v, LAUNCH_SLOTS_MAX);
        c->gpus_per_node = (uint32_t)u;
    } else if ((v = opt_value(argc, argv, i, "--processing-units-per-node", missing))) {
        if (rt_parse_u64(v, 1, LAUNCH_SLOTS_MAX, 0, &u) != 0)
            return fail(2, "--processing-units-per-node: \"%s\" is not 1..%u; give the units "
                        "of one node", v, LAUNCH_SLOTS_MAX);
        c->pu_per_node = (uint32_t)u;
    } else if ((v = opt_value(argc, argv, i, "--ssh-port", missing))) {
        if (rt_parse_u64(v, 1, 65535, 0, &u) != 0)
            return fail(2, "--ssh-port: \"%s\" is not a port (1..65535); the mpi-operator "
                        "images use 2222", v);
        c->ssh_port = (uint16_t)u;
        c->ssh_port_given = true;
    } else if ((v = opt_value(argc, argv, i, "--wait-timeout", missing))) {
        if (rt_parse_double(v, 0, 86400 * 7, &c->wait_timeout_s) != 0)
            return fail(2, "--wait-timeout: \"%s\" is not 0..604800 seconds", v);
    } else if ((v = opt_value(argc, argv, i, "--kill-grace", missing))) {
        if (rt_parse_double(v, 0, 3600, &c->kill_grace_s) != 0)
            return fail(2, "--kill-grace: \"%s\" is not 0..3600 seconds", v);
    } else {
        return parse_elastic_option(argc, argv, i, c, missing);
    }
    return 0;
}

/* Options that cannot go together, and what every run needs. */
static int check_cli(const cli_t *c)
{
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

/* Returns 0 to go on, -1 when --help or --version was printed, or the exit
 * code of an error it printed. */
static int parse_cli(int argc, char **argv, cli_t *c)
{
    memset(c, 0, sizeof *c);
    c->mpi_hint = -1;
    c->bind_to = "none";
    c->gpus_per_node = LAUNCH_GPUS_PER_NODE_DEFAULT;
    c->ssh_port = 22;
    c->wait_timeout_s = 300;
    c->kill_grace_s = 5;
    c->stop_grace_s = 20;
    c->discovery_interval_s = 10;
    c->exports = calloc((size_t)argc + 1, sizeof *c->exports);
    c->extra = calloc((size_t)argc + 1, sizeof *c->extra);
    if (c->exports == NULL || c->extra == NULL)
        return fail(1, "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int missing = 0, rc;
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
        }
        if ((rc = parse_flag_option(a, c)) == NOT_MINE &&
            (rc = parse_text_option(argc, argv, &i, c, &missing)) == NOT_MINE)
            rc = parse_number_option(argc, argv, &i, c, &missing);
        if (missing)
            return fail(2, "%s: needs a value; see --help", a);
        if (rc != NOT_MINE) {
            if (rc != 0)
                return rc;
            continue;
        }
        if (a[0] == '-')
            return fail(2, "%s: unknown option; see --help (the program and its arguments go "
                        "after --)", a);
        /* The program starts at the first word that is not an option. */
        c->program = argv + i;
        c->program_count = (size_t)(argc - i);
        break;
    }
    return check_cli(c);
}

/* The directory that holds dir ("/" for "/x", "." for "x"), trailing
 * slashes ignored. */
static void parent_dir(const char *dir, char *parent, size_t bytes)
{
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        len--;
    while (len > 0 && dir[len - 1] != '/')
        len--;
    while (len > 1 && dir[len - 1] == '/')
        len--;
    if (len == 0)
        snprintf(parent, bytes, ".");
    else
        snprintf(parent, bytes, "%.*s", (int)len, dir);
}

/* The work directory holds the hostfile mpirun reads and discover_hosts.sh
 * that Horovod runs, as root in a launcher pod, so only we may write there.
 * Group- or world-writable is refused even with the sticky bit: it keeps
 * others from replacing our files but not from planting names beside them
 * before we write, and a work directory has no reason to be shared. Its
 * parent must not let others rename it away and put their own in its place
 * while the job waits for its workers: not writable by others, or sticky
 * (as /tmp is). */
static int ensure_output_dir(const char *dir)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return fail(1, "--output-dir: cannot create %s: %s; choose a writable directory", dir,
                    strerror(errno));
    struct stat st;
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return fail(2, "--output-dir: %s is not a directory; choose another", dir);
    if (st.st_uid != geteuid())
        return fail(2, "--output-dir: %s belongs to another user; choose another", dir);
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return fail(2, "--output-dir: %s is writable by %s (mode %04o), so another user could "
                    "plant or replace the hostfile or discover_hosts.sh; run chmod go-w %s, or choose a "
                    "directory only you can write", dir,
                    st.st_mode & S_IWOTH ? "others" : "its group",
                    (unsigned)(st.st_mode & 07777), dir);
    char parent[4096];
    parent_dir(dir, parent, sizeof parent);
    if (stat(parent, &st) == 0 && (st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX))
        return fail(2, "--output-dir: %s: its parent %s is writable by group or others and not sticky "
                    "(mode %04o), so another user could put their own directory in its place; "
                    "run chmod go-w %s (or chmod +t), or choose another directory", dir, parent,
                    (unsigned)(st.st_mode & 07777), parent);
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

/* horovodrun's elastic bounds (--min-np N, --max-np=N) among the program's
 * arguments. */
static bool args_have_elastic_bounds(char *const *args, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const char *a = args[i];
        a += a[0] == '-' && a[1] == '-' ? 2 : a[0] == '-' ? 1 : 0;
        if (a == args[i])
            continue;
        size_t name = strcspn(a, "=");
        if (name == 6 && (strncmp(a, "min-np", 6) == 0 || strncmp(a, "max-np", 6) == 0))
            return true;
    }
    return false;
}

/* Everything the launcher works out from the input before it writes or runs
 * anything: the hosts, the files' text, the environment and the argv. */
typedef struct {
    launch_job_t job;
    launch_tfjob_t tfjob;
    launch_tf_map_t tfmap;
    launch_hostlist_t hosts;
    bool have_job, have_tf;
    int ps_mode;
    char *ps_ranks;
    launch_mpi_t mpi;
    uint64_t np;                /* of the (next) launch */
    uint64_t min_np, max_np;    /* elastic bounds (both np when not given) */
    char out_dir[4096], hostfile_path[4096], discover_path[4096];
    char *hostfile_text, *discover_text;
    size_t hostfile_bytes, discover_bytes;
    const char **tf_base; /* environ without the variables the TFJob decides */
    launch_env_t tf_env, merged, additions, exports, env;
    char **mpirun_argv;
    char *line; /* the argv as one shell-quoted line */
    char program_abs[8192];
} plan_t;

static void plan_free(plan_t *p)
{
    free(p->line);
    free(p->ps_ranks);
    free(p->tf_base);
    launch_env_free(&p->tf_env);
    launch_env_free(&p->merged);
    launch_tf_map_free(&p->tfmap);
    launch_argv_free(p->mpirun_argv);
    launch_env_free(&p->env);
    launch_env_free(&p->exports);
    launch_env_free(&p->additions);
    free(p->hostfile_text);
    free(p->discover_text);
    launch_hostlist_free(&p->hosts);
}

static int load_mpijob(const cli_t *c, plan_t *p)
{
    launch_error_t err = {{0}};
    launch_legacy_opts_t legacy = {.gpus_per_node = c->gpus_per_node,
                                   .processing_units_per_node = c->pu_per_node};
    if (launch_job_load(c->mpijob, &legacy, &p->job, &err) != 0 ||
        launch_hostlist_from_job(&p->job, c->cluster_domain, &p->hosts, &err) != 0)
        return fail(2, "%s", err.text);
    p->have_job = true;
    p->mpi = p->job.mpi;
    output_paths(c, p->job.namespace_name, p->job.name, p->out_dir, p->hostfile_path,
                 p->discover_path, sizeof p->out_dir);
    return 0;
}

static int load_tfjob(const cli_t *c, plan_t *p)
{
    launch_error_t err = {{0}};
    p->ps_mode = launch_args_ps_mode((const char *const *)c->program, c->program_count);
    launch_tf_map_opts_t mo = {.ps_mode = p->ps_mode,
                               .slots = c->slots_per_worker,
                               .cluster_domain = c->cluster_domain,
                               .mpi = p->mpi};
    if (launch_tfjob_load(c->tfjob, &p->tfjob, &err) != 0 ||
        launch_tfjob_map(&p->tfjob, &mo, &p->tfmap, &err) != 0)
        return fail(2, "%s", err.text);
    p->have_tf = true;
    if (launch_tf_map_ps_ranks(&p->tfmap, &p->ps_ranks) != 0)
        return fail(1, "out of memory");
    /* The map keeps the roles; hosts takes the host list. */
    p->hosts = p->tfmap.hosts;
    memset(&p->tfmap.hosts, 0, sizeof p->tfmap.hosts);
    output_paths(c, p->tfjob.namespace_name, p->tfjob.name, p->out_dir, p->hostfile_path,
                 p->discover_path, sizeof p->out_dir);
    return 0;
}

/* An existing hostfile (the operator's /etc/mpi/hostfile by default), used
 * as it is: its text becomes the hostfile text. */
static int load_hostfile(const cli_t *c, plan_t *p)
{
    launch_error_t err = {{0}};
    const char *path = c->hostfile_in ? c->hostfile_in : LAUNCH_HOSTFILE_DEFAULT;
    int rc = launch_hostlist_load(path, c->mpi_hint, &p->hosts, &p->hostfile_text,
                                  &p->hostfile_bytes, &err);
    if (rc == RT_ENOENT && c->hostfile_in == NULL)
        return fail(2, "input: no --mpijob given and %s does not exist; give --mpijob "
                    "FILE, --hostfile FILE or --local -np N", path);
    if (rc != 0)
        return fail(2, "%s", err.text);
    p->mpi = p->hosts.mpi;
    snprintf(p->hostfile_path, sizeof p->hostfile_path, "%s", path);
    return 0;
}

/* What the launcher reads but leaves to the operator, and elastic bounds it
 * does not act on: one note each, so nobody expects them to work here. */
static void report_unused(const cli_t *c, const plan_t *p)
{
    const launch_job_t *job = &p->job;
    /* Each value was checked: an absolute printable path, or one word of
     * the field's enum. */
    if (p->have_job && job->ssh_auth_mount_path_set)
        note("spec.sshAuthMountPath: %s is not used: ssh runs with the keys of the user the "
             "launcher runs as (~/.ssh); mount the job's ssh Secret there",
             job->ssh_auth_mount_path);
    if (p->have_job && job->clean_pod_policy[0])
        note("%s: %s is the operator's: ringtrain-launcher deletes no pods; the operator "
             "cleans up after the launcher exits",
             job->clean_pod_policy_in_spec ? "spec.cleanPodPolicy"
                                           : "spec.runPolicy.cleanPodPolicy",
             job->clean_pod_policy);
    if (p->have_job && job->launcher_creation_policy[0])
        note("spec.launcherCreationPolicy: %s is the operator's: ringtrain-launcher waits for "
             "the workers itself (DNS, then the ssh port, up to --wait-timeout)",
             job->launcher_creation_policy);
    if (args_have_elastic_bounds(c->program, c->program_count))
        note("--min-np/--max-np in the program's arguments: they reach the program as they "
             "are; ringtrain-launcher starts mpirun with -np %llu and resizes the job only by "
             "its own --min-np/--max-np (before --)", (unsigned long long)p->np);
}

static int load_input(const cli_t *c, plan_t *p)
{
    if (c->mpijob)
        return load_mpijob(c, p);
    if (c->tfjob)
        return load_tfjob(c, p);
    if (!c->local)
        return load_hostfile(c, p);
    return 0;
}

/* The elastic bounds: each relaunch runs min_np..max_np processes. Without
 * them a relaunch needs the same count; --min-np alone lets the job grow
 * back to every slot. The first launch takes at most max_np. */
static int check_bounds(const cli_t *c, plan_t *p, uint64_t slots_total)
{
    if (c->min_np && c->max_np && c->min_np > c->max_np)
        return fail(2, "--min-np %llu is larger than --max-np %llu; give --min-np <= --max-np",
                    (unsigned long long)c->min_np, (unsigned long long)c->max_np);
    if ((c->min_np || c->max_np) && (p->have_tf || c->local))
        return fail(2, "--%s-np: %s; drop --min-np and --max-np", c->min_np ? "min" : "max",
                    p->have_tf ? "a TFJob's ranks are fixed by its replicas"
                               : "--local runs -np processes on this machine, which does not "
                                 "come and go");
    if (!c->local && !c->oversubscribe && c->min_np > slots_total)
        return fail(2, "--min-np: %llu processes but the hosts have %llu slots; lower it or add "
                    "--oversubscribe", (unsigned long long)c->min_np,
                    (unsigned long long)slots_total);
    p->max_np = c->max_np ? c->max_np : c->min_np && slots_total > p->np ? slots_total : p->np;
    if (!c->np && p->np > p->max_np)
        p->np = p->max_np;
    p->min_np = c->min_np ? c->min_np : p->np;
    if (p->np < p->min_np || p->np > p->max_np)
        return fail(2, "-np: %llu processes is outside --min-np %llu .. --max-np %llu; give -np "
                    "within the bounds", (unsigned long long)p->np,
                    (unsigned long long)p->min_np, (unsigned long long)p->max_np);
    return 0;
}

/* Options that contradict the input, and the process count. */
static int check_counts(const cli_t *c, plan_t *p)
{
    if (c->cluster_domain && !c->mpijob && !c->tfjob)
        return fail(2, "--cluster-domain: only applies with --mpijob or --tfjob (an existing "
                    "hostfile is used as it is); drop it");
    if (c->local && p->mpi != LAUNCH_MPI_OPENMPI && c->oversubscribe)
        return fail(2, "--oversubscribe: only Open MPI's mpirun has it; drop it");
    uint64_t slots_total = c->local ? c->np : launch_hostlist_total_slots(&p->hosts);
    p->np = c->np ? c->np : slots_total;
    if (p->have_tf && p->np != slots_total)
        /* Each replica is one task with its role and rank: fewer processes
         * would drop roles (the parameter servers come last), more have none. */
        return fail(2, "-np: %llu processes, but the TFJob's replicas make %llu ranks; drop -np "
                    "(or change the replicas or --slots-per-worker)", (unsigned long long)p->np,
                    (unsigned long long)slots_total);
    if (!c->local && p->np > slots_total && !c->oversubscribe)
        return fail(2, "-np: %llu processes but the hosts have %llu slots; use -np up to %llu or "
                    "add --oversubscribe", (unsigned long long)p->np,
                    (unsigned long long)slots_total, (unsigned long long)slots_total);
    return check_bounds(c, p, slots_total);
}

/* The hostfile and discover_hosts.sh, as text (an existing hostfile already
 * is). */
static int render_files(plan_t *p)
{
    if (p->hostfile_text == NULL && p->hosts.count > 0 &&
        launch_hostfile_render(&p->hosts, &p->hostfile_text, &p->hostfile_bytes) != 0)
        return fail(1, "out of memory rendering the hostfile");
    if (p->hosts.count > 0 &&
        launch_discover_hosts_render(&p->hosts, NULL, &p->discover_text, &p->discover_bytes) != 0)
        return fail(1, "out of memory rendering discover_hosts.sh");
    return 0;
}

/* --print-hostfile, --print-discover-hosts. */
static int print_files(const cli_t *c, const plan_t *p)
{
    if (p->hosts.count == 0)
        return fail(2, "--print-hostfile: --local has no hostfile; use --mpijob or --hostfile");
    if (c->print_hostfile)
        fwrite(p->hostfile_text, 1, p->hostfile_bytes, stdout);
    if (c->print_discover)
        fwrite(p->discover_text, 1, p->discover_bytes, stdout);
    return 0;
}

/* The TFJob decides which ranks are parameter servers: a value inherited
 * from the launcher's environment is replaced, and in allreduce mode set
 * empty, so no rank mistakes itself for one. */
static int tf_environment(plan_t *p)
{
    size_t count = 0;
    while (environ[count] != NULL)
        count++;
    p->tf_base = calloc(count + 1, sizeof *p->tf_base);
    if (p->tf_base == NULL)
        return fail(1, "out of memory building the environment");
    size_t kept = 0;
    for (size_t i = 0; i < count; i++)
        if (strncmp(environ[i], LAUNCH_PS_RANKS_ENV "=", strlen(LAUNCH_PS_RANKS_ENV) + 1) != 0)
            p->tf_base[kept++] = environ[i];
    size_t bytes = strlen(LAUNCH_PS_RANKS_ENV) + strlen(p->ps_ranks) + 2;
    p->tf_env.vars = calloc(2, sizeof *p->tf_env.vars);
    char *var = malloc(bytes);
    if (p->tf_env.vars == NULL || var == NULL) {
        free(var);
        return fail(1, "out of memory building the environment");
    }
    snprintf(var, bytes, "%s=%s", LAUNCH_PS_RANKS_ENV, p->ps_ranks);
    p->tf_env.vars[0] = var;
    p->tf_env.count = 1;
    return 0;
}

/* What mpirun gets: the operator's launcher variables where not set, the
 * TFJob's variables, and the names forwarded to every rank with -x. */
static int build_environment(const cli_t *c, plan_t *p)
{
    uint32_t default_slots = p->hosts.count > 0 ? p->hosts.slots[p->hosts.count - 1] : 1;
    const char *const *base = (const char *const *)environ;
    if (p->have_tf) {
        int code = tf_environment(p);
        if (code != 0)
            return code;
        base = p->tf_base;
        default_slots = c->slots_per_worker ? c->slots_per_worker : 1;
    }
    if (!c->local &&
        launch_env_additions(base, p->mpi, p->hostfile_path, default_slots, &p->additions) != 0)
        return fail(1, "out of memory building the environment");
    if (launch_env_merge(base, &p->additions, &p->merged) != 0 ||
        launch_env_merge((const char *const *)p->merged.vars, &p->tf_env, &p->env) != 0 ||
        launch_exports_collect(p->have_tf ? (const char *const *)p->env.vars : base, c->exports,
                               c->export_count, &p->exports) != 0)
        return fail(1, "out of memory building the environment");
    return 0;
}

/* Remote orteds look a relative program up from their own directory before
 * moving to mpirun's, so "build/x" would not be found on a worker: make a
 * relative path with a '/' absolute (same image, same layout). */
static void absolute_program(cli_t *c, plan_t *p)
{
    if (c->local || c->program_count == 0 || c->program[0][0] == '/' ||
        strchr(c->program[0], '/') == NULL)
        return;
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd) != NULL &&
        (size_t)snprintf(p->program_abs, sizeof p->program_abs, "%s/%s",
                         strcmp(cwd, "/") == 0 ? "" : cwd, c->program[0]) <
            sizeof p->program_abs)
        c->program[0] = p->program_abs;
}

static int build_argv(cli_t *c, plan_t *p)
{
    absolute_program(c, p);
    static const char *const placeholder[] = {"PROGRAM", "[ARGS...]"};
    launch_argv_opts_t ao = {
        .mpirun = c->mpirun ? c->mpirun : "mpirun",
        .mpi = p->mpi,
        .np = p->np,
        .hostfile = c->local ? NULL : p->hostfile_path,
        .oversubscribe = c->oversubscribe,
        .allow_run_as_root = c->allow_root || geteuid() == 0,
        .bind_to = c->bind_to,
        .map_by_slot = 1,
        .exports = (const char *const *)p->exports.vars,
        .export_count = p->exports.count,
        .extra = c->extra,
        .extra_count = c->extra_count,
        .program = c->program_count ? (const char *const *)c->program : placeholder,
        .program_count = c->program_count ? c->program_count : 2,
    };
    if (launch_argv_build(&ao, &p->mpirun_argv, NULL) != 0 ||
        launch_argv_format(p->mpirun_argv, &p->line) != 0)
        return fail(1, "out of memory building the mpirun command");
    return 0;
}

static void print_env_section(const char *title, const launch_env_t *env)
{
    if (env->count == 0)
        return;
    printf("# %s\n", title);
    for (size_t i = 0; i < env->count; i++)
        printf("%s\n", env->vars[i]);
}

static int print_dry_run(const cli_t *c, const plan_t *p)
{
    const launch_job_t *job = &p->job;
    printf("# " PROG " --dry-run: nothing is written or run\n");
    if (p->have_tf)
        tf_print_ranks(&p->tfjob, &p->tfmap, &p->hosts, p->ps_mode, p->mpi);
    if (p->have_job)
        printf("# MPIJob %s/%s (%s): %u worker%s x %u slot%s%s, %s, %llu process%s\n",
               job->namespace_name, job->name, job->api_version, job->workers,
               job->workers == 1 ? "" : "s", job->slots, job->slots == 1 ? "" : "s",
               job->launcher_gpu         ? " + the launcher (it requests a GPU, so the v1 "
                                           "controller lists it)"
               : job->launcher_is_worker ? " + the launcher as a worker"
                                         : "",
               launch_mpi_name(job->mpi), (unsigned long long)p->np, p->np == 1 ? "" : "es");
    if (p->have_job && strcmp(job->api_version, "kubeflow.org/v2beta1") != 0)
        printf("# hosts: named as the v2 controller names them (<pod>.<job>.<namespace>.svc, "
               "which ssh can reach), not the bare pod names the %s controller wrote for "
               "kubectl exec\n", strrchr(job->api_version, '/') + 1);
    if (p->hosts.count > 0) {
        printf("# hostfile %s%s\n", p->hostfile_path,
               p->have_job || p->have_tf ? "" : " (used as it is)");
        fwrite(p->hostfile_text, 1, p->hostfile_bytes, stdout);
    }
    size_t remote = p->hosts.count - (p->hosts.first_is_local && p->hosts.count > 0 ? 1 : 0);
    if (remote > 0 && c->no_wait)
        printf("# readiness: not waited for (--no-wait)\n");
    else if (remote > 0)
        printf("# readiness: wait up to %g s for %zu host%s to accept TCP on port %u (%s)\n",
               c->wait_timeout_s, remote, remote == 1 ? "" : "s", (unsigned)c->ssh_port,
               c->ssh_port_given ? "--ssh-port"
                                 : "the default; mpi-operator images listen on 2222: give "
                                   "--ssh-port 2222");
    if (p->have_job || p->have_tf) {
        printf("# %s (once the workers are up)\n", p->discover_path);
        fwrite(p->discover_text, 1, p->discover_bytes, stdout);
    }
    print_env_section("environment added for mpirun (where not already set)", &p->additions);
    print_env_section("environment set for mpirun from the TFJob (replacing any inherited value)",
                      &p->tf_env);
    printf("# argv\n%s\n", p->line);
    return 0;
}

/* One of the files the controller would write, when the hosts come from a
 * job (an existing hostfile is used where it is). */
static int write_output(const plan_t *p, const char *path, const char *text, size_t bytes,
                        mode_t mode)
{
    if (!p->have_job && !p->have_tf)
        return 0;
    launch_error_t err = {{0}};
    if (launch_file_write_atomic(path, text, bytes, mode, &err) != 0)
        return fail(1, "%s", err.text);
    return 0;
}

static int write_hostfile(const plan_t *p)
{
    int code = p->have_job || p->have_tf ? ensure_output_dir(p->out_dir) : 0;
    if (code != 0)
        return code;
    return write_output(p, p->hostfile_path, p->hostfile_text, p->hostfile_bytes, 0444);
}

/* Waits for every remote host (the launcher itself, when it is a worker, is
 * this machine). */
static int wait_for_hosts(const cli_t *c, const plan_t *p)
{
    size_t first = p->hosts.first_is_local ? 1 : 0;
    size_t remote = p->hosts.count > first ? p->hosts.count - first : 0;
    if (remote == 0 || c->no_wait)
        return 0;
    launch_host_status_t *st = calloc(remote, sizeof *st);
    if (st == NULL)
        return fail(1, "out of memory");
    for (size_t i = 0; i < remote; i++)
        st[i].host = p->hosts.hosts[first + i];
    launch_wait_opts_t wo;
    launch_wait_opts_default(&wo);
    wo.port = c->ssh_port;
    wo.timeout_s = c->wait_timeout_s;
    fprintf(stderr, PROG ": waiting up to %g s for %zu host%s on port %u\n", c->wait_timeout_s,
            remote, remote == 1 ? "" : "s", (unsigned)c->ssh_port);
    double t0 = rt_now();
    int rc = launch_hosts_wait(st, remote, &wo);
    if (rc == RT_ETIMEDOUT)
        report_missing(st, remote, remote, c);
    free(st);
    if (rc == RT_ETIMEDOUT)
        return 1;
    if (rc != 0)
        return fail(1, "readiness: %s", rt_strerror(rc));
    fprintf(stderr, PROG ": all %zu host%s ready after %.1f s\n", remote, remote == 1 ? "" : "s",
            rt_now() - t0);
    return 0;
}

/* A job across its runs (restarts and resizes): which hosts answered the
 * last probe, which the running job uses, what its output said of its
 * progress, the restarts used. */
typedef struct {
    const cli_t *c;
    plan_t *p;
    launch_progress_t progress;
    unsigned char *up;            /* per host of p->hosts */
    unsigned char *used;
    launch_host_state_t *state;   /* of each host's last probe */
    uint64_t running;             /* processes of the running job */
    uint64_t restarts;
    char grown[512];              /* the hosts a resize adds */
    char relaunch[4608];          /* the relaunch line, said once the run resumed */
} job_t;

static bool job_relays(const cli_t *c, const plan_t *p)
{
    return c->max_restarts > 0 || p->max_np != p->np || p->min_np != p->np;
}

/* Probes the hosts (not those in use, with unused_only) for timeout_s at
 * most; the launcher itself, when it is a host, always answers. */
static int probe_hosts(job_t *j, bool unused_only, double timeout_s)
{
    const launch_hostlist_t *h = &j->p->hosts;
    launch_host_status_t *st = calloc(h->count + 1, sizeof *st);
    size_t *of = calloc(h->count + 1, sizeof *of), count = 0;
    if (st == NULL || of == NULL) {
        free(st);
        free(of);
        return RT_ENOMEM;
    }
    for (size_t i = 0; i < h->count; i++) {
        if (i == 0 && h->first_is_local)
            j->up[i] = 1;
        else if (!(unused_only && j->used[i])) {
            st[count].host = h->hosts[i];
            of[count++] = i;
        }
    }
    launch_wait_opts_t wo;
    launch_wait_opts_default(&wo);
    wo.port = j->c->ssh_port;
    wo.timeout_s = timeout_s;
    int rc = j->c->no_wait ? 0 : launch_hosts_wait(st, count, &wo);
    for (size_t k = 0; k < count; k++) {
        j->up[of[k]] = j->c->no_wait || st[k].state == LAUNCH_HOST_READY;
        j->state[of[k]] = j->c->no_wait ? LAUNCH_HOST_READY : st[k].state;
    }
    free(st);
    free(of);
    return rc == RT_ETIMEDOUT ? 0 : rc;
}

static uint64_t slots_up(const job_t *j)
{
    if (j->p->hosts.count == 0)
        return j->p->np; /* --local: this machine's -np */
    uint64_t slots = 0;
    for (size_t i = 0; i < j->p->hosts.count; i++)
        slots += j->up[i] ? j->p->hosts.slots[i] : 0;
    return slots;
}

/* "a, b, c" for the hosts with flag[i] == want (8 named at most). */
static void host_names(const job_t *j, const unsigned char *flag, int want, bool states,
                       char *out, size_t bytes)
{
    size_t used = 0, named = 0, more = 0;
    out[0] = '\0';
    for (size_t i = 0; i < j->p->hosts.count; i++) {
        if ((flag[i] != 0) != (want != 0))
            continue;
        if (named == 8) {
            more++;
            continue;
        }
        int n = snprintf(out + used, bytes - used, "%s%s", named ? ", " : "",
                         j->p->hosts.hosts[i]);
        if (n > 0 && (size_t)n < bytes - used)
            used += (size_t)n;
        if (states && used < bytes)
            used += (size_t)snprintf(out + used, bytes - used, " (%s)",
                                     launch_host_state_text(j->state[i]));
        named++;
    }
    if (more && used < bytes)
        snprintf(out + used, bytes - used, " and %zu more", more);
}

/* Waits, probing again and again up to --wait-timeout, until the hosts that
 * answer hold --min-np slots. 0, or 1 when they never did. */
static int wait_for_slots(job_t *j)
{
    double end = rt_now() + j->c->wait_timeout_s;
    for (;;) {
        int rc = j->p->hosts.count ? probe_hosts(j, false, 1.0) : 0;
        if (rc != 0)
            return fail(1, "readiness: %s", rt_strerror(rc));
        if (slots_up(j) >= j->p->min_np)
            return 0;
        if (rt_now() >= end)
            return 1;
        struct timespec nap = {1, 0};
        nanosleep(&nap, NULL);
    }
}

/* Marks the hosts the run of p->np processes takes: those that answered,
 * in order, until their slots hold them. */
static void mark_used(job_t *j)
{
    uint64_t slots = 0;
    for (size_t i = 0; i < j->p->hosts.count; i++) {
        j->used[i] = j->up[i] && slots < j->p->np;
        slots += j->used[i] ? j->p->hosts.slots[i] : 0;
    }
    j->running = j->p->np;
}

/* A relaunch writes its own hostfile: an operator's (/etc/mpi/hostfile) is
 * not ours to change. */
static int own_hostfile(const cli_t *c, plan_t *p)
{
    if (p->have_job || p->have_tf)
        return 0;
    output_paths(c, "launcher", "hostfile", p->out_dir, p->hostfile_path, p->discover_path,
                 sizeof p->out_dir);
    return ensure_output_dir(p->out_dir);
}

/* A relaunch's hosts (those that answered, in order, up to --max-np), its
 * hostfile and discover_hosts.sh, and its mpirun argv. */
static int prepare_relaunch(cli_t *c, job_t *j)
{
    plan_t *p = j->p;
    if (p->hosts.count == 0)
        return 0; /* --local: the same -np here */
    launch_hostlist_t chosen;
    uint64_t np;
    if (launch_hosts_choose(&p->hosts, j->up, p->max_np, &chosen, &np) != 0)
        return fail(1, "out of memory choosing the hosts");
    char *text = NULL, *discover = NULL;
    size_t bytes = 0, discover_bytes = 0;
    int code = launch_hostfile_render(&chosen, &text, &bytes) != 0 ||
                       launch_discover_hosts_render(&p->hosts, j->up, &discover,
                                                    &discover_bytes) != 0
                   ? fail(1, "out of memory rendering the hostfile")
                   : own_hostfile(c, p);
    launch_hostlist_free(&chosen);
    launch_error_t err = {{0}};
    if (code == 0 && launch_file_write_atomic(p->hostfile_path, text, bytes, 0444, &err) != 0)
        code = fail(1, "%s", err.text);
    if (code == 0)
        code = write_output(p, p->discover_path, discover, discover_bytes, 0555);
    free(text);
    free(discover);
    if (code != 0)
        return code;
    p->np = np;
    mark_used(j);
    launch_argv_free(p->mpirun_argv);
    free(p->line);
    p->mpirun_argv = NULL;
    p->line = NULL;
    return build_argv(c, p);
}

/* The running job has room below --max-np and a host it does not use
 * answers again: it is asked to stop (with a checkpoint) and relaunched on
 * the larger set. Called by launch_run_ex every --discovery-interval. */
static int discovery_tick(void *ctx)
{
    job_t *j = ctx;
    /* A stop request before the ranks train would find them without their
     * handlers: grow a job once it trains. */
    if (j->running >= j->p->max_np || !j->progress.trained || probe_hosts(j, true, 1.0) != 0)
        return 0;
    uint64_t slots = 0;
    for (size_t i = 0; i < j->p->hosts.count; i++)
        slots += j->up[i] || j->used[i] ? j->p->hosts.slots[i] : 0;
    if ((slots < j->p->max_np ? slots : j->p->max_np) <= j->running)
        return 0;
    unsigned char *fresh = calloc(j->p->hosts.count, 1);
    if (fresh == NULL)
        return 0;
    for (size_t i = 0; i < j->p->hosts.count; i++)
        fresh[i] = j->up[i] && !j->used[i];
    host_names(j, fresh, 1, false, j->grown, sizeof j->grown);
    free(fresh);
    note("%s answer%s again: asking the job to stop with a checkpoint, to relaunch it on "
         "more processes (up to --max-np %llu)", j->grown, strchr(j->grown, ',') ? "" : "s",
         (unsigned long long)j->p->max_np);
    return 1;
}

/* The relaunch line, once the new run said where it resumed (or when it
 * ended without saying). */
static void say_relaunch(job_t *j)
{
    if (!j->relaunch[0])
        return;
    char resume[256];
    launch_progress_describe(&j->progress, resume, sizeof resume);
    fprintf(stderr, "%s; %s\n", j->relaunch, resume);
    fflush(stderr);
    j->relaunch[0] = '\0';
}

static void job_line(void *ctx, const char *line, size_t bytes)
{
    job_t *j = ctx;
    launch_progress_line(&j->progress, line, bytes);
    if (j->progress.started)
        say_relaunch(j);
}

/* Why mpirun ended, in words. */
static void run_ended(const launch_run_result_t *r, char *out, size_t bytes)
{
    if (r->signal)
        snprintf(out, bytes, "mpirun was killed by signal %d (%s); exit status %d", r->signal,
                 strsignal(r->signal), r->exit_code);
    else
        snprintf(out, bytes, "mpirun exited with status %d", r->exit_code);
}

/* The relaunch line but where it resumes: why, which hosts. */
static void plan_relaunch_line(job_t *j, const char *what, const char *why)
{
    char hosts[2048] = "", left[2048] = "";
    if (j->p->hosts.count) {
        host_names(j, j->used, 1, false, hosts, sizeof hosts);
        host_names(j, j->used, 0, true, left, sizeof left);
    }
    snprintf(j->relaunch, sizeof j->relaunch, PROG ": %s: %s; relaunched with -np %llu%s%s%s%s%s",
             what, why, (unsigned long long)j->running, hosts[0] ? " on " : " on this machine",
             hosts, left[0] ? " (left out: " : "", left, left[0] ? ")" : "");
}

/* Runs mpirun once, its stdout relayed and parsed when the job may be
 * relaunched, and discovery ticking while it may grow. */
static int run_mpirun(job_t *j, launch_run_result_t *r)
{
    const cli_t *c = j->c;
    const plan_t *p = j->p;
    fprintf(stderr, PROG ": running: %s\n", p->line);
    fflush(stdout);
    fflush(stderr);
    launch_run_opts_t o;
    launch_run_opts_default(&o);
    o.kill_grace_s = c->kill_grace_s;
    o.stop_grace_s = p->mpi == LAUNCH_MPI_OPENMPI ? c->stop_grace_s : 0;
    o.ctx = j;
    if (job_relays(c, p))
        o.on_line = job_line;
    if (p->hosts.count > 0 && p->max_np > j->running) {
        o.tick = discovery_tick;
        o.tick_s = c->discovery_interval_s;
    }
    launch_progress_next_run(&j->progress);
    int rc = launch_run_ex(p->mpirun_argv, p->env.vars, &o, r);
    int err = errno;
    say_relaunch(j);
    errno = err;
    if (rc != 0)
        return fail(1, "mpirun: cannot start \"%s\": %s; %s", p->mpirun_argv[0],
                    strerror(errno),
                    errno == E2BIG ? "make the job or the environment smaller"
                                   : "install Open MPI (Debian: openmpi-bin) or give its path "
                                     "with --mpirun");
    if (r->forwarded)
        fprintf(stderr, PROG ": stopped by signal %d (%s); exit status %d\n", r->forwarded,
                o.stop_grace_s > 0 ? "the job was asked to stop: SIGUSR1 to mpirun, for every "
                                     "rank"
                                   : "forwarded to mpirun",
                r->exit_code);
    else if (r->exit_code != 0 && !(r->resized && r->exit_code == 143)) {
        char why[160];
        run_ended(r, why, sizeof why);
        fprintf(stderr, PROG ": %s\n", why);
    }
    return 0;
}

/* After a run that failed: 0 to relaunch, or the launcher's exit status
 * (the failure's own when none is left), said on one line. */
static int may_restart(job_t *j, const launch_run_result_t *r, char *why, size_t bytes)
{
    run_ended(r, why, bytes);
    if (j->c->max_restarts == 0)
        return r->exit_code;
    if (r->exit_code == 2) {
        note("not relaunched: the job reported bad input (exit 2), which a relaunch would "
             "repeat");
        return 2;
    }
    if (j->restarts >= j->c->max_restarts) {
        fprintf(stderr, PROG ": error: no restarts left (--max-restarts %llu, all used); exit "
                "status %d, the last failure's\n", (unsigned long long)j->c->max_restarts,
                r->exit_code);
        return r->exit_code;
    }
    if (wait_for_slots(j) != 0) {
        char left[2048];
        host_names(j, j->up, 0, true, left, sizeof left);
        fprintf(stderr, PROG ": error: restart: the hosts that answer hold %llu slot(s) after "
                "%g s, fewer than --min-np %llu (%s); exit status %d, the last failure's\n",
                (unsigned long long)slots_up(j), j->c->wait_timeout_s,
                (unsigned long long)j->p->min_np, left, r->exit_code);
        return r->exit_code;
    }
    j->restarts++;
    return 0;
}

/* Runs the job until it ends, relaunching it after a failure (up to
 * --max-restarts) and when it may grow. */
static int run_job(cli_t *c, plan_t *p)
{
    job_t j = {.c = c, .p = p};
    size_t n = p->hosts.count + 1;
    j.up = calloc(n, 1);
    j.used = calloc(n, 1);
    j.state = calloc(n, sizeof *j.state);
    int code = j.up && j.used && j.state ? 0 : fail(1, "out of memory");
    launch_progress_init(&j.progress, (const char *const *)c->program, c->program_count);
    for (size_t i = 0; i < p->hosts.count; i++)
        j.up[i] = 1;
    if (code == 0)
        mark_used(&j);
    while (code == 0) {
        launch_run_result_t r;
        if ((code = run_mpirun(&j, &r)) != 0)
            break;
        if (r.exit_code == 0 || r.forwarded) {
            code = r.exit_code;
            break;
        }
        char why[600], what[64];
        if (r.resized && r.exit_code == 143) {
            snprintf(what, sizeof what, "resize");
            snprintf(why, sizeof why, "%s answer%s again and the job stopped", j.grown,
                     strchr(j.grown, ',') ? "" : "s");
            if (wait_for_slots(&j) != 0)
                code = r.exit_code;
        } else {
            code = may_restart(&j, &r, why, sizeof why);
            snprintf(what, sizeof what, "restart %llu of %llu", (unsigned long long)j.restarts,
                     (unsigned long long)c->max_restarts);
        }
        if (code == 0 && (code = prepare_relaunch(c, &j)) == 0)
            plan_relaunch_line(&j, what, why);
    }
    free(j.up);
    free(j.used);
    free(j.state);
    return code;
}

/* From the input to mpirun's exit: build what mpirun gets, then either show
 * it (--dry-run) or write the files, wait for the workers and run it. */
static int launch(cli_t *c, plan_t *p)
{
    int code;
    if ((code = build_environment(c, p)) != 0 || (code = build_argv(c, p)) != 0)
        return code;
    /* An argv or environment execve cannot take fails only at the spawn:
     * say so now, before anything is written. */
    launch_error_t err = {{0}};
    if (launch_argv_check_size(p->mpirun_argv, p->env.vars, &err) != 0)
        return fail(2, "%s", err.text);
    if (c->dry_run)
        return print_dry_run(c, p);
    if ((code = write_hostfile(p)) != 0 || (code = wait_for_hosts(c, p)) != 0 ||
        (code = write_output(p, p->discover_path, p->discover_text, p->discover_bytes,
                              0555)) != 0)
        return code;
    return run_job(c, p);
}

int main(int argc, char **argv)
{
    cli_t c;
    plan_t p;
    memset(&p, 0, sizeof p);
    int code = parse_cli(argc, argv, &c);
    if (code != 0) {
        code = code < 0 ? 0 : code; /* -1: --help or --version printed */
        goto done;
    }
    p.mpi = c.mpi_hint >= 0 ? (launch_mpi_t)c.mpi_hint : LAUNCH_MPI_OPENMPI;
    if ((code = load_input(&c, &p)) != 0 || (code = check_counts(&c, &p)) != 0)
        goto done;
    /* The input is good: say what of it will not run or not be acted on. */
    if (p.have_tf)
        tf_report_idle(&p.tfmap);
    report_unused(&c, &p);
    if ((code = render_files(&p)) != 0)
        goto done;
    if (c.print_hostfile || c.print_discover)
        code = print_files(&c, &p);
    else
        code = launch(&c, &p);
done:
    plan_free(&p);
    free(c.exports);
    free(c.extra);
    return code;
}
