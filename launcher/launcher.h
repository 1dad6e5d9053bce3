/* ringtrain launcher: turns a kubeflow MPIJob (or an operator-written
 * hostfile, or a tf-operator TFJob) into the hostfile and discover_hosts.sh
 * the mpi-operator controller would write, waits until every worker answers
 * on its ssh port, and runs mpirun (fork and execve, never a shell; it dies
 * with the launcher), forwarding signals and returning the job's exit
 * status. Standalone: no MPI linkage.
 *
 * Every function returns 0 or a negative RT_E... code (common/common.h).
 * Functions that can fail on user input fill a launch_error_t with one line
 * "<field>: <problem>; <what to do>" that a program prints after
 * "ringtrain-launcher: error: ". */
#ifndef RINGTRAIN_LAUNCHER_H
#define RINGTRAIN_LAUNCHER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LAUNCH_LABEL_MAX 63          /* DNS-1035 / DNS-1123 label */
#define LAUNCH_HOST_MAX 253          /* DNS-1123 subdomain */
#define LAUNCH_REPLICAS_MAX 100000u
#define LAUNCH_SLOTS_MAX 1024u
#define LAUNCH_YAML_MAX_BYTES ((size_t)1 << 20)
#define LAUNCH_HOSTFILE_MAX_BYTES ((size_t)16 << 20)
#define LAUNCH_GPUS_PER_NODE_DEFAULT 8u
#define LAUNCH_HOSTFILE_DEFAULT "/etc/mpi/hostfile"

typedef struct {
    char text[1024];
} launch_error_t;

typedef enum {
    LAUNCH_MPI_OPENMPI = 0,
    LAUNCH_MPI_INTEL = 1,
    LAUNCH_MPI_MPICH = 2,
} launch_mpi_t;

/* "OpenMPI", "Intel", "MPICH". */
const char *launch_mpi_name(launch_mpi_t mpi);
/* Parses one of the names above (exact, as the CRD's enum). */
int launch_mpi_parse(const char *text, launch_mpi_t *mpi);

/* ---- MPIJob ------------------------------------------------------------ */

typedef struct {
    char api_version[32];                  /* "kubeflow.org/v2beta1", "…/v1", "…/v1alpha1" */
    char name[LAUNCH_LABEL_MAX + 1];       /* metadata.name */
    char namespace_name[LAUNCH_LABEL_MAX + 1]; /* metadata.namespace, default "default" */
    launch_mpi_t mpi;                      /* spec.mpiImplementation, default OpenMPI */
    uint32_t workers;                      /* worker pods (0 only with launcher_is_worker) */
    uint32_t slots;                        /* slots per worker, 1..1024 */
    int launcher_is_worker;                /* the launcher is in the hostfile, first:
                                              spec.runLauncherAsWorker, or launcher_gpu */
    int launcher_gpu;                      /* v1: the Launcher requests a GPU, so the v1
                                              controller lists it as a host */
    char ssh_auth_mount_path[256];         /* spec.sshAuthMountPath, default /root/.ssh */
    /* Read, checked and left to the operator (the dry run notes them): */
    int ssh_auth_mount_path_set;           /* spec.sshAuthMountPath was given */
    char clean_pod_policy[16];             /* spec.runPolicy.cleanPodPolicy (v1 also
                                              spec.cleanPodPolicy); "" when absent */
    int clean_pod_policy_in_spec;          /* v1: given as spec.cleanPodPolicy */
    char launcher_creation_policy[24];     /* v2beta1 spec.launcherCreationPolicy; "" */
} launch_job_t;

/* Settings the legacy v1alpha1 operator took from its command line. */
typedef struct {
    uint32_t gpus_per_node;             /* --gpus-per-node, default 8 */
    uint32_t processing_units_per_node; /* 0: same as gpus_per_node */
} launch_legacy_opts_t;

/* Parses and validates one MPIJob document. Nothing is partially filled on
 * error: *job is only written on success. legacy may be NULL (defaults). */
int launch_job_parse(const char *yaml, size_t bytes, const launch_legacy_opts_t *legacy,
                     launch_job_t *job, launch_error_t *err);
/* Reads path (at most LAUNCH_YAML_MAX_BYTES) and parses it. */
int launch_job_load(const char *path, const launch_legacy_opts_t *legacy, launch_job_t *job,
                    launch_error_t *err);

