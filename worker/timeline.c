/* ringtrain worker: timeline recording and Chrome trace JSON output. */
#include "timeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"

int timeline_init(timeline_t *tl, size_t capacity, coll_comm_t *comm)
{
    memset(tl, 0, sizeof *tl);
    tl->events = calloc(capacity ? capacity : 1, sizeof *tl->events);
    if (!tl->events)
        return RT_ENOMEM;
    tl->capacity = capacity;
    int rc = coll_barrier(comm);
    tl->origin = rt_now();
    return rc;
}

void timeline_free(timeline_t *tl)
{
    if (!tl)
        return;
    free(tl->events);
    tl->events = NULL;
    tl->count = tl->capacity = 0;
}

void timeline_add(timeline_t *tl, tl_kind_t kind, int arg, double t0, double t1,
                  int64_t bytes, int algorithm)
{
    if (!tl || !tl->events)
        return;
    if (tl->count == tl->capacity) {
        tl->dropped++;
        return;
    }
    tl_event_t *e = &tl->events[tl->count++];
    e->t0 = t0 - tl->origin;
    e->t1 = t1 - tl->origin;
    e->kind = kind;
    e->arg = arg;
    e->step = tl->step;
    e->bytes = bytes;
    e->algorithm = algorithm;
}

static const char *const kind_names[TL_KIND_COUNT] = {
    "forward", "backward", "loss", "optimizer", "wait", "ready", "allreduce", "step",
    "checkpoint"};

/* JSON-safe copy of a short name (ours contain no quotes; be safe anyway). */
static void put_name(FILE *f, const char *s)
{
    for (; *s; s++)
        if (*s != '"' && *s != '\\' && (unsigned char)*s >= 0x20)
            fputc(*s, f);
}

static void write_event(FILE *f, int rank, const tl_event_t *e,
                        const timeline_names_t *names, int *first)
{
    int comm_thread = e->kind == TL_ALLREDUCE;
    fprintf(f, "%s\n{\"name\":\"", *first ? "" : ",");
    *first = 0;
    switch (e->kind) {
    case TL_FORWARD:
    case TL_BACKWARD:
        fprintf(f, "%s ", kind_names[e->kind]);
        if (e->arg >= 0 && e->arg < names->node_count)
            put_name(f, names->node_names[e->arg]);
        break;
    case TL_READY:
        fprintf(f, "bucket %d ready", e->arg + 1);
        break;
    case TL_ALLREDUCE:
        fprintf(f, "allreduce bucket %d", e->arg + 1);
        break;
    default:
        fprintf(f, "%s", kind_names[e->kind]);
        break;
    }
    fprintf(f, "\",\"cat\":\"%s\",\"pid\":%d,\"tid\":%d,\"ts\":%.3f,", kind_names[e->kind],
            rank, comm_thread, e->t0 * 1e6);
    if (e->kind == TL_READY)
        fprintf(f, "\"ph\":\"i\",\"s\":\"t\",");
    else
        fprintf(f, "\"ph\":\"X\",\"dur\":%.3f,", (e->t1 - e->t0) * 1e6);
    fprintf(f, "\"args\":{\"step\":%lld", (long long)e->step);
    if (e->kind == TL_FORWARD || e->kind == TL_BACKWARD)
        fprintf(f, ",\"node\":%d", e->arg);
    if (e->kind == TL_READY || e->kind == TL_ALLREDUCE) {
        fprintf(f, ",\"bucket\":%d,\"bytes\":%lld", e->arg + 1, (long long)e->bytes);
        if (names->algorithms && e->algorithm >= 0) {
            fprintf(f, ",\"algorithm\":\"");
            put_name(f, names->algorithms[e->algorithm]);
            fputc('"', f);
        }
    }
    fprintf(f, "}}");
}

static void write_rank(FILE *f, int rank, const tl_event_t *events, size_t count,
                       const timeline_names_t *names, int *first)
{
    fprintf(f, "%s\n{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"args\":{\"name\":\"rank %d\"}}",
            *first ? "" : ",", rank, rank);
    fprintf(f, ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,\"args\":{\"name\":\"compute\"}}", rank);
    fprintf(f, ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":1,\"args\":{\"name\":\"communication\"}}", rank);
    *first = 0;
    for (size_t i = 0; i < count; i++)
        write_event(f, rank, &events[i], names, first);
}

int timeline_write(timeline_t *tl, coll_comm_t *comm, const char *path,
                   const timeline_names_t *names)
{
    int rank = coll_comm_rank(comm), size = coll_comm_size(comm);
    FILE *f = NULL;
    char tmp[1200];
    if (rank == 0) {
        snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
        f = fopen(tmp, "w");
        if (!f)
            fprintf(stderr, "ringtrain-worker: error: --timeline=%s: cannot create %s\n", path, tmp);
    }
    /* Every rank learns whether rank 0 can write, so all stop together. */
    double ok = f || rank != 0 ? 1 : 0;
    int rc = coll_allreduce_f64_min(comm, &ok, 1);
    if (rc || !ok) {
        if (f)
            fclose(f);
        return rc ? rc : RT_EIO;
    }
    int first = 1;
    if (rank == 0) {
        fprintf(f, "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[");
        write_rank(f, 0, tl->events, tl->count, names, &first);
    }
    /* Rank r's events reach rank 0 by two broadcasts from r. */
    for (int r = 1; r < size && rc == 0; r++) {
        double count = rank == r ? (double)tl->count : 0;
        rc = coll_broadcast(comm, &count, sizeof count, r);
        if (rc)
            break;
        size_t n = (size_t)count;
        tl_event_t *buf = rank == r ? tl->events : malloc((n ? n : 1) * sizeof *buf);
        if (!buf) {
            rc = RT_ENOMEM;
            break;
        }
        rc = coll_broadcast(comm, buf, n * sizeof *buf, r);
        if (rc == 0 && rank == 0)
            write_rank(f, r, buf, n, names, &first);
        if (buf != tl->events)
            free(buf);
    }
    if (rank == 0) {
        fprintf(f, "\n],\"otherData\":{\"generator\":\"ringtrain-worker\",\"ranks\":%d}}\n", size);
        int bad = ferror(f) != 0;
        bad |= fclose(f) != 0;
        if (rc == 0 && (bad || rename(tmp, path) != 0)) {
            fprintf(stderr, "ringtrain-worker: error: --timeline=%s: cannot write the file\n", path);
            rc = RT_EIO;
        }
        if (rc)
            unlink(tmp);
        if (tl->dropped)
            rt_log_warn("timeline: %zu events did not fit and were dropped", tl->dropped);
    }
    return rc;
}
