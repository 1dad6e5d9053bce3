/* Running the job: the environment mpi-operator gives a launcher, the
 * variables forwarded to every rank, the mpirun argv for Open MPI or a hydra
 * mpirun (Intel MPI, MPICH), and the spawn itself: fork and execve, never a
 * shell, mpirun in its own process group so a late SIGKILL reaches every
 * local process, with a parent-death signal so it never outlives the
 * launcher. While it runs: its stdout passed on line by line (and shown to
 * the caller), SIGINT/SIGTERM/SIGHUP turned into a stop request (SIGUSR1,
 * which Open MPI's mpirun passes to every rank) and, after a grace, into
 * the signal itself, a periodic tick that may ask for a stop too, and the
 * exit status passed on (128+signal when a signal ended the job). */
#include "launcher.h"
#include "launcher_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"

void launch_env_free(launch_env_t *env)
{
    if (env == NULL)
        return;
    if (env->vars != NULL)
        for (size_t i = 0; i < env->count; i++)
            free(env->vars[i]);
    free(env->vars);
    env->vars = NULL;
    env->count = 0;
}

static int env_push(launch_env_t *env, size_t *capacity, const char *name, const char *value)
{
    if (env->count + 2 > *capacity) {
        size_t cap = *capacity ? *capacity * 2 : 16;
        while (cap < env->count + 2)
            cap *= 2;
        char **vars = realloc(env->vars, cap * sizeof *vars);
        if (vars == NULL)
            return RT_ENOMEM;
        env->vars = vars;
        *capacity = cap;
    }
    size_t bytes = strlen(name) + (value ? strlen(value) + 1 : 0) + 1;
    char *var = malloc(bytes);
    if (var == NULL)
        return RT_ENOMEM;
    if (value)
        snprintf(var, bytes, "%s=%s", name, value);
    else
        snprintf(var, bytes, "%s", name);
    env->vars[env->count++] = var;
    env->vars[env->count] = NULL; /* always NULL-terminated, usable as envp */
    return 0;
}

/* Value of name in a NULL-terminated environ, or NULL. */
static const char *env_find(const char *const *env, const char *name)
{
    size_t name_bytes = strlen(name);
    for (size_t i = 0; env != NULL && env[i] != NULL; i++)
        if (strncmp(env[i], name, name_bytes) == 0 && env[i][name_bytes] == '=')
            return env[i] + name_bytes + 1;
    return NULL;
}

int launch_env_additions(const char *const *base, launch_mpi_t mpi, const char *hostfile_path,
                         uint32_t slots, launch_env_t *out)
{
    memset(out, 0, sizeof *out);
    char slots_text[16];
    snprintf(slots_text, sizeof slots_text, "%u", slots);
    const char *const ssh_args = "-o ConnectionAttempts=10";
    struct env_pair {
        const char *name;
        const char *value;
    } want[8];
    size_t count = 0;
    want[count++] = (struct env_pair){"K_MPI_JOB_ROLE", "launcher"};
    switch (mpi) {
    case LAUNCH_MPI_OPENMPI:
        want[count++] = (struct env_pair){"OMPI_MCA_orte_keep_fqdn_hostnames", "true"};
        want[count++] = (struct env_pair){"OMPI_MCA_orte_default_hostfile", hostfile_path};
        want[count++] = (struct env_pair){"OMPI_MCA_plm_rsh_args", ssh_args};
        want[count++] = (struct env_pair){"OMPI_MCA_orte_set_default_slots", slots_text};
        break;
    case LAUNCH_MPI_INTEL:
        want[count++] = (struct env_pair){"I_MPI_HYDRA_HOST_FILE", hostfile_path};
        want[count++] = (struct env_pair){"I_MPI_HYDRA_BOOTSTRAP_EXEC_EXTRA_ARGS", ssh_args};
        want[count++] = (struct env_pair){"I_MPI_PERHOST", slots_text};
        break;
    case LAUNCH_MPI_MPICH:
        want[count++] = (struct env_pair){"HYDRA_HOST_FILE", hostfile_path};
        want[count++] = (struct env_pair){"HYDRA_LAUNCH_EXTRA_ARGS", ssh_args};
        break;
    }
    size_t capacity = 0;
    for (size_t i = 0; i < count; i++) {
        if (want[i].value == NULL || env_find(base, want[i].name) != NULL)
            continue;
        int rc = env_push(out, &capacity, want[i].name, want[i].value);
        if (rc != 0) {
            launch_env_free(out);
            return rc;
        }
    }
    return 0;
}

