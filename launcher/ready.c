/* Readiness: a worker is ready when its name resolves and its ssh port
 * accepts a TCP connection. This is what mpirun needs before it can start
 * orted over ssh; launching earlier is the classic "Could not resolve
 * hostname" / CrashLoopBackOff of mpi-operator launchers. Each host is
 * retried with exponential backoff (0.1 s, 0.2 s, … capped) until an overall
 * deadline; a few threads share the hosts so one slow resolver does not hold
 * up the rest. At the deadline each missing host keeps the reason of its
 * last attempt. */
#include "launcher.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"

void launch_wait_opts_default(launch_wait_opts_t *opts)
{
    opts->port = 22;
    opts->timeout_s = 300.0;
    opts->backoff_start_s = 0.1;
    opts->backoff_max_s = 5.0;
    opts->connect_timeout_s = 1.0;
    opts->threads = 0;
}

const char *launch_host_state_text(launch_host_state_t state)
{
    switch (state) {
    case LAUNCH_HOST_PENDING:
        return "not tried";
    case LAUNCH_HOST_READY:
        return "ready";
    case LAUNCH_HOST_NO_DNS:
        return "no DNS";
    case LAUNCH_HOST_REFUSED:
        return "refused";
    case LAUNCH_HOST_TIMED_OUT:
        return "timed out";
    case LAUNCH_HOST_UNREACHABLE:
        return "unreachable";
    }
    return "?";
}

/* One non-blocking connect with a time limit. Returns the state and sets
 * *detail to the errno of a failure. */
static launch_host_state_t try_connect(const struct addrinfo *ai, double limit_s, int *detail)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
    if (fd < 0) {
        *detail = errno;
        return LAUNCH_HOST_UNREACHABLE;
    }
    launch_host_state_t state = LAUNCH_HOST_READY;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            *detail = errno;
            state = errno == ECONNREFUSED ? LAUNCH_HOST_REFUSED
                    : errno == ETIMEDOUT  ? LAUNCH_HOST_TIMED_OUT
                                          : LAUNCH_HOST_UNREACHABLE;
        } else {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int ms = (int)(limit_s * 1000.0);
            int got;
            do {
                got = poll(&pfd, 1, ms > 0 ? ms : 1);
            } while (got < 0 && errno == EINTR);
            if (got == 0) {
                *detail = ETIMEDOUT;
                state = LAUNCH_HOST_TIMED_OUT;
            } else {
                int so = 0;
                socklen_t len = sizeof so;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &len) != 0)
                    so = errno;
                if (so != 0) {
                    *detail = so;
                    state = so == ECONNREFUSED ? LAUNCH_HOST_REFUSED
                            : so == ETIMEDOUT  ? LAUNCH_HOST_TIMED_OUT
                                               : LAUNCH_HOST_UNREACHABLE;
                }
            }
        }
    }
    close(fd);
    return state;
}

/* One readiness attempt for one host: resolve, then try each address. */
static void host_try(launch_host_status_t *h, const launch_wait_opts_t *opts, double remaining_s)
{
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)opts->port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    struct addrinfo *res = NULL;
    h->attempts++;
    int gai = getaddrinfo(h->host, port, &hints, &res);
    if (gai != 0) {
        h->state = LAUNCH_HOST_NO_DNS;
        h->detail = gai;
        return;
    }
    double limit = opts->connect_timeout_s < remaining_s ? opts->connect_timeout_s : remaining_s;
    if (limit < 0.01)
        limit = 0.01;
    launch_host_state_t state = LAUNCH_HOST_UNREACHABLE;
    int detail = 0;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        state = try_connect(ai, limit, &detail);
        if (state == LAUNCH_HOST_READY)
            break;
    }
    freeaddrinfo(res);
    h->state = state;
    h->detail = state == LAUNCH_HOST_READY ? 0 : detail;
}

