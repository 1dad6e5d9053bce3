/* Running the job: the environment mpi-operator gives a launcher, the
 * variables forwarded to every rank, the mpirun argv for Open MPI or a hydra
 * mpirun (Intel MPI, MPICH), and the spawn itself: fork and execve, never a
 * shell, mpirun in its own process group so a late SIGKILL reaches every
 * local process, with a parent-death signal so it never outlives the
 * launcher, SIGINT/SIGTERM/SIGHUP forwarded, and the exit status passed on
 * (128+signal when a signal ended the job). */
#include "launcher.h"
#include "launcher_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
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

/* In the child, between fork and execve: async-signal-safe calls only. */
static void child_exec(const char *path, char *const argv[], char *const envp[], pid_t parent,
                       bool null_stdin, int report_fd)
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
static int spawn(char *const argv[], char *const envp[], pid_t *pid_out)
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
        child_exec(path, argv, envp, parent, null_stdin, report[1]);
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

/* Waits for mpirun, forwarding SIGINT/SIGTERM/SIGHUP (blocked in watched),
 * and SIGKILLs its process group kill_grace_s after the first forwarded
 * one. *status: waitpid's; returns the first forwarded signal, or 0. */
static int supervise(pid_t pid, const sigset_t *watched, double kill_grace_s, int *status)
{
    int forwarded = 0;
    double forwarded_at = 0;
    bool group_killed = false;
    for (;;) {
        pid_t got = waitpid(pid, status, WNOHANG);
        if (got == pid)
            break;
        if (got < 0 && errno != EINTR) {
            *status = 1 << 8; /* lost the child: report failure */
            break;
        }
        double wait_s = 0.5;
        if (forwarded && !group_killed) {
            double left = forwarded_at + kill_grace_s - rt_now();
            if (left <= 0) {
                /* mpirun did not finish in time: end everything it started here. */
                kill(-pid, SIGKILL);
                group_killed = true;
                continue;
            }
            if (left < wait_s)
                wait_s = left;
        }
        struct timespec ts = {.tv_sec = (time_t)wait_s,
                              .tv_nsec = (long)((wait_s - (double)(time_t)wait_s) * 1e9)};
        siginfo_t info;
        int sig = sigtimedwait(watched, &info, &ts);
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
            kill(pid, sig);
            if (!forwarded) {
                forwarded = sig;
                forwarded_at = rt_now();
            }
        }
    }
    return forwarded;
}

int launch_run(char *const argv[], char *const envp[], double kill_grace_s,
               launch_run_result_t *result)
{
    memset(result, 0, sizeof *result);
    /* Block the signals we forward (and SIGCHLD) before the spawn, so none is
     * lost between spawn and wait; the child gets them unblocked and at
     * their default action. */
    sigset_t watched, old;
    sigemptyset(&watched);
    sigaddset(&watched, SIGINT);
    sigaddset(&watched, SIGTERM);
    sigaddset(&watched, SIGHUP);
    sigaddset(&watched, SIGCHLD);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    struct sigaction old_chld;
    sigaction(SIGCHLD, &dfl, &old_chld); /* an inherited SIG_IGN would auto-reap */
    sigprocmask(SIG_BLOCK, &watched, &old);

    pid_t pid = -1;
    if (spawn(argv, envp, &pid) != 0) {
        int err = errno;
        sigprocmask(SIG_SETMASK, &old, NULL);
        sigaction(SIGCHLD, &old_chld, NULL);
        errno = err;
        return RT_ESYS;
    }
    int status = 0;
    int forwarded = supervise(pid, &watched, kill_grace_s, &status);
    /* After a forwarded signal nothing of the job may outlive us. */
    if (forwarded)
        kill(-pid, SIGKILL);
    /* A signal that arrived as mpirun exited still means the job was stopped;
     * take it now, so unblocking does not kill us before we report. */
    struct timespec zero = {0, 0};
    siginfo_t info;
    int sig;
    while ((sig = sigtimedwait(&watched, &info, &zero)) > 0)
        if (!forwarded && sig != SIGCHLD)
            forwarded = sig;
    sigprocmask(SIG_SETMASK, &old, NULL);
    sigaction(SIGCHLD, &old_chld, NULL);
    result->exit_code = forwarded ? 128 + forwarded : rt_exit_code_of_status(status);
    result->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    result->forwarded = forwarded;
    return 0;
}