int launch_env_merge(const char *const *base, const launch_env_t *additions, launch_env_t *out)
{
    memset(out, 0, sizeof *out);
    size_t capacity = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && base != NULL && base[i] != NULL; i++)
        rc = env_push(out, &capacity, base[i], NULL);
    for (size_t i = 0; rc == 0 && additions != NULL && i < additions->count; i++)
        rc = env_push(out, &capacity, additions->vars[i], NULL);
    if (rc == 0 && out->vars == NULL)
        rc = env_push(out, &capacity, "K_MPI_JOB_ROLE=launcher", NULL);
    if (rc != 0)
        launch_env_free(out);
    return rc;
}

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool export_listed(const launch_env_t *out, const char *entry)
{
    size_t name_bytes = strcspn(entry, "=");
    for (size_t i = 0; i < out->count; i++) {
        size_t listed_bytes = strcspn(out->vars[i], "=");
        if (listed_bytes == name_bytes && strncmp(out->vars[i], entry, name_bytes) == 0)
            return true;
    }
    return false;
}

int launch_exports_collect(const char *const *env, const char *const *user, size_t user_count,
                           launch_env_t *out)
{
    static const char *const always[] = {"PATH", "LD_LIBRARY_PATH"};
    static const char *const prefixes[] = {"NCCL_", "RINGTRAIN_", "OMP_", "OPENBLAS_"};
    memset(out, 0, sizeof *out);
    size_t capacity = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof always / sizeof always[0]; i++)
        if (env_find(env, always[i]) != NULL)
            rc = env_push(out, &capacity, always[i], NULL);
    size_t first_prefixed = out->count;
    for (size_t i = 0; rc == 0 && env != NULL && env[i] != NULL; i++) {
        const char *eq = strchr(env[i], '=');
        if (eq == NULL || eq == env[i])
            continue;
        bool match = false;
        for (size_t p = 0; p < sizeof prefixes / sizeof prefixes[0]; p++)
            match = match || has_prefix(env[i], prefixes[p]);
        if (!match)
            continue;
        char name[256];
        size_t name_bytes = (size_t)(eq - env[i]);
        if (name_bytes >= sizeof name)
            continue;
        memcpy(name, env[i], name_bytes);
        name[name_bytes] = '\0';
        if (!export_listed(out, name))
            rc = env_push(out, &capacity, name, NULL);
    }
    /* Sorted, so the argv (and --dry-run) does not depend on environ order. */
    if (rc == 0 && out->count > first_prefixed)
        qsort(out->vars + first_prefixed, out->count - first_prefixed, sizeof *out->vars,
              name_cmp);
    for (size_t i = 0; rc == 0 && i < user_count; i++)
        if (!export_listed(out, user[i]))
            rc = env_push(out, &capacity, user[i], NULL);
    if (rc != 0)
        launch_env_free(out);
    return rc;
}

/* ---- argv -------------------------------------------------------------- */

void launch_argv_free(char **argv)
{
    if (argv == NULL)
        return;
    for (size_t i = 0; argv[i] != NULL; i++)
        free(argv[i]);
    free(argv);
}