/* Name checks, exposed for tests and the CLI. */
int launch_is_dns1035_label(const char *text, size_t bytes);
int launch_is_dns1123_label(const char *text, size_t bytes);
int launch_is_dns1123_subdomain(const char *text, size_t bytes);

/* ---- hosts, hostfile, discover_hosts.sh -------------------------------- */

typedef struct {
    char **hosts;      /* count names, owned */
    uint32_t *slots;   /* slots of each host */
    size_t count;
    launch_mpi_t mpi;  /* decides the hostfile syntax */
    int first_is_local; /* hosts[0] is this machine (runLauncherAsWorker): not waited for */
} launch_hostlist_t;

/* Hosts the v2 controller would write: with launcher_is_worker,
 * "<job>-launcher.<job>.<ns>.svc" first, then "<job>-worker-<i>.<job>.<ns>.svc";
 * cluster_domain (NULL or "") is appended as ".<domain>" to every host. */
int launch_hostlist_from_job(const launch_job_t *job, const char *cluster_domain,
                             launch_hostlist_t *list, launch_error_t *err);
/* Reads an existing hostfile ("host slots=N" lines for Open MPI, "host:N"
 * for Intel MPI / MPICH; '#' comments). mpi_hint is a launch_mpi_t, or -1 to
 * infer it from the syntax ("host:N" alone reads as MPICH). source names the
 * file in errors. A first host equal to this machine's hostname (or
 * "<hostname>.…", "localhost", 127.x) sets first_is_local. */
int launch_hostlist_parse(const char *text, size_t bytes, int mpi_hint, const char *source,
                          launch_hostlist_t *list, launch_error_t *err);
void launch_hostlist_free(launch_hostlist_t *list);
uint64_t launch_hostlist_total_slots(const launch_hostlist_t *list);

/* Renders the hostfile text (malloc'd, NUL-terminated, *bytes without NUL):
 * "host slots=N\n" for Open MPI, "host:N\n" for Intel MPI and MPICH. */
int launch_hostfile_render(const launch_hostlist_t *list, char **text, size_t *bytes);
/* Renders discover_hosts.sh: "#!/bin/sh\n" then "echo <host>\n" for every
 * host that is up (up == NULL: all), sorted by name as the controller sorts
 * pod names; a local first host (the launcher) stays first. */
int launch_discover_hosts_render(const launch_hostlist_t *list, const unsigned char *up,
                                 char **text, size_t *bytes);
/* Writes text atomically and never through a symlink, with the project's
 * one writer (rt_file_write_atomic, common/files.c): a temporary file next
 * to path, fsynced and renamed into place, so readers never see half a file.
 * Returns its codes (RT_ENOENT: no such directory); err says why. */
int launch_file_write_atomic(const char *path, const char *text, size_t bytes, mode_t mode,
                             launch_error_t *err);
/* Reads an existing hostfile (a regular file of at most
 * LAUNCH_HOSTFILE_MAX_BYTES: a FIFO or device is refused, never blocked on)
 * and parses it as launch_hostlist_parse does; *text (malloc'd,
 * NUL-terminated) keeps it as it is, to be used as it is. RT_ENOENT when
 * path does not exist. */
int launch_hostlist_load(const char *path, int mpi_hint, launch_hostlist_t *list, char **text,
                         size_t *bytes, launch_error_t *err);

/* ---- TFJob (kubeflow tf-operator) -------------------------------------- */

/* Replica types of a TFJob, in the order their hosts take MPI ranks: the
 * chief (Chief, or Master, its older name) is rank 0, the workers follow,
 * then the parameter servers (only in parameter-server mode). The
 * Evaluator is never part of the training cluster. */
typedef enum {
    LAUNCH_TF_CHIEF = 0,
    LAUNCH_TF_MASTER,
    LAUNCH_TF_WORKER,
    LAUNCH_TF_PS,
    LAUNCH_TF_EVALUATOR,
    LAUNCH_TF_TYPES, /* how many */
} launch_tf_type_t;

#define LAUNCH_TF_API_V1 "kubeflow.org/v1"
#define LAUNCH_TF_API_V1BETA1 "kubeflow.org/v1beta1"
/* The environment variable that tells every rank which ranks are parameter
 * servers (see launcher/README.md, "The parameter-server contract"). */
#define LAUNCH_PS_RANKS_ENV "RINGTRAIN_PS_RANKS"

/* "Chief", "Master", "Worker", "PS", "Evaluator". */
const char *launch_tf_type_name(launch_tf_type_t type);

