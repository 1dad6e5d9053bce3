/* ringtrain worker: timeline recording and Chrome trace JSON output. The
 * events travel to rank 0 only, one rank at a time, and rank 0 streams the
 * file through the atomic writer of common/files.c. */
#include "timeline.h"

#include <stdarg.h>
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

/* Buffered output into the atomic writer: the file is formatted piece by
 * piece, never held whole (a timeline can hold millions of events). */
typedef struct {
    rt_atomic_file_t file;
    int rc;              /* the first failure; later output is dropped */
    char err[1536];
    size_t used;
    char buf[16384];
} tl_out_t;

static void out_flush(tl_out_t *o)
{
    if (!o->rc && o->used)
        o->rc = rt_atomic_write(&o->file, o->buf, o->used, o->err, sizeof o->err);
    o->used = 0;
}

static void out_printf(tl_out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void out_printf(tl_out_t *o, const char *fmt, ...)
{
    /* A piece that does not fit is formatted again into the flushed buffer. */
    for (int attempt = 0; attempt < 2 && !o->rc; attempt++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->used, sizeof o->buf - o->used, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < sizeof o->buf - o->used) {
            o->used += (size_t)n;
            return;
        }
        out_flush(o);
    }
    if (!o->rc) {
        snprintf(o->err, sizeof o->err, "a timeline entry does not fit in %zu bytes",
                 sizeof o->buf);
        o->rc = RT_EINVAL;
    }
}

/* JSON-safe copy of a short name (ours contain no quotes; be safe anyway). */
static const char *json_name(const char *s, char *out, size_t bytes)
{
    size_t k = 0;
    for (; *s && k + 1 < bytes; s++)
        if (*s != '"' && *s != '\\' && (unsigned char)*s >= 0x20)
            out[k++] = *s;
    out[k] = '\0';
    return out;
}

static void write_event(tl_out_t *o, int rank, const tl_event_t *e,
                        const timeline_names_t *names, int *first)
{
    int comm_thread = e->kind == TL_ALLREDUCE;
    char name[128];
    out_printf(o, "%s\n{\"name\":\"", *first ? "" : ",");
    *first = 0;
    switch (e->kind) {
    case TL_FORWARD:
    case TL_BACKWARD:
        out_printf(o, "%s ", kind_names[e->kind]);
        if (e->arg >= 0 && e->arg < names->node_count)
            out_printf(o, "%s", json_name(names->node_names[e->arg], name, sizeof name));
        break;
    case TL_READY:
        out_printf(o, "bucket %d ready", e->arg + 1);
        break;
    case TL_ALLREDUCE:
        out_printf(o, "allreduce bucket %d", e->arg + 1);
        break;
    default:
        out_printf(o, "%s", kind_names[e->kind]);
        break;
    }
    out_printf(o, "\",\"cat\":\"%s\",\"pid\":%d,\"tid\":%d,\"ts\":%.3f,", kind_names[e->kind],
               rank, comm_thread, e->t0 * 1e6);
    if (e->kind == TL_READY)
        out_printf(o, "\"ph\":\"i\",\"s\":\"t\",");
    else
        out_printf(o, "\"ph\":\"X\",\"dur\":%.3f,", (e->t1 - e->t0) * 1e6);
    out_printf(o, "\"args\":{\"step\":%lld", (long long)e->step);
    if (e->kind == TL_FORWARD || e->kind == TL_BACKWARD)
        out_printf(o, ",\"node\":%d", e->arg);
    if (e->kind == TL_READY || e->kind == TL_ALLREDUCE) {
        out_printf(o, ",\"bucket\":%d,\"bytes\":%lld", e->arg + 1, (long long)e->bytes);
        if (names->algorithms && e->algorithm >= 0)
            out_printf(o, ",\"algorithm\":\"%s\"",
                       json_name(names->algorithms[e->algorithm], name, sizeof name));
    }
    out_printf(o, "}}");
}

static void write_rank(tl_out_t *o, int rank, const tl_event_t *events, size_t count,
                       const timeline_names_t *names, int *first)
{
    out_printf(o, "%s\n{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"args\":{\"name\":\"rank %d\"}}",
               *first ? "" : ",", rank, rank);
    out_printf(o, ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,\"args\":{\"name\":\"compute\"}}", rank);
    out_printf(o, ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":1,\"args\":{\"name\":\"communication\"}}", rank);
    *first = 0;
    for (size_t i = 0; i < count; i++)
        write_event(o, rank, &events[i], names, first);
}