int launch_argv_build(const launch_argv_opts_t *o, char ***argv_out, size_t *argc_out)
{
    size_t cap = 16 + 2 * o->export_count + o->extra_count + o->program_count;
    char **argv = calloc(cap, sizeof *argv);
    if (argv == NULL)
        return RT_ENOMEM;
    size_t argc = 0;
    char np[24];
    snprintf(np, sizeof np, "%llu", (unsigned long long)o->np);
    const char *words[16];
    size_t nwords = 0;
    words[nwords++] = o->mpirun ? o->mpirun : "mpirun";
    if (o->mpi == LAUNCH_MPI_OPENMPI) {
        if (o->allow_run_as_root)
            words[nwords++] = "--allow-run-as-root";
        words[nwords++] = "-np";
        words[nwords++] = np;
        if (o->hostfile) {
            words[nwords++] = "--hostfile";
            words[nwords++] = o->hostfile;
        }
        if (o->map_by_slot) {
            words[nwords++] = "--map-by";
            words[nwords++] = "slot";
        }
        if (o->bind_to) {
            words[nwords++] = "--bind-to";
            words[nwords++] = o->bind_to;
        }
        if (o->oversubscribe)
            words[nwords++] = "--oversubscribe";
    } else {
        words[nwords++] = "-n";
        words[nwords++] = np;
        if (o->hostfile) {
            words[nwords++] = "-f";
            words[nwords++] = o->hostfile;
        }
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < nwords; i++)
        if ((argv[argc++] = strdup(words[i])) == NULL)
            rc = RT_ENOMEM;
    for (size_t i = 0; rc == 0 && o->mpi == LAUNCH_MPI_OPENMPI && i < o->export_count; i++) {
        if ((argv[argc++] = strdup("-x")) == NULL || (argv[argc++] = strdup(o->exports[i])) == NULL)
            rc = RT_ENOMEM;
    }
    for (size_t i = 0; rc == 0 && i < o->extra_count; i++)
        if ((argv[argc++] = strdup(o->extra[i])) == NULL)
            rc = RT_ENOMEM;
    for (size_t i = 0; rc == 0 && i < o->program_count; i++)
        if ((argv[argc++] = strdup(o->program[i])) == NULL)
            rc = RT_ENOMEM;
    if (rc != 0) {
        launch_argv_free(argv);
        return rc;
    }
    argv[argc] = NULL;
    *argv_out = argv;
    if (argc_out)
        *argc_out = argc;
    return 0;
}

static bool shell_safe(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        char c = *s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  strchr("_@%+=:,./-", c) != NULL;
        if (!ok)
            return false;
    }
    return true;
}

int launch_argv_format(char *const *argv, char **line_out)
{
    size_t bytes = 1;
    for (size_t i = 0; argv[i] != NULL; i++)
        bytes += 4 * strlen(argv[i]) + 3;
    char *line = malloc(bytes);
    if (line == NULL)
        return RT_ENOMEM;
    size_t o = 0;
    for (size_t i = 0; argv[i] != NULL; i++) {
        if (i > 0)
            line[o++] = ' ';
        if (shell_safe(argv[i])) {
            size_t word_bytes = strlen(argv[i]);
            memcpy(line + o, argv[i], word_bytes);
            o += word_bytes;
            continue;
        }
        line[o++] = '\'';
        for (const char *s = argv[i]; *s; s++) {
            if (*s == '\'') {
                memcpy(line + o, "'\\''", 4);
                o += 4;
            } else {
                line[o++] = *s;
            }
        }
        line[o++] = '\'';
    }
    line[o] = '\0';
    *line_out = line;
    return 0;
}

/* ---- does it fit in one execve? ---------------------------------------- */

/* The first string of list longer than one_max bytes (with its NUL), or -1;
 * *total grows by every string and its pointer. */
static long oversized(char *const list[], size_t one_max, size_t *total)
{
    long found = -1;
    for (size_t i = 0; list != NULL && list[i] != NULL; i++) {
        size_t bytes = strlen(list[i]) + 1;
        *total += bytes + sizeof list[i];
        if (bytes > one_max && found < 0)
            found = (long)i;
    }
    return found;
}