typedef struct {
    char api_version[32];                      /* "kubeflow.org/v1" or "…/v1beta1" */
    char name[LAUNCH_LABEL_MAX + 1];           /* metadata.name */
    char namespace_name[LAUNCH_LABEL_MAX + 1]; /* metadata.namespace, default "default" */
    unsigned char present[LAUNCH_TF_TYPES];    /* the type is in spec.tfReplicaSpecs */
    uint32_t replicas[LAUNCH_TF_TYPES];        /* default 1 when present; 0 when absent */
} launch_tfjob_t;

/* Parses and validates one TFJob document (kubeflow.org/v1 or v1beta1):
 * spec.tfReplicaSpecs.{Chief,Master,Worker,PS,Evaluator} (keys in any case,
 * as tf-operator folds them), each with replicas (default 1) and an optional
 * restartPolicy. *job is only written on success. */
int launch_tfjob_parse(const char *yaml, size_t bytes, launch_tfjob_t *job,
                       launch_error_t *err);
/* Reads path (at most LAUNCH_YAML_MAX_BYTES) and parses it. */
int launch_tfjob_load(const char *path, launch_tfjob_t *job, launch_error_t *err);

/* What one host of a TFJob is. */
typedef struct {
    launch_tf_type_t type;
    uint32_t index;      /* replica index within its type */
    uint64_t first_rank; /* its ranks: first_rank .. first_rank + slots - 1 (hosts only) */
} launch_tf_role_t;

typedef struct {
    int ps_mode;                /* the PS replicas are ranks (parameter-server mode) */
    uint32_t slots;             /* slots per Chief/Master/Worker host (0: 1); PS hosts get 1 */
    const char *cluster_domain; /* NULL or "": none */
    launch_mpi_t mpi;           /* hostfile syntax */
} launch_tf_map_opts_t;

/* A TFJob as one MPI job. */
typedef struct {
    launch_hostlist_t hosts;   /* in rank order */
    launch_tf_role_t *roles;   /* hosts.count entries */
    char **idle;               /* hosts that get no rank (PS outside PS mode, Evaluators) */
    launch_tf_role_t *idle_roles;
    size_t idle_count;
    uint64_t ranks;            /* total slots of hosts */
    uint64_t ps_ranks;         /* how many of them are parameter servers (the last ones) */
} launch_tf_map_t;

/* Hosts named the tf-operator way, one Service per replica:
 * "<job>-<type>-<i>.<namespace>.svc[.<cluster_domain>]", type in lower case.
 * The first host is marked local when it is this machine (the launcher runs
 * in the chief's pod). */
int launch_tfjob_map(const launch_tfjob_t *job, const launch_tf_map_opts_t *opts,
                     launch_tf_map_t *map, launch_error_t *err);
void launch_tf_map_free(launch_tf_map_t *map);
/* The parameter servers' ranks, ascending and comma-separated ("3,4"; ""
 * when there are none), malloc'd. */
int launch_tf_map_ps_ranks(const launch_tf_map_t *map, char **text);

/* 1 when the program's arguments select parameter-server mode: the last
 * --variable_update (or absl's -variable_update), as "--variable_update=V"
 * or "--variable_update V", is parameter_server; 0 otherwise. */
int launch_args_ps_mode(const char *const *args, size_t count);

/* The value of the program's flag `flag` (given as --flag=V, --flag V, or
 * absl's -flag=V / -flag V; the last one counts), or NULL. */
const char *launch_args_flag(const char *const *args, size_t count, const char *flag);

/* ---- restarts and elastic world size ----------------------------------- */

/* What the job's output (ringtrain-worker's) said of its progress. */
typedef struct {
    long warmup, display_every; /* the program's --num_warmup_batches and
                                   --display_every (10 and 10 when not given) */
    long resumed;               /* the step this run started from ("Resuming:"), 0 */
    long checkpoint;            /* newest checkpoint the job wrote or resumed from, -1 */
    long last_step;             /* newest step the output showed complete, -1 */
    int last_exact;             /* last_step is exact: from a checkpoint or stop
                                   line, or step lines come every step */
    int stopped;                /* this run printed "Stopped:" */
    int trained;                /* this run printed a step or checkpoint line */
    int started;                /* this run printed its header (after "Resuming:") */
} launch_progress_t;

