/* ringtrain-init: PID 1 of a worker container (deploy/entrypoint-worker.sh
 * execs it in front of sshd). Without it sshd is PID 1, and when the pod is
 * stopped (kubelet, Kueue suspend, node drain: SIGTERM, then SIGKILL after
 * the grace period) sshd exits at once and the kernel SIGKILLs every other
 * process of the container with it: the ranks never see the SIGTERM.
 *
 * What it does, like tini or catatonit but for a whole process tree:
 *   - runs PROGRAM as its child and reaps every process that ends up as its
 *     child (orphans are reparented to PID 1, or to us as child subreaper);
 *   - on SIGTERM, SIGINT or SIGHUP sends that signal to every descendant
 *     (ranks live in sessions of their own, so signalling a process group
 *     would miss them), from the leaves up: first to the processes that have
 *     no child of their own (the ranks), and to the rest (sshd, its sessions,
 *     orted, a wrapper script) once those have ended: the ranks' output and
 *     exit status reach mpirun over sshd, and a rank that writes a
 *     checkpoint talks to the ranks of other pods while it does. A repeated
 *     signal goes to every process at once. It then waits until all have
 *     ended and exits 128+signal. The pod's grace period bounds that wait:
 *     the runtime SIGKILLs what is left at its end;
 *   - when PROGRAM ends on its own, sends SIGTERM to what is left, SIGKILL
 *     after --grace seconds, and exits with PROGRAM's status.
 * It writes one line to stderr (the container log) when it forwards a stop
 * signal and one when the last process has ended.
 *   ringtrain-init [--grace S] -- PROGRAM [ARGS...]
 * Exit status: PROGRAM's (128+N when signal N ended it), 128+N when it was
 * stopped by signal N, 2 for bad usage, 1 when PROGRAM cannot be started. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"

#define PROG "ringtrain-init"

extern char **environ;

static int usage(const char *problem)
{
    fprintf(stderr,
            PROG ": error: %s\n"
            "usage: " PROG " [--grace S] -- PROGRAM [ARGS...]\n"
            "  --grace S   when PROGRAM ends on its own, seconds the processes it leaves\n"
            "              get between SIGTERM and SIGKILL (default 10)\n",
            problem);
    return 2;
}

/* The state letter and parent pid of pid from /proc/<pid>/stat; false when
 * it is gone. The command name (field 2) may hold spaces and parentheses:
 * read after the last ')'. */
static bool read_stat(pid_t pid, char *state, pid_t *ppid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[got] = '\0';
    const char *end = strrchr(buf, ')');
    int parent;
    if (end == NULL || sscanf(end + 1, " %c %d", state, &parent) != 2)
        return false;
    *ppid = (pid_t)parent;
    return true;
}

/* One process of the /proc scan: its pid, its parent's, and whether it is
 * known to descend from us. */
struct proc_link {
    pid_t pid, ppid;
    bool ours;
};

/* Every process in /proc but us, into *out (malloc'd); returns the count,
 * or -1 when /proc cannot be read. */
static long list_processes(struct proc_link **out)
{
    size_t cap = 256, count = 0;
    struct proc_link *procs = malloc(cap * sizeof *procs);
    DIR *dir = opendir("/proc");
    if (procs == NULL || dir == NULL) {
        free(procs);
        if (dir != NULL)
            closedir(dir);
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        char *endp;
        long pid = strtol(e->d_name, &endp, 10);
        if (*endp != '\0' || pid <= 0 || pid == (long)getpid())
            continue;
        char state;
        pid_t ppid;
        if (!read_stat((pid_t)pid, &state, &ppid))
            continue;
        if (count == cap) {
            struct proc_link *more = realloc(procs, 2 * cap * sizeof *procs);
            if (more == NULL)
                break;
            procs = more;
            cap *= 2;
        }
        procs[count++] = (struct proc_link){(pid_t)pid, ppid, false};
    }
    closedir(dir);
    *out = procs;
    return (long)count;
}

/* Marks the processes that descend from this one. Descendants are found by
 * following parent links from us until no new one turns up (the list comes
 * in any order). */
static void mark_descendants(struct proc_link *procs, long count)
{
    pid_t self = getpid();
    bool grew = true;
    while (grew) {
        grew = false;
        for (long i = 0; i < count; i++) {
            if (procs[i].ours)
                continue;
            bool ours = procs[i].ppid == self;
            for (long j = 0; j < count && !ours; j++)
                ours = procs[j].ours && procs[j].pid == procs[i].ppid;
            if (ours) {
                procs[i].ours = true;
                grew = true;
            }
        }
    }
}

static bool has_child(const struct proc_link *procs, long count, pid_t pid)
{
    for (long i = 0; i < count; i++)
        if (procs[i].ppid == pid)
            return true;
    return false;
}

/* The first wave of a stop: the pids it was sent to, until they have ended. */
#define WAVE_MAX 4096
struct wave {
    pid_t pid[WAVE_MAX];
    int count;
};

/* Sends sig to every descendant of this process, or with leaves set only to
 * those that have no child of their own, noting them in leaves; returns how
 * many were signalled. */