int launch_argv_check_size(char *const argv[], char *const envp[], launch_error_t *err)
{
    long page = sysconf(_SC_PAGESIZE), arg_max = sysconf(_SC_ARG_MAX);
    size_t one_max = (size_t)(page > 0 ? page : 4096) * 32; /* Linux's MAX_ARG_STRLEN */
    size_t total = 2 * sizeof(char *);                      /* the NULLs ending the lists */
    long bad_arg = oversized(argv, one_max, &total);
    long bad_env = oversized(envp, one_max, &total);
    const char *what = bad_env >= 0 ? envp[bad_env] : bad_arg >= 0 ? argv[bad_arg] : NULL;
    if (what != NULL) {
        /* A variable by its name (quoted unless a plain one); an argument
         * by its start, quoted. */
        char name[100];
        size_t name_bytes = bad_env >= 0 ? strcspn(what, "=") : strlen(what);
        bool plain = bad_env >= 0 && name_bytes > 0 && name_bytes < 64;
        for (size_t i = 0; plain && i < name_bytes; i++)
            plain = what[i] == '_' || (what[i] >= 'A' && what[i] <= 'Z') ||
                    (what[i] >= 'a' && what[i] <= 'z') || (what[i] >= '0' && what[i] <= '9');
        if (plain)
            snprintf(name, sizeof name, "%.*s", (int)name_bytes, what);
        else
            launch__quote(what, name_bytes, name, 60);
        launch__error_set(err, "%s%s: %zu bytes, over the %zu bytes Linux passes in one %s, so "
                          "mpirun cannot be started; make the job smaller (fewer replicas) "
                          "or shorten it", bad_env >= 0 ? "" : "mpirun argument ", name,
                          strlen(what) + 1, one_max,
                          bad_env >= 0 ? "environment variable" : "argument");
        return RT_ERANGE;
    }
    if (arg_max > 0 && total > (size_t)arg_max) {
        launch__error_set(err, "mpirun: its arguments and environment take %zu bytes, over this "
                          "system's limit of %ld (ARG_MAX), so it cannot be started; make "
                          "the job or the environment smaller, or raise the stack limit "
                          "(ulimit -s), which ARG_MAX follows", total, arg_max);
        return RT_ERANGE;
    }
    return 0;
}

/* ---- spawn and supervise ------------------------------------------------ */

/* argv[0] looked up in PATH as execvp would (the launcher's own PATH, not
 * envp's), before the fork: the child then only makes async-signal-safe
 * calls. 0, or an errno (ENOENT, EACCES, ENAMETOOLONG). */
static int find_program(const char *name, char *path, size_t bytes)
{
    if (strchr(name, '/') != NULL)
        return (size_t)snprintf(path, bytes, "%s", name) < bytes ? 0 : ENAMETOOLONG;
    const char *dirs = getenv("PATH");
    if (dirs == NULL || dirs[0] == '\0')
        dirs = "/bin:/usr/bin";
    int err = ENOENT;
    for (const char *dir = dirs;; dir += strcspn(dir, ":") + 1) {
        int len = (int)strcspn(dir, ":");
        /* An empty entry is the current directory. */
        if ((size_t)snprintf(path, bytes, "%.*s%s%s", len, dir, len ? "/" : "", name) < bytes) {
            struct stat st;
            if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0)
                return 0;
            if (errno == EACCES)
                err = EACCES;
        }
        if (dir[len] == '\0')
            return err;
    }
}

/* In the child, between fork and execve: async-signal-safe calls only.
 * out_fd (or -1) becomes its stdout. */