/* Reads the worker's flags from the program's arguments. */
void launch_progress_init(launch_progress_t *p, const char *const *args, size_t count);
/* One line of the job's stdout (without its newline). */
void launch_progress_line(launch_progress_t *p, const char *line, size_t bytes);
/* A new run starts (its checkpoint and steps carry over). */
void launch_progress_next_run(launch_progress_t *p);
/* Once the run started: "resumed from step S, N steps lost"; before:
 * "resuming from step S" of the newest checkpoint the job reported (or
 * what is known of it). */
void launch_progress_describe(const launch_progress_t *p, char *out, size_t bytes);
/* The hosts marked up (up[i] for all->hosts[i]), in order, until their
 * slots reach max_np; *np = min(their slots, max_np). chosen is new (free
 * with launch_hostlist_free). 0 or RT_ENOMEM. */
int launch_hosts_choose(const launch_hostlist_t *all, const unsigned char *up, uint64_t max_np,
                        launch_hostlist_t *chosen, uint64_t *np);

/* ---- readiness ---------------------------------------------------------- */

typedef enum {
    LAUNCH_HOST_PENDING = 0, /* not tried yet */
    LAUNCH_HOST_READY,
    LAUNCH_HOST_NO_DNS,      /* name does not resolve */
    LAUNCH_HOST_REFUSED,     /* resolves, nothing listens on the port */
    LAUNCH_HOST_TIMED_OUT,   /* resolves, connection attempt got no answer */
    LAUNCH_HOST_UNREACHABLE, /* resolves, no route / network down */
} launch_host_state_t;

typedef struct {
    const char *host;          /* borrowed */
    launch_host_state_t state; /* last outcome */
    int detail;                /* errno or getaddrinfo code of the last failure */
    unsigned attempts;
    double ready_after_s;      /* seconds from start until ready */
} launch_host_status_t;

typedef struct {
    uint16_t port;             /* ssh port, default 22 */
    double timeout_s;          /* overall deadline, default 300 */
    double backoff_start_s;    /* first retry delay, default 0.1, doubles */
    double backoff_max_s;      /* delay cap, default 5 */
    double connect_timeout_s;  /* one connection attempt, default 1 */
    unsigned threads;          /* 0: min(hosts, 16) */
} launch_wait_opts_t;

void launch_wait_opts_default(launch_wait_opts_t *opts);
/* Waits until every host resolves and accepts a TCP connection on the port,
 * retrying each with exponential backoff. Returns 0 when all are ready,
 * RT_ETIMEDOUT at the deadline (states say why each missing host failed). */
int launch_hosts_wait(launch_host_status_t *hosts, size_t count, const launch_wait_opts_t *opts);
/* "ready", "no DNS", "refused", "timed out", "unreachable", "not tried". */
const char *launch_host_state_text(launch_host_state_t state);

/* ---- environment and mpirun argv ---------------------------------------- */

/* NAME=VALUE strings, owned. */
typedef struct {
    char **vars;
    size_t count;
} launch_env_t;

void launch_env_free(launch_env_t *env);
/* The variables the operator gives a launcher for this MPI implementation
 * (K_MPI_JOB_ROLE=launcher; Open MPI: OMPI_MCA_orte_keep_fqdn_hostnames,
 * OMPI_MCA_orte_default_hostfile, OMPI_MCA_plm_rsh_args,
 * OMPI_MCA_orte_set_default_slots; Intel: I_MPI_HYDRA_HOST_FILE,
 * I_MPI_HYDRA_BOOTSTRAP_EXEC_EXTRA_ARGS, I_MPI_PERHOST; MPICH:
 * HYDRA_HOST_FILE, HYDRA_LAUNCH_EXTRA_ARGS), keeping only those absent
 * from base (a NULL-terminated environ). */
int launch_env_additions(const char *const *base, launch_mpi_t mpi, const char *hostfile_path,
                         uint32_t slots, launch_env_t *out);
/* base followed by additions: the environment mpirun gets. */
int launch_env_merge(const char *const *base, const launch_env_t *additions, launch_env_t *out);
/* Names of the variables forwarded to every rank with Open MPI's -x: PATH,
 * LD_LIBRARY_PATH and every NCCL_*, RINGTRAIN_*, OMP_*, OPENBLAS_* set in
 * env, then user (NAME or NAME=VALUE, kept as given), without duplicates. */
int launch_exports_collect(const char *const *env, const char *const *user, size_t user_count,
                           launch_env_t *out);