static int signal_descendants(int sig, struct wave *leaves)
{
    struct proc_link *procs;
    long count = list_processes(&procs);
    if (count < 0)
        return 0;
    mark_descendants(procs, count);
    int signalled = 0;
    for (long i = 0; i < count; i++) {
        if (!procs[i].ours || (leaves != NULL && has_child(procs, count, procs[i].pid)))
            continue;
        if (kill(procs[i].pid, sig) != 0)
            continue;
        signalled++;
        if (leaves != NULL && leaves->count < WAVE_MAX)
            leaves->pid[leaves->count++] = procs[i].pid;
    }
    free(procs);
    return signalled;
}

/* Drops the pids of w that have ended (a zombie has: its parent, orted for
 * a rank, may be busy before it reaps); true while any is left. */
static bool wave_running(struct wave *w)
{
    int kept = 0;
    for (int i = 0; i < w->count; i++) {
        char state;
        pid_t ppid;
        if (read_stat(w->pid[i], &state, &ppid) && state != 'Z')
            w->pid[kept++] = w->pid[i];
    }
    w->count = kept;
    return kept > 0;
}

/* A stop in progress: its signal, when it came, and the leaves it went to
 * first while the rest wait for them. */
struct stop {
    int sig;
    double at;
    bool rest_pending;
    struct wave leaves;
};

static void stop_begin(struct stop *st, int sig)
{
    if (st->sig != 0) {
        /* Repeated: every process at once, also one started since. */
        signal_descendants(sig, NULL);
        st->rest_pending = false;
        return;
    }
    st->sig = sig;
    st->at = rt_now();
    st->rest_pending = true;
    int count = signal_descendants(sig, &st->leaves);
    fprintf(stderr,
            PROG ": SIG%s: forwarded to %d processes without children of their own (the rest "
            "get it when those have ended); waiting for them to end\n",
            sigabbrev_np(sig), count);
}

/* Once the first wave has ended, the signal goes to everything left. */
static void stop_progress(struct stop *st)
{
    if (!st->rest_pending || wave_running(&st->leaves))
        return;
    st->rest_pending = false;
    int count = signal_descendants(st->sig, NULL);
    if (count > 0)
        fprintf(stderr, PROG ": SIG%s: forwarded to the %d processes left, %.1f s after it came\n",
                sigabbrev_np(st->sig), count, rt_now() - st->at);
}

/* Reaps every child that has ended; true when none is left. Records the
 * status of main_pid when it is among them. */
static bool reap(pid_t main_pid, bool *main_done, int *main_status)
{
    for (;;) {
        int status;
        pid_t got = waitpid(-1, &status, WNOHANG);
        if (got == main_pid) {
            *main_done = true;
            *main_status = status;
        } else if (got == 0) {
            return false;
        } else if (got < 0) {
            return errno == ECHILD;
        }
    }
}

static pid_t spawn(char *const argv[], const sigset_t *forwarded)
{
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, forwarded);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = -1;
    int err = posix_spawnp(&pid, argv[0], NULL, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    if (err != 0) {
        fprintf(stderr, PROG ": error: cannot run %s: %s; check the container's command\n",
                argv[0], strerror(err));
        return -1;
    }
    return pid;
}

int main(int argc, char **argv)
{
    double grace_s = 10;
    int i = 1;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--grace") == 0 && i + 1 < argc) {
            if (rt_parse_double(argv[++i], 0, 3600, &grace_s) != 0)
                return usage("--grace: give 0..3600 seconds");
        } else {
            return usage("unknown option (the program goes after --)");
        }
    }
    if (i + 1 >= argc)
        return usage("no PROGRAM after --");

    /* As a child subreaper, orphans come to us even when we are not PID 1. */
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    sigset_t watched, forwarded;
    sigemptyset(&forwarded);
    sigaddset(&forwarded, SIGTERM);
    sigaddset(&forwarded, SIGINT);
    sigaddset(&forwarded, SIGHUP);
    watched = forwarded;
    sigaddset(&watched, SIGCHLD);
    sigprocmask(SIG_BLOCK, &watched, NULL);
    pid_t main_pid = spawn(argv + i + 1, &watched);
    if (main_pid < 0)
        return 1;

    static struct stop stop;
    bool main_done = false, all_done = false;
    int main_status = 0;
    double deadline = 0;
    while (!all_done) {
        struct timespec tick = {0, 200 * 1000 * 1000};
        int sig = sigtimedwait(&watched, NULL, &tick);
        if (sig > 0 && sig != SIGCHLD)
            stop_begin(&stop, sig);
        bool had_main = main_done;
        all_done = reap(main_pid, &main_done, &main_status);
        if (!all_done)
            stop_progress(&stop);
        if (main_done && !had_main && stop.sig == 0 && !all_done) {
            /* PROGRAM ended by itself: what it leaves gets the grace period. */
            signal_descendants(SIGTERM, NULL);
            deadline = rt_now() + grace_s;
        }
        if (deadline > 0 && rt_now() >= deadline && !all_done) {
            signal_descendants(SIGKILL, NULL);
            deadline = 0;
        }
    }
    int code = stop.sig ? 128 + stop.sig : rt_exit_code_of_status(main_status);
    if (stop.sig)
        fprintf(stderr, PROG ": every process ended %.1f s after SIG%s; exit status %d\n",
                rt_now() - stop.at, sigabbrev_np(stop.sig), code);
    return code;
}