static void child_exec(const char *path, char *const argv[], char *const envp[], pid_t parent,
                       bool null_stdin, int out_fd, int report_fd)
{
    /* A job must not outlive its launcher, however the launcher dies
     * (SIGKILL included): the kernel sends mpirun SIGTERM then, and mpirun
     * ends its ranks on every host. It survives execve (mpirun is not
     * set-user-ID). */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
        goto fail;
    /* The launcher may have died before that: nobody would send it then. */
    if (getppid() != parent)
        _exit(128 + SIGTERM);
    /* Its own process group, so a late SIGKILL reaches every local process. */
    setpgid(0, 0);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    static const int defaults[] = {SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGPIPE};
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        sigaction(defaults[i], &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (null_stdin) {
        int fd = open("/dev/null", O_RDONLY);
        if (fd < 0 || dup2(fd, STDIN_FILENO) < 0)
            goto fail;
        close(fd);
    }
    if (out_fd >= 0 && dup2(out_fd, STDOUT_FILENO) < 0)
        goto fail;
    execve(path, argv, envp);
fail:;
    int e = errno;
    ssize_t put = write(report_fd, &e, sizeof e);
    (void)put;
    _exit(127);
}

/* Starts mpirun: fork, then child_exec (never a shell). The child's failure
 * to start comes back as its errno through a close-on-exec pipe: nothing
 * read means execve succeeded. 0, or RT_ESYS with errno set. */
static int spawn(char *const argv[], char *const envp[], int out_fd, pid_t *pid_out)
{
    char path[4096];
    int err = find_program(argv[0], path, sizeof path);
    int report[2];
    if (err == 0 && pipe2(report, O_CLOEXEC) != 0)
        err = errno;
    if (err != 0) {
        errno = err;
        return RT_ESYS;
    }
    /* In its own process group mpirun cannot read a terminal (it would be
     * stopped by SIGTTIN), so it reads /dev/null then; piped input passes. */
    bool null_stdin = isatty(STDIN_FILENO);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        child_exec(path, argv, envp, parent, null_stdin, out_fd, report[1]);
    err = pid < 0 ? errno : 0;
    close(report[1]);
    if (pid > 0) {
        setpgid(pid, pid); /* also here, so no later kill(-pid) can miss it */
        int child_errno = 0;
        ssize_t got;
        while ((got = read(report[0], &child_errno, sizeof child_errno)) < 0 && errno == EINTR) {
        }
        if (got == (ssize_t)sizeof child_errno) {
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
            }
            err = child_errno;
        }
    }
    close(report[0]);
    if (err != 0) {
        errno = err;
        return RT_ESYS;
    }
    *pid_out = pid;
    return 0;
}

void launch_run_opts_default(launch_run_opts_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->kill_grace_s = 5;
    opts->stop_signal = SIGUSR1;
}

/* mpirun's stdout, passed on as it comes and cut into lines for on_line
 * (a line longer than the buffer is passed on, not parsed). */
typedef struct {
    int fd;                 /* read end, -1 when closed */
    bool out_broken;        /* our stdout is gone: keep draining, stop writing */
    char line[4096];
    size_t used;
    bool overlong;
} relay_t;

static void relay_write(relay_t *r, const char *data, size_t bytes)
{
    while (bytes > 0 && !r->out_broken) {
        ssize_t put = write(STDOUT_FILENO, data, bytes);
        if (put < 0 && errno == EINTR)
            continue;
        if (put <= 0) {
            r->out_broken = true;
            break;
        }
        data += put;
        bytes -= (size_t)put;
    }
}

static void relay_lines(relay_t *r, const char *data, size_t bytes, const launch_run_opts_t *o)
{
    for (size_t i = 0; i < bytes; i++) {
        if (data[i] == '\n') {
            if (!r->overlong && o->on_line)
                o->on_line(o->ctx, r->line, r->used);
            r->used = 0;
            r->overlong = false;
        } else if (r->used + 1 < sizeof r->line) {
            r->line[r->used++] = data[i];
            r->line[r->used] = '\0';
        } else {
            r->overlong = true;
        }
    }
}

