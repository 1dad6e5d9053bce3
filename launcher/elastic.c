/* Restarts and elastic world size: what a job's output says of its
 * progress (ringtrain-worker's "Resuming:", "Checkpoint:", "Stopped:" and
 * step lines), which of the hosts a relaunch takes, and the program's own
 * flags the launcher reads. */
#include "launcher.h"
#include "launcher_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

const char *launch_args_flag(const char *const *args, size_t count, const char *flag)
{
    const char *value = NULL;
    size_t flag_bytes = strlen(flag);
    for (size_t i = 0; i < count && args[i] != NULL; i++) {
        const char *a = args[i];
        /* absl flags take one dash or two. */
        if (strncmp(a, "--", 2) == 0)
            a += 2;
        else if (a[0] == '-')
            a += 1;
        else
            continue;
        if (strncmp(a, flag, flag_bytes) != 0)
            continue;
        if (a[flag_bytes] == '=')
            value = a + flag_bytes + 1;
        else if (a[flag_bytes] == '\0' && i + 1 < count && args[i + 1] != NULL)
            value = args[++i];
    }
    return value;
}

/* A whole number flag of the program, or fallback. */
static long args_long(const char *const *args, size_t count, const char *flag, long fallback)
{
    const char *v = launch_args_flag(args, count, flag);
    uint64_t u;
    return v != NULL && rt_parse_u64(v, 0, 1000000000000ULL, 0, &u) == 0 ? (long)u : fallback;
}

void launch_progress_init(launch_progress_t *p, const char *const *args, size_t count)
{
    memset(p, 0, sizeof *p);
    p->warmup = args_long(args, count, "num_warmup_batches", 10);
    p->display_every = args_long(args, count, "display_every", 10);
    p->checkpoint = -1;
    p->last_step = -1;
}

/* The number after prefix in line, or -1. */
static long number_after(const char *line, const char *prefix)
{
    const char *at = strstr(line, prefix);
    if (at == NULL)
        return -1;
    at += strlen(prefix);
    char *end;
    long v = strtol(at, &end, 10);
    return end == at || v < 0 ? -1 : v;
}

static void saw_step(launch_progress_t *p, long step, int exact)
{
    p->trained = 1;
    if (step > p->last_step) {
        p->last_step = step;
        p->last_exact = exact;
    } else if (step == p->last_step) {
        p->last_exact = p->last_exact || exact;
    }
}

void launch_progress_line(launch_progress_t *p, const char *line, size_t bytes)
{
    (void)bytes;
    long n;
    if (strncmp(line, "ringtrain:", 10) == 0) {
        p->started = 1;
    } else if (strncmp(line, "Resuming:", 9) == 0 && (n = number_after(line, "(step ")) >= 0) {
        p->resumed = n;
        p->checkpoint = n;
        if (n >= p->last_step) {
            p->last_step = n;
            p->last_exact = 1;
        }
    } else if (strncmp(line, "Checkpoint:", 11) == 0 &&
               (n = number_after(line, "step ")) >= 0) {
        if (n > p->checkpoint)
            p->checkpoint = n;
        saw_step(p, n, 1);
    } else if (strncmp(line, "Stopped:", 8) == 0 && (n = number_after(line, "after step ")) >= 0) {
        p->stopped = 1;
        if (strstr(line, "checkpoint") != NULL && strstr(line, "nothing saved") == NULL)
            p->checkpoint = n;
        saw_step(p, n, 1);
    } else if (line[0] >= '0' && line[0] <= '9' && strstr(line, "\timages/sec: ") != NULL) {
        /* tf_cnn_benchmarks' step lines count timed steps after the
         * original warm-up. */
        n = strtol(line, NULL, 10);
        saw_step(p, n + p->warmup, p->display_every == 1);
    }
}

void launch_progress_next_run(launch_progress_t *p)
{
    p->stopped = 0;
    p->trained = 0;
    p->started = 0;
    p->resumed = 0;
}

void launch_progress_describe(const launch_progress_t *p, char *out, size_t bytes)
{
    /* Before the run says where it resumed, the newest checkpoint it
     * reported: a write that finished unreported may be newer. */
    long from = p->started ? p->resumed : p->checkpoint > 0 ? p->checkpoint : 0;
    const char *verb = p->started ? "resumed from" : "resuming from";
    if (p->last_step < 0) {
        snprintf(out, bytes, "%s step %ld; steps lost unknown (the job showed no step)", verb,
                 from);
        return;
    }
    long lost = p->last_step > from ? p->last_step - from : 0;
    if (p->last_exact)
        snprintf(out, bytes, "%s step %ld, %ld step%s lost", verb, from, lost,
                 lost == 1 ? "" : "s");
    else
        snprintf(out, bytes, "%s step %ld, at least %ld step%s lost (step %ld was the last "
                 "shown; --display_every=%ld)", verb, from, lost, lost == 1 ? "" : "s",
                 p->last_step, p->display_every);
}

int launch_hosts_choose(const launch_hostlist_t *all, const unsigned char *up, uint64_t max_np,
                        launch_hostlist_t *chosen, uint64_t *np)
{
    memset(chosen, 0, sizeof *chosen);
    *np = 0;
    size_t count = 0;
    for (size_t i = 0; i < all->count; i++)
        count += up[i] != 0;
    chosen->hosts = calloc(count ? count : 1, sizeof *chosen->hosts);
    chosen->slots = calloc(count ? count : 1, sizeof *chosen->slots);
    if (chosen->hosts == NULL || chosen->slots == NULL) {
        launch_hostlist_free(chosen);
        return RT_ENOMEM;
    }
    chosen->mpi = all->mpi;
    chosen->first_is_local = all->first_is_local && all->count > 0 && up[0];
    uint64_t slots = 0;
    for (size_t i = 0; i < all->count && slots < max_np; i++) {
        if (!up[i])
            continue;
        chosen->hosts[chosen->count] = strdup(all->hosts[i]);
        if (chosen->hosts[chosen->count] == NULL) {
            launch_hostlist_free(chosen);
            return RT_ENOMEM;
        }
        chosen->slots[chosen->count++] = all->slots[i];
        slots += all->slots[i];
    }
    *np = slots < max_np ? slots : max_np;
    return 0;
}