typedef struct {
    launch_host_status_t *hosts;
    size_t count;
    size_t first;  /* this thread owns hosts first, first+stride, … */
    size_t stride;
    const launch_wait_opts_t *opts;
    double start;
    double deadline;
} waiter_t;

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void *waiter_main(void *arg)
{
    waiter_t *w = arg;
    size_t mine = w->count > w->first ? (w->count - w->first + w->stride - 1) / w->stride : 0;
    if (mine == 0)
        return NULL;
    /* Per-host next attempt time and current backoff. */
    double *next = calloc(mine, sizeof *next);
    double *delay = calloc(mine, sizeof *delay);
    if (next == NULL || delay == NULL) {
        free(next);
        free(delay);
        return (void *)1;
    }
    for (size_t k = 0; k < mine; k++) {
        next[k] = w->start;
        delay[k] = w->opts->backoff_start_s;
    }
    for (;;) {
        double now = rt_now();
        double soonest = w->deadline;
        size_t pending = 0;
        for (size_t k = 0; k < mine; k++) {
            launch_host_status_t *h = &w->hosts[w->first + k * w->stride];
            if (h->state == LAUNCH_HOST_READY)
                continue;
            pending++;
            /* Past the deadline only a host never tried gets its one try. */
            if (now >= w->deadline && h->attempts > 0)
                continue;
            if (next[k] <= now || h->attempts == 0) {
                host_try(h, w->opts, w->deadline - now);
                now = rt_now();
                if (h->state == LAUNCH_HOST_READY) {
                    h->ready_after_s = now - w->start;
                    pending--;
                    continue;
                }
                next[k] = now + delay[k];
                delay[k] *= 2.0;
                if (delay[k] > w->opts->backoff_max_s)
                    delay[k] = w->opts->backoff_max_s;
            }
            if (next[k] < soonest)
                soonest = next[k];
        }
        if (pending == 0 || now >= w->deadline)
            break;
        double nap = (soonest < w->deadline ? soonest : w->deadline) - rt_now();
        sleep_s(nap);
    }
    free(next);
    free(delay);
    return NULL;
}

int launch_hosts_wait(launch_host_status_t *hosts, size_t count, const launch_wait_opts_t *opts_in)
{
    launch_wait_opts_t opts;
    if (opts_in != NULL)
        opts = *opts_in;
    else
        launch_wait_opts_default(&opts);
    if (opts.backoff_start_s <= 0)
        opts.backoff_start_s = 0.1;
    if (opts.backoff_max_s < opts.backoff_start_s)
        opts.backoff_max_s = opts.backoff_start_s;
    if (opts.connect_timeout_s <= 0)
        opts.connect_timeout_s = 1.0;
    for (size_t i = 0; i < count; i++) {
        hosts[i].state = LAUNCH_HOST_PENDING;
        hosts[i].detail = 0;
        hosts[i].attempts = 0;
        hosts[i].ready_after_s = 0;
    }
    if (count == 0)
        return 0;
    size_t threads = opts.threads ? opts.threads : 16;
    if (threads > count)
        threads = count;
    double start = rt_now();
    waiter_t *w = calloc(threads, sizeof *w);
    pthread_t *tids = calloc(threads, sizeof *tids);
    unsigned char *started = calloc(threads, 1);
    if (w == NULL || tids == NULL || started == NULL) {
        free(w);
        free(tids);
        free(started);
        return RT_ENOMEM;
    }
    int rc = 0;
    for (size_t t = 0; t < threads; t++) {
        w[t] = (waiter_t){.hosts = hosts, .count = count, .first = t, .stride = threads,
                          .opts = &opts, .start = start, .deadline = start + opts.timeout_s};
        /* The calling thread takes slice 0; a failed thread start falls back
         * to running that slice here afterwards. */
        if (t > 0 && pthread_create(&tids[t], NULL, waiter_main, &w[t]) == 0)
            started[t] = 1;
    }
    if (waiter_main(&w[0]) != NULL)
        rc = RT_ENOMEM;
    for (size_t t = 1; t < threads; t++) {
        void *ret = NULL;
        if (started[t])
            pthread_join(tids[t], &ret);
        else
            ret = waiter_main(&w[t]);
        if (ret != NULL)
            rc = RT_ENOMEM;
    }
    free(w);
    free(tids);
    free(started);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < count; i++)
        if (hosts[i].state != LAUNCH_HOST_READY)
            return RT_ETIMEDOUT;
    return 0;
}