/* Reads what is there; closes the pipe at its end. */
static void relay_read(relay_t *r, const launch_run_opts_t *o)
{
    char buf[65536];
    ssize_t got = read(r->fd, buf, sizeof buf);
    if (got < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (got <= 0) {
        close(r->fd);
        r->fd = -1;
        return;
    }
    relay_write(r, buf, (size_t)got);
    relay_lines(r, buf, (size_t)got, o);
}

/* Where a stop stands: asked (stop_signal), then the signal itself, then
 * SIGKILL of the group. */
typedef struct {
    int forwarded;          /* the first signal the launcher got */
    bool stop_asked;        /* stop_signal sent */
    double stop_at;
    int hard_signal;        /* sent after the stop grace (or at once) */
    double hard_at;
    bool group_killed;
    bool resize;            /* the stop was tick's, not a signal's */
} stop_state_t;

static void send_hard(pid_t pid, stop_state_t *st, int sig)
{
    if (st->hard_signal)
        return;
    kill(pid, sig);
    st->hard_signal = sig;
    st->hard_at = rt_now();
}

/* A signal to the launcher: the first asks the job to stop (or goes to
 * mpirun as it is without a stop grace); a second one goes on at once. */
static void on_signal(pid_t pid, const launch_run_opts_t *o, stop_state_t *st, int sig)
{
    if (!st->forwarded)
        st->forwarded = sig;
    if (o->stop_grace_s > 0 && !st->stop_asked) {
        kill(pid, o->stop_signal);
        st->stop_asked = true;
        st->stop_at = rt_now();
        return;
    }
    if (st->hard_signal && st->hard_signal != sig)
        kill(pid, sig);
    send_hard(pid, st, sig);
}

/* Seconds until the next deadline of a stop in progress (or of the next
 * tick), acting on those already passed. */
static double stop_deadlines(pid_t pid, const launch_run_opts_t *o, stop_state_t *st,
                             double next_tick)
{
    double now = rt_now(), wait_s = 0.5;
    if (st->stop_asked && !st->hard_signal) {
        double left = st->stop_at + o->stop_grace_s - now;
        if (left <= 0)
            send_hard(pid, st, st->forwarded ? st->forwarded : SIGTERM);
        else if (left < wait_s)
            wait_s = left;
    }
    if (st->hard_signal && !st->group_killed) {
        double left = st->hard_at + o->kill_grace_s - now;
        if (left <= 0) {
            /* mpirun did not finish in time: end everything it started here. */
            kill(-pid, SIGKILL);
            st->group_killed = true;
        } else if (left < wait_s) {
            wait_s = left;
        }
    }
    if (o->tick && next_tick - now < wait_s)
        wait_s = next_tick > now ? next_tick - now : 0;
    return wait_s;
}

/* The signals a blocked sigfd reports: forward them. */
static void read_signals(int sigfd, pid_t pid, const launch_run_opts_t *o, stop_state_t *st)
{
    struct signalfd_siginfo si;
    while (read(sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        int sig = (int)si.ssi_signo;
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP)
            on_signal(pid, o, st, sig);
    }
}

/* Waits for mpirun, passing its stdout on, forwarding signals, asking for
 * a stop when tick says so, and escalating a stop that takes too long.
 * *status: waitpid's. */
static void supervise(pid_t pid, int sigfd, relay_t *relay, const launch_run_opts_t *o,
                      stop_state_t *st, int *status)
{
    double next_tick = rt_now() + o->tick_s;
    for (;;) {
        pid_t got = waitpid(pid, status, WNOHANG);
        if (got == pid)
            break;
        if (got < 0 && errno != EINTR) {
            *status = 1 << 8; /* lost the child: report failure */
            break;
        }
        if (o->tick && !st->stop_asked && !st->hard_signal && rt_now() >= next_tick) {
            if (o->tick(o->ctx) && !st->forwarded) {
                kill(pid, o->stop_signal);
                st->stop_asked = st->resize = true;
                st->stop_at = rt_now();
            }
            next_tick = rt_now() + o->tick_s;
        }
        double wait_s = stop_deadlines(pid, o, st, next_tick);
        struct pollfd fds[2] = {{.fd = sigfd, .events = POLLIN},
                                {.fd = relay->fd, .events = POLLIN}};
        if (poll(fds, relay->fd >= 0 ? 2 : 1, (int)(wait_s * 1000) + 1) <= 0)
            continue;
        if (fds[0].revents)
            read_signals(sigfd, pid, o, st);
        if (relay->fd >= 0 && fds[1].revents)
            relay_read(relay, o);
    }
    /* What mpirun wrote last; ranks it left behind must not hold us up. */
    double end = rt_now() + 1.0;
    while (relay->fd >= 0 && rt_now() < end) {
        struct pollfd fd = {.fd = relay->fd, .events = POLLIN};
        if (poll(&fd, 1, 100) > 0)
            relay_read(relay, o);
    }
}

int launch_run_ex(char *const argv[], char *const envp[], const launch_run_opts_t *opts,
                  launch_run_result_t *result)
{
    memset(result, 0, sizeof *result);
    /* Block the signals we forward (and SIGCHLD) before the spawn, so none is
     * lost between spawn and wait; the child gets them unblocked and at
     * their default action. They are read from a signalfd. */
    sigset_t watched, old;
    sigemptyset(&watched);
    sigaddset(&watched, SIGINT);
    sigaddset(&watched, SIGTERM);
    sigaddset(&watched, SIGHUP);
    sigaddset(&watched, SIGCHLD);
    struct sigaction dfl, ign, old_chld, old_pipe;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    ign = dfl;
    ign.sa_handler = SIG_IGN;
    sigaction(SIGCHLD, &dfl, &old_chld); /* an inherited SIG_IGN would auto-reap */
    sigaction(SIGPIPE, &ign, &old_pipe); /* a closed stdout must not kill the relay */
    sigprocmask(SIG_BLOCK, &watched, &old);
    int sigfd = signalfd(-1, &watched, SFD_NONBLOCK | SFD_CLOEXEC);
    int out[2] = {-1, -1};
    pid_t pid = -1;
    int rc = sigfd < 0 || (opts->on_line && pipe2(out, O_CLOEXEC) != 0) ? RT_ESYS : 0;
    if (rc == 0)
        rc = spawn(argv, envp, out[1], &pid);
    int err = errno;
    if (out[1] >= 0)
        close(out[1]);
    relay_t relay = {.fd = out[0]};
    stop_state_t st = {0};
    int status = 0;
    if (rc == 0) {
        supervise(pid, sigfd, &relay, opts, &st, &status);
        /* After a stop nothing of the job may outlive us. */
        if (st.forwarded || st.hard_signal)
            kill(-pid, SIGKILL);
        /* A signal that arrived as mpirun exited still means the job was
         * stopped; take it now, so unblocking does not kill us first. */
        struct signalfd_siginfo si;
        while (read(sigfd, &si, sizeof si) == (ssize_t)sizeof si)
            if (!st.forwarded && si.ssi_signo != SIGCHLD)
                st.forwarded = (int)si.ssi_signo;
    }
    if (relay.fd >= 0)
        close(relay.fd);
    if (sigfd >= 0)
        close(sigfd);
    sigprocmask(SIG_SETMASK, &old, NULL);
    sigaction(SIGCHLD, &old_chld, NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);
    if (rc != 0) {
        errno = err;
        return RT_ESYS;
    }
    result->exit_code = st.forwarded ? 128 + st.forwarded : rt_exit_code_of_status(status);
    result->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    result->forwarded = st.forwarded;
    result->resized = st.resize && !st.forwarded;
    return 0;
}

int launch_run(char *const argv[], char *const envp[], double kill_grace_s,
               launch_run_result_t *result)
{
    launch_run_opts_t opts;
    launch_run_opts_default(&opts);
    opts.kill_grace_s = kill_grace_s;
    return launch_run_ex(argv, envp, &opts, result);
}