/* What a rank tells rank 0 before its events. */
typedef struct {
    uint64_t count, dropped;
} tl_counts_t;

/* A rank other than 0: its counts, then its events, to rank 0 only. */
static int send_events(const timeline_t *tl, coll_comm_t *comm)
{
    tl_counts_t n = {tl->count, tl->dropped};
    coll_msg_t head = {&n, sizeof n, 0};
    int rc = coll_exchange(comm, &head, 1, NULL, 0);
    coll_msg_t body = {tl->events, tl->count * sizeof *tl->events, 0};
    return rc ? rc : coll_exchange(comm, &body, 1, NULL, 0);
}

/* Rank 0: rank r's events into tl's own buffer (its events are written
 * already), then into the file. Every rank's buffer has the same capacity
 * (made from the same agreed settings), so no allocation is needed. */
static int receive_rank(timeline_t *tl, coll_comm_t *comm, int r, tl_out_t *out,
                        const timeline_names_t *names, int *first, uint64_t *dropped)
{
    tl_counts_t n = {0, 0};
    coll_msg_t head = {&n, sizeof n, r};
    int rc = coll_exchange(comm, NULL, 0, &head, 1);
    if (rc)
        return rc;
    if (n.count > tl->capacity) {
        fprintf(stderr, "ringtrain-worker: error: --timeline: rank %d recorded %llu events, "
                        "more than the %zu every rank has room for; aborting the job\n",
                r, (unsigned long long)n.count, tl->capacity);
        coll_abort(comm, 1);
        return RT_EINVAL;
    }
    coll_msg_t body = {tl->events, (size_t)n.count * sizeof *tl->events, r};
    rc = coll_exchange(comm, NULL, 0, &body, 1);
    if (rc)
        return rc;
    tl->count = (size_t)n.count;
    *dropped += n.dropped;
    write_rank(out, r, tl->events, tl->count, names, first);
    return 0;
}

/* Rank 0: the whole file. Every rank's events are received even when the
 * file cannot be written, so no rank is left waiting to send. */
static int write_file(timeline_t *tl, coll_comm_t *comm, const char *path,
                      const timeline_names_t *names, tl_out_t *out)
{
    int size = coll_comm_size(comm);
    out->used = 0;
    out->rc = rt_atomic_open(&out->file, path, 0644, out->err, sizeof out->err);
    uint64_t dropped = tl->dropped;
    int first = 1;
    out_printf(out, "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[");
    write_rank(out, 0, tl->events, tl->count, names, &first);
    int rc = 0;
    for (int r = 1; r < size && rc == 0; r++)
        rc = receive_rank(tl, comm, r, out, names, &first, &dropped);
    out_printf(out, "\n],\"otherData\":{\"generator\":\"ringtrain-worker\",\"ranks\":%d}}\n", size);
    out_flush(out);
    if (out->file.fd >= 0 && (rc || out->rc))
        rt_atomic_abort(&out->file);
    else if (out->file.fd >= 0)
        out->rc = rt_atomic_commit(&out->file, out->err, sizeof out->err);
    if (!rc && out->rc) {
        fprintf(stderr, "ringtrain-worker: error: --timeline: %s\n", out->err);
        rc = RT_EIO;
    }
    if (dropped)
        rt_log_warn("timeline: %llu events did not fit and were dropped",
                    (unsigned long long)dropped);
    return rc;
}

int timeline_write(timeline_t *tl, coll_comm_t *comm, const char *path,
                   const timeline_names_t *names)
{
    int rc;
    if (coll_comm_rank(comm) == 0) {
        tl_out_t out;
        rc = write_file(tl, comm, path, names, &out);
    } else {
        rc = send_events(tl, comm);
    }
    /* Every rank learns whether the file was written, so all stop together. */
    double ok = rc == 0 ? 1 : 0;
    int arc = coll_allreduce_f64_min(comm, &ok, 1);
    if (arc)
        return arc;
    return ok ? 0 : rc ? rc : RT_EIO;
}