typedef struct {
    const char *mpirun;                /* program to spawn, default "mpirun" */
    launch_mpi_t mpi;
    uint64_t np;                       /* processes */
    const char *hostfile;              /* NULL: none (local mode) */
    int oversubscribe;                 /* Open MPI --oversubscribe */
    int allow_run_as_root;             /* Open MPI --allow-run-as-root */
    const char *bind_to;               /* Open MPI --bind-to (NULL: mpirun's default) */
    int map_by_slot;                   /* Open MPI --map-by slot */
    const char *const *exports;        /* -x entries (Open MPI only) */
    size_t export_count;
    const char *const *extra;          /* passed through before the program */
    size_t extra_count;
    const char *const *program;        /* program and its arguments */
    size_t program_count;
} launch_argv_opts_t;

/* Builds the mpirun argv (NULL-terminated, owned; free with
 * launch_argv_free). Open MPI: mpirun [--allow-run-as-root] -np N
 * [--hostfile H] [--map-by slot] [--bind-to B] [--oversubscribe] [-x V]…
 * [extra…] program args…; Intel MPI / MPICH (hydra): mpirun -n N [-f H]
 * [extra…] program args…. */
int launch_argv_build(const launch_argv_opts_t *opts, char ***argv, size_t *argc);
void launch_argv_free(char **argv);
/* Writes argv as one line a POSIX shell would split back into the same
 * words (single quotes where needed). */
int launch_argv_format(char *const *argv, char **line);

/* Whether argv and envp fit in one execve here: each string within Linux's
 * limit for one argument or variable (MAX_ARG_STRLEN, 32 pages) and all of
 * them with their pointers within sysconf(_SC_ARG_MAX). Returns 0, or
 * RT_ERANGE with err naming what is too large (a variable by its name), its
 * size and the limit. */
int launch_argv_check_size(char *const argv[], char *const envp[], launch_error_t *err);

/* How mpirun ended. */
typedef struct {
    int exit_code; /* the launcher's status: mpirun's exit status (205 is a status,
                      not a signal), 128+N when signal N killed it, or 128+the first
                      signal the launcher got (the job was stopped by it) */
    int signal;    /* the signal that killed mpirun (WIFSIGNALED), or 0 */
    int forwarded; /* the first signal the launcher got while mpirun ran, or 0 */
    int resized;   /* tick asked the job to stop (and no signal came) */
} launch_run_result_t;

/* How launch_run_ex supervises mpirun. */
typedef struct {
    /* After mpirun got a signal itself: SIGKILL its process group this many
     * seconds later (default 5). */
    double kill_grace_s;
    /* 0: a SIGINT/SIGTERM/SIGHUP to the launcher goes to mpirun as it is.
     * Otherwise the first one sends mpirun stop_signal instead (a stop
     * request the job may answer with a checkpoint), and the signal itself
     * only stop_grace_s seconds later (or when a second one comes). */
    double stop_grace_s;
    int stop_signal;  /* default SIGUSR1: Open MPI's mpirun passes it to every rank */
    /* Called every tick_s seconds while no stop is under way (NULL: never);
     * returning 1 asks the job to stop as above (a resize). */
    int (*tick)(void *ctx);
    double tick_s;
    /* NULL: mpirun's stdout is the launcher's. Otherwise it goes through a
     * pipe: passed on to the launcher's stdout as it comes and handed here
     * line by line (without the newline; lines over 4 KiB are not). */
    void (*on_line)(void *ctx, const char *line, size_t bytes);
    void *ctx;
} launch_run_opts_t;

void launch_run_opts_default(launch_run_opts_t *opts);

/* Starts argv[0] (searched in PATH, never through a shell; fork and execve)
 * with envp in its own process group and with SIGTERM as its parent-death
 * signal, so it never outlives the launcher, however the launcher dies;
 * handles SIGINT, SIGTERM and SIGHUP as opts says, and after mpirun got a
 * signal itself waits kill_grace_s before SIGKILLing the group. The thread
 * that calls it must live until it returns (the parent-death signal follows
 * the thread). Returns RT_ESYS (errno kept) when the spawn fails. */
int launch_run_ex(char *const argv[], char *const envp[], const launch_run_opts_t *opts,
                  launch_run_result_t *result);
/* launch_run_ex with the defaults, kill_grace_s, and no stop grace: a signal
 * goes to mpirun as it is. */
int launch_run(char *const argv[], char *const envp[], double kill_grace_s,
               launch_run_result_t *result);

#endif
