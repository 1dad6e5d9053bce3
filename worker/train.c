/* ringtrain worker: the data-parallel training loop.
 *
 * Every rank: agree on the model and settings (hash), take rank 0's initial
 * parameters, then per step: its slice of the batch -> forward -> backward,
 * handing each gradient bucket to the collectives' progress thread as soon
 * as backward has finished its layers -> wait for all buckets (averaged) ->
 * SGD on the whole parameter arena. Rank 0 prints tf_cnn_benchmarks' lines.
 * Nothing in the step loop allocates. --device=cuda runs the same loop on
 * one GPU per rank (device.h: arenas, kernels and allreduce on the device).
 */
#include <math.h>
#include <stdio.h>
#include <time.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <signal.h>

#include "checkpoint.h"
#include "common/common.h"
#include "data.h"
#include "device.h"
#include "footprint.h"
#include "kernels/kernels.h"
#include "model.h"
#include "ps.h"
#include "sample_trace.h"
#include "stats.h"
#include "timeline.h"
#include "topo.h"
#include "worker.h"

#define MAX_BUCKETS MODEL_MAX_BUCKETS

typedef struct {
    coll_comm_t *comm;
    float *grads;
    int count;                       /* buckets */
    size_t start[MAX_BUCKETS], end[MAX_BUCKETS];
    int next;                        /* next bucket to start */
    int started;                     /* buckets handed to the progress thread */
    int overlap;
    int status;
    timeline_t *tl;                  /* NULL unless --timeline */
    coll_request_t req[MAX_BUCKETS];
} grad_sync_t;

/* The plan is model_buckets_plan()'s (shared with ringtrain-predict). */
static void buckets_plan(grad_sync_t *g, const model_t *m, double bucket_mb)
{
    int node[MAX_BUCKETS];
    g->count = model_buckets_plan(m, bucket_mb, MAX_BUCKETS, g->end, node);
    for (int k = 0; k < g->count; k++)
        g->start[k] = k == 0 ? 0 : g->end[k - 1];
}

static void bucket_start(grad_sync_t *g, int k)
{
    if (g->status)
        return;
    float *p = g->grads + g->start[k];
    int rc = coll_allreduce_start(g->comm, COLL_IN_PLACE, p, g->end[k] - g->start[k],
                                  COLL_F32, COLL_AVG, &g->req[k]);
    if (rc)
        g->status = rc;
    else
        g->started = k + 1;
    if (g->tl) {
        double now = rt_now();
        timeline_add(g->tl, TL_READY, k, now, now,
                     (int64_t)((g->end[k] - g->start[k]) * sizeof(float)), k);
    }
}

static void on_ready(void *ctx, size_t ready_floats)
{
    grad_sync_t *g = ctx;
    if (!g->overlap)
        return;
    while (g->next < g->count && g->end[g->next] <= ready_floats)
        bucket_start(g, g->next++);
}

static int buckets_finish(grad_sync_t *g, int *failed)
{
    while (g->next < g->count)
        bucket_start(g, g->next++);
    int status = g->status;
    *failed = status ? g->started : -1;
    double t0 = rt_now();
    for (int k = 0; k < g->started; k++) {
        int rc = coll_wait(&g->req[k]);
        if (rc && !status) {
            status = rc;
            *failed = k;
        }
    }
    if (g->tl) {
        timeline_add(g->tl, TL_WAIT, -1, t0, rt_now(), 0, -1);
        for (int k = 0; k < g->started; k++)
            timeline_add(g->tl, TL_ALLREDUCE, k, g->req[k].t_begin, g->req[k].t_end,
                         (int64_t)((g->end[k] - g->start[k]) * sizeof(float)), k);
    }
    g->next = 0;
    g->started = 0;
    g->status = 0;
    return status;
}

static void trace_node(void *ctx, int node, int backward, double t0, double t1)
{
    timeline_add(ctx, backward ? TL_BACKWARD : TL_FORWARD, node, t0, t1, 0, -1);
}

static int agree_status(coll_comm_t *comm, int rc);

/* Writes the timeline (collective); names come from the model and buckets. */
static int write_timeline(const worker_options_t *o, coll_comm_t *comm, timeline_t *tl,
                          const model_t *m, const grad_sync_t *g)
{
    char (*descr)[64] = calloc((size_t)m->node_count, sizeof *descr);
    const char **nodes = calloc((size_t)m->node_count, sizeof *nodes);
    const char **algos = calloc((size_t)g->count, sizeof *algos);
    /* The write is collective: no rank may skip it alone. */
    int rc = agree_status(comm, descr && nodes && algos ? 0 : RT_ENOMEM);
    if (!rc) {
        for (int i = 0; i < m->node_count; i++) {
            model_node_describe(m, i, descr[i], sizeof descr[i]);
            nodes[i] = descr[i];
        }
        for (int k = 0; k < g->count; k++)
            algos[k] = coll_algorithm_for(comm, g->end[k] - g->start[k], COLL_F32);
        timeline_names_t names = {nodes, m->node_count, algos};
        rc = timeline_write(tl, comm, o->timeline, &names);
    }
    free(descr);
    free(nodes);
    free(algos);
    return rc;
}

/* SGD over the whole arena, on the timeline as the optimizer; returns
 * when it ended. */
static double sgd_step(const worker_options_t *o, model_t *m, grad_sync_t *sync)
{
    double t0 = rt_now();
    m->ops->sgd_update(m->params, m->momentum, m->grads, m->arena_floats,
                       (float)o->learning_rate, (float)o->momentum, (float)o->weight_decay);
    double t1 = rt_now();
    if (sync->tl)
        timeline_add(sync->tl, TL_OPTIMIZER, -1, t0, t1, 0, -1);
    return t1;
}

/* Allreduce mode after backward: waits for every bucket (averaged), then SGD
 * over the whole arena. A stalled or failed bucket is named. */
static int allreduce_and_update(const worker_options_t *o, model_t *m, grad_sync_t *sync,
                                int rank, long step)
{
    int failed = -1;
    int rc = buckets_finish(sync, &failed);
    if (rc == RT_ETIMEDOUT) {
        fprintf(stderr,
                "ringtrain-worker: error: rank %d: step %ld: gradient bucket %d of %d (%.2f MiB) "
                "not completed within --stall_timeout=%g s: a rank has not joined it (named "
                "above); aborting the job\n",
                rank, step, failed + 1, sync->count,
                (double)(sync->end[failed] - sync->start[failed]) * sizeof(float) / 1048576.0,
                o->stall_timeout);
        return rc;
    }
    if (rc) {
        fprintf(stderr, "ringtrain-worker: error: rank %d: gradient allreduce failed at step %ld "
                        "(bucket %d): %s\n",
                rank, step, failed + 1, rt_strerror(rc));
        return rc;
    }
    sgd_step(o, m, sync);
    return 0;
}

/* Independent mode: SGD on this rank's own gradients, then a 4-byte
 * allreduce so the ranks step together as in a synchronous job (the step
 * waits for the slowest rank) with no gradient bytes. It goes through the
 * same progress thread and waits as the gradient buckets (MPI_Barrier would
 * spin in Open MPI, taking cores from ranks still computing). The 4 bytes
 * must live where the communicator reduces (device memory on a GPU, where
 * the wait then also covers the step's queued work): the first softmax
 * output, which nothing reads between backward and the next forward. */
static int independent_update(const worker_options_t *o, model_t *m, grad_sync_t *sync,
                              int rank, long step)
{
    double t1 = sgd_step(o, m, sync);
    int rc = coll_allreduce(sync->comm, COLL_IN_PLACE, m->probs, 1, COLL_F32, COLL_SUM);
    if (rc) {
        fprintf(stderr, "ringtrain-worker: error: rank %d: step %ld: the step's 4-byte "
                        "allreduce of --variable_update=independent failed: %s\n",
                rank, step, rt_strerror(rc));
        return rc;
    }
    if (sync->tl)
        timeline_add(sync->tl, TL_WAIT, -1, t1, rt_now(), 0, -1);
    return 0;
}

/* Every rank learns whether any rank failed (the failing rank has printed
 * why); returns the most negative code. */
static int agree_status(coll_comm_t *comm, int rc)
{
    double worst = -(double)rc;
    if (coll_allreduce_f64_max(comm, &worst, 1) != 0)
        return RT_EMPI;
    return -(int)worst;
}

static uint64_t settings_hash(const worker_options_t *o, const model_t *m)
{
    uint64_t h = model_shape_hash(m);
    double nums[8] = {(double)o->batch_size, o->learning_rate, o->momentum,
                      o->weight_decay, (double)o->num_batches, o->num_epochs,
                      o->bucket_mb, (double)o->num_warmup_batches};
    int flags[7] = {(int)o->data, o->overlap, (int)o->device, o->eval, o->compression,
                    (int)o->variable_update, o->lr_scaling};
    /* Ranks in different precisions would average unlike gradients. */
    double precision[7] = {(double)o->use_fp16, (double)o->use_bf16, (double)o->allow_tf32,
                           o->fp16_loss_scale, (double)o->fp16_enable_auto_loss_scale,
                           (double)o->fp16_inc_loss_scale_every_n, (double)o->data_format};
    h = rt_fnv1a(h, nums, sizeof nums);
    h = rt_fnv1a(h, flags, sizeof flags);
    h = rt_fnv1a(h, precision, sizeof precision);
    h = rt_fnv1a(h, &o->seed, sizeof o->seed);
    return rt_fnv1a(h, o->allreduce, strlen(o->allreduce));
}

static int check_agreement(coll_comm_t *comm, uint64_t mine)
{
    int size = coll_comm_size(comm), rank = coll_comm_rank(comm);
    uint64_t *all = calloc((size_t)size, sizeof *all);
    if (!all)
        return RT_ENOMEM;
    int rc = coll_allgather_u64(comm, mine, all);
    if (rc) {
        free(all);
        return rc;
    }
    int differ = 0;
    char list[256] = "";
    for (int r = 0; r < size; r++) {
        if (all[r] == all[0])
            continue;
        differ++;
        size_t used = strlen(list);
        if (used < sizeof list - 16)
            snprintf(list + used, sizeof list - used, "%s%d", used ? ", " : "", r);
    }
    free(all);
    if (!differ)
        return 0;
    fprintf(stderr,
            "ringtrain-worker: error: rank %d: ranks disagree on the model or training flags "
            "(rank(s) %s differ from rank 0); start every rank with the same command line\n",
            rank, list);
    return RT_EMISMATCH;
}

static void print_thousands(char *buf, size_t bytes, size_t value)
{
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%zu", value);
    size_t o = 0;
    for (int i = 0; i < len && o + 2 < bytes; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
}

/* --dump_params: the raw float32 arena, through the atomic writer. */
static int write_params(const char *path, const float *params, size_t count, char *err,
                        size_t err_bytes)
{
    int rc = rt_file_write_atomic(path, params, count * sizeof(float), 0644, err, err_bytes);
    /* Found after training: a failure, not bad input. */
    return rc ? RT_EIO : 0;
}

/* Each of `ranks` data ranks evaluates its slice (data_rank < 0: none). */
static int evaluate(coll_comm_t *comm, device_t *dev, model_t *m, const dataset_t *ds,
                    int data_rank, int ranks, float *images, int32_t *labels,
                    double *accuracy)
{
    size_t first = 0, last = 0;
    if (data_rank >= 0) {
        first = ds->count * (size_t)data_rank / (size_t)ranks;
        last = ds->count * (size_t)(data_rank + 1) / (size_t)ranks;
    }
    double counts[2] = {0, (double)(last - first)};
    m->bn_eval = 1;
    for (size_t i = first; i < last; i += (size_t)m->batch) {
        int B = (int)((last - i) < (size_t)m->batch ? last - i : (size_t)m->batch);
        dataset_copy_range(ds, i, (size_t)B, images, labels);
        const float *x = images;
        const int32_t *y = labels;
        device_input(dev, &x, &y, B, 0);
        model_forward(m, x, NULL, B);
        counts[0] += m->ops->accuracy_count(m->tensors[m->logits].act, y, B, m->classes);
    }
    m->bn_eval = 0;
    int rc = coll_allreduce_f64_sum(comm, counts, 2);
    *accuracy = counts[1] > 0 ? counts[0] / counts[1] : 0.0;
    return rc;
}

/* Fault injection for tests (RINGTRAIN_FAULT=kill@STEP:RANK, stop@STEP:RANK
 * or term@STEP:RANK): that rank sends itself SIGKILL / SIGSTOP / SIGTERM
 * when it starts step STEP (1-based), the way a crashed, frozen or
 * preempted process looks to the job. */
typedef struct {
    int sig;
    long step;
    int rank;
} fault_t;

static void fault_parse(fault_t *f)
{
    memset(f, 0, sizeof *f);
    const char *spec = getenv("RINGTRAIN_FAULT");
    char kind[8];
    long step;
    int rank;
    if (!spec || sscanf(spec, "%7[a-z]@%ld:%d", kind, &step, &rank) != 3)
        return;
    f->sig = strcmp(kind, "kill") == 0   ? SIGKILL
             : strcmp(kind, "stop") == 0 ? SIGSTOP
             : strcmp(kind, "term") == 0 ? SIGTERM
                                         : 0;
    f->step = step;
    f->rank = rank;
}

/* After a non-finite loss: which layer's parameters went non-finite (so its
 * gradients at the previous step were), or -1. */
static int nonfinite_node(const model_t *m)
{
    for (int i = m->node_count - 1; i >= 0; i--) {
        const node_t *n = &m->nodes[i];
        const float *w = m->params + n->w_off, *b = m->params + n->b_off;
        for (size_t j = 0; j < n->w_count; j++)
            if (!isfinite(w[j]))
                return i;
        for (size_t j = 0; j < n->b_count; j++)
            if (!isfinite(b[j]))
                return i;
    }
    return -1;
}

static void report_nonfinite(const model_t *m, int rank, long step, double loss)
{
    int node = nonfinite_node(m);
    char what[128];
    if (node >= 0) {
        model_node_describe(m, node, what, sizeof what);
        fprintf(stderr,
                "ringtrain-worker: error: rank %d: non-finite gradients at step %ld in layer %d "
                "(%s) made its parameters non-finite; lower --learning_rate or check the data\n",
                rank, step - 1, node, what);
    } else {
        fprintf(stderr,
                "ringtrain-worker: error: rank %d: non-finite loss (%g) at step %ld; lower "
                "--learning_rate or check the data\n",
                rank, loss, step);
    }
}

/* Everything one run holds, so that worker_run reads as its steps. */
typedef struct {
    const worker_options_t *o;   /* opts below once the mode is known */
    worker_options_t opts;       /* the options, learning rate scaled (--lr_scaling) */
    coll_comm_t *comm;
    int rank, size;
    device_t dev;
    topo_info_t topo;
    int threads;
    int c, h, w;                 /* input shape */
    model_t *m;
    ps_t ps;
    int independent;
    int data_rank, data_ranks;   /* this rank's slice of the data, and how many */
    int printer;                 /* the rank that prints */
    dataset_t train, test;
    sampler_t sampler;
    sampler_pos_t pos;           /* where the next step's global batch starts */
    long warmup, timed;          /* steps; after a resume: what is left to run */
    long start_step, display_base;
    double global_batch;
    fault_t fault;
    grad_sync_t *sync;
    timeline_t timeline;
    double *times, *scratch;     /* step times of the timed steps (a ring of keep) */
    size_t keep;
    double elapsed;              /* of the timed steps, the slowest rank's */
    ckpt_writer_t *writer;       /* rank 0 with --checkpoint_dir */
    long submitted;              /* the newest step handed to the writer */
    ckpt_result_t last_saved;    /* rank 0: the newest write that finished well */
    sample_trace_t trace;        /* RINGTRAIN_TRACE_SAMPLES */
} run_t;

static void run_free(run_t *r)
{
    ckpt_writer_destroy(r->writer);
    sample_trace_free(&r->trace);
    ps_free(&r->ps);
    timeline_free(&r->timeline);
    free(r->times);
    free(r->scratch);
    free(r->sync);
    sampler_free(&r->sampler);
    dataset_free(&r->train);
    dataset_free(&r->test);
    if (r->m)
        model_free(r->m);
    free(r->m);
    device_close(&r->dev);
}

/* Training-set size a checkpoint records (0: synthetic data, whose size
 * follows the world size). */
static uint32_t data_count(const run_t *r)
{
    return r->o->data == WORKER_DATA_SYNTHETIC ? 0 : (uint32_t)r->train.count;
}

/* "synthetic data" or "a training set of N samples". */
static void describe_data(uint32_t count, char *buf, size_t bytes)
{
    if (count)
        snprintf(buf, bytes, "a training set of %u samples", count);
    else
        snprintf(buf, bytes, "synthetic data");
}

/* A checkpoint found on rank 0 that this run may not continue from: another
 * seed (another data order) or another training set. 0, or RT_EMISMATCH
 * with the reason printed. */
static int checkpoint_compatible(const run_t *r, const ckpt_info_t *info, const char *path)
{
    const worker_options_t *o = r->o;
    char why[256] = "", was[64], is[64];
    describe_data(info->data_count, was, sizeof was);
    describe_data(data_count(r), is, sizeof is);
    if (info->seed != o->seed)
        snprintf(why, sizeof why, "written with --seed=%llu, this run has --seed=%llu, so the "
                 "data order would differ; run with --seed=%llu",
                 (unsigned long long)info->seed, (unsigned long long)o->seed,
                 (unsigned long long)info->seed);
    else if (info->version >= 2 && info->data_count != data_count(r))
        snprintf(why, sizeof why, "written for %s, this run trains on %s; run on the data "
                 "that wrote it", was, is);
    if (!why[0])
        return 0;
    fprintf(stderr, "ringtrain-worker: error: --checkpoint_dir=%s: %s: %s, or give another "
                    "--checkpoint_dir\n", o->checkpoint_dir, path, why);
    return RT_EMISMATCH;
}

/* Where the checkpoint's run stopped in the data. Version 1 kept no
 * position: the step at the writer's global batch gives it. */
static sampler_pos_t checkpoint_pos(const run_t *r, const ckpt_info_t *info)
{
    if (info->version >= 2)
        return (sampler_pos_t){info->epoch, info->sample};
    sampler_t writer = r->sampler;
    writer.ranks = (int)info->ranks;
    writer.batch = (int)info->batch;
    writer.steps_per_epoch = r->train.count / sampler_global_batch(&writer);
    if (writer.steps_per_epoch == 0)
        writer.steps_per_epoch = 1;
    return sampler_pos_at_step(&writer, info->step);
}

/* Rank 0's lines about the checkpoint it resumes from; a world of another
 * size gets one more, saying where the data continues. */
static void print_resuming(const run_t *r, const ckpt_info_t *info, const char *path,
                           sampler_pos_t pos)
{
    printf("Resuming:    %s (step %llu)\n", path, (unsigned long long)info->step);
    if (info->ranks != (uint32_t)r->data_ranks || info->batch != (uint32_t)r->o->batch_size)
        printf("Resharding:  written by %u ranks x batch %u, this run is %d x %d: epoch %llu "
               "continues at sample %llu of %zu\n",
               info->ranks, info->batch, r->data_ranks, r->o->batch_size,
               (unsigned long long)pos.epoch, (unsigned long long)pos.sample, r->train.count);
}

/* Rank 0 loads the newest valid checkpoint into the host copy of the model
 * state (on the CPU the arenas themselves); every rank gets that state
 * into its arenas (on its GPU) and the data position, resharded over this
 * run's ranks. r->start_step: the completed steps to continue from (left
 * at 0 on a fresh start). */
static int resume(run_t *r)
{
    const worker_options_t *o = r->o;
    model_t *m = r->m;
    ckpt_data_t host;
    int rc = device_state_host(&r->dev, m, &host);
    if (rc && r->rank == 0)
        fprintf(stderr, "ringtrain-worker: error: --checkpoint_dir=%s: no memory for a host "
                        "copy of the model state\n", o->checkpoint_dir);
    rc = agree_status(r->comm, rc);
    if (rc)
        return rc;
    /* [found (-1 failure, -2 bad input), step, epoch, sample] from rank 0 */
    double head[4] = {0, 0, 0, 0};
    if (r->rank == 0) {
        ckpt_info_t expect = {.model_hash = model_shape_hash(m),
                              .arena_floats = m->arena_floats,
                              .state_floats = m->state_floats};
        ckpt_info_t info;
        char path[4200], err[4800];
        rc = ckpt_load_latest(o->checkpoint_dir, &expect, &info, &host, path, sizeof path, err,
                              sizeof err);
        if (rc == 0)
            rc = checkpoint_compatible(r, &info, path);
        if (rc == 0) {
            sampler_pos_t pos = checkpoint_pos(r, &info);
            double found[4] = {1, (double)info.step, (double)pos.epoch, (double)pos.sample};
            memcpy(head, found, sizeof head);
            print_resuming(r, &info, path, pos);
        } else if (rc == RT_EMISMATCH) {
            if (err[0])
                fprintf(stderr, "ringtrain-worker: error: --checkpoint_dir=%s: %s; resume with "
                        "the model and flags that wrote it, or give another --checkpoint_dir\n",
                        o->checkpoint_dir, err);
            head[0] = -2;
        } else if (rc != RT_ENOENT) {
            fprintf(stderr, "ringtrain-worker: error: --checkpoint_dir=%s: %s\n",
                    o->checkpoint_dir, err);
            head[0] = -1;
        }
    }
    rc = coll_broadcast(r->comm, head, sizeof head, 0);
    if (rc)
        return rc;
    if (head[0] <= 0)
        return head[0] < -1 ? RT_EMISMATCH : head[0] < 0 ? RT_EIO : 0;
    size_t pbytes = m->arena_floats * sizeof(float);
    rc = coll_broadcast(r->comm, host.params, pbytes, 0);
    if (!rc)
        rc = coll_broadcast(r->comm, host.momentum, pbytes, 0);
    if (!rc)
        rc = coll_broadcast(r->comm, host.state, m->state_floats * sizeof(float), 0);
    if (!rc)
        rc = device_state_from_host(&r->dev, m);
    if (rc)
        return rc;
    r->start_step = (long)head[1];
    r->pos = (sampler_pos_t){(uint64_t)head[2], (uint64_t)head[3]};
    sampler_pos_fit(&r->sampler, &r->pos);
    return 0;
}

/* The device hook of a save: the model state into the writer's host
 * buffers (made once), which the writer owns until the write ends. The
 * device gives its host view (the CPU arenas themselves; on a GPU its host
 * copy, downloaded first), copied here because training goes on as soon
 * as this returns. */
static int checkpoint_fill(run_t *r, const ckpt_data_t *dst)
{
    const model_t *m = r->m;
    ckpt_data_t src;
    int rc = device_state_to_host(&r->dev, m, &src);
    if (rc)
        return rc;
    memcpy(dst->params, src.params, m->arena_floats * sizeof(float));
    memcpy(dst->momentum, src.momentum, m->arena_floats * sizeof(float));
    memcpy(dst->state, src.state, m->state_floats * sizeof(float));
    return 0;
}

/* A finished write on rank 0: remembered and said on one line, or its
 * error printed. */
static int checkpoint_report(run_t *r, const ckpt_result_t *res, int quiet)
{
    if (res->rc) {
        fprintf(stderr, "ringtrain-worker: error: --checkpoint_dir=%s: %s\n",
                r->o->checkpoint_dir, res->err);
        return res->rc;
    }
    r->last_saved = *res;
    if (!quiet) {
        printf("Checkpoint:  step %llu: %s (%.2f s, in the background)\n",
               (unsigned long long)res->step, res->path, res->seconds);
        fflush(stdout);
    }
    return 0;
}

/* Rank 0 hands the state after `step` completed steps to the writer,
 * waiting only for a previous write that still runs. */
static int checkpoint_begin(run_t *r, long step)
{
    const model_t *m = r->m;
    ckpt_result_t res;
    int rc = ckpt_writer_wait(r->writer, &res) ? checkpoint_report(r, &res, 0) : 0;
    if (rc)
        return rc;
    ckpt_data_t buf = ckpt_writer_buffers(r->writer);
    rc = checkpoint_fill(r, &buf);
    if (rc) {
        fprintf(stderr, "ringtrain-worker: error: --checkpoint_dir=%s: cannot copy the model "
                        "state for step %ld: %s\n", r->o->checkpoint_dir, step, rt_strerror(rc));
        return rc;
    }
    ckpt_info_t info = {.model_hash = model_shape_hash(m),
                        .step = (uint64_t)step,
                        .seed = r->o->seed,
                        .arena_floats = m->arena_floats,
                        .state_floats = m->state_floats,
                        .ranks = (uint32_t)r->data_ranks,
                        .batch = (uint32_t)r->o->batch_size,
                        .sample = (uint32_t)r->pos.sample,
                        .data_count = data_count(r),
                        .epoch = r->pos.epoch};
    rc = ckpt_writer_submit(r->writer, &info);
    if (!rc)
        r->submitted = step;
    return rc;
}

/* Rank 0 makes sure checkpoint `step` is written and waits for it; 0 or
 * the error it printed. */
static int checkpoint_finish(run_t *r, long step, int quiet)
{
    int rc = r->submitted == step ? 0 : checkpoint_begin(r, step);
    ckpt_result_t res;
    if (!rc && ckpt_writer_wait(r->writer, &res))
        rc = checkpoint_report(r, &res, quiet && res.step == (uint64_t)step);
    return rc;
}

/* The device, this rank's cores, the model on the device; every rank
 * agrees on the model and the flags before anything else. */
static int run_build_model(run_t *r)
{
    const worker_options_t *o = r->o;
    int rc = device_open(&r->dev, o, r->comm);
    if (rc)
        return rc;
    int local_rank = coll_comm_local_rank(r->comm);
    int prc = topo_place(&r->topo, local_rank, coll_comm_local_size(r->comm), o->bind);
    if (prc && r->rank == 0)
        rt_log_warn("could not bind to cores (%s); running unbound", rt_strerror(prc));
    r->threads = o->num_intra_threads > 0 ? o->num_intra_threads : r->topo.share;
    kernels_set_num_threads(r->threads);

    r->m = calloc(1, sizeof *r->m);
    if (!r->m)
        return RT_ENOMEM;
    int classes;
    model_default_shape(o->model, &r->c, &r->h, &r->w, &classes);
    /* Refuse what cannot fit before allocating it (one line per host). */
    char err[1024] = "";
    rc = footprint_check(o, device_model_ops(&r->dev), r->size, coll_comm_local_size(r->comm),
                         err, sizeof err);
    if (rc && local_rank == 0)
        fprintf(stderr, "ringtrain-worker: error: %s\n", err);
    if (!rc)
        rc = model_create_on(r->m, o->model, classes, o->batch_size, device_model_ops(&r->dev));
    if (!rc)
        rc = device_prepare(&r->dev, r->m);
    if (rc && !err[0]) {
        fprintf(stderr, "ringtrain-worker: error: rank %d: cannot build model %s at batch %d: %s\n",
                r->rank, o->model, o->batch_size, rt_strerror(rc));
    }
    rc = agree_status(r->comm, rc);
    if (rc)
        return rc;
    return agree_status(r->comm, check_agreement(r->comm, settings_hash(o, r->m)));
}

/* allreduce, independent or parameter-server: which ranks take data and
 * which one prints. */
static int run_choose_mode(run_t *r)
{
    const worker_options_t *o = r->o;
    const char *ps_list = getenv("RINGTRAIN_PS_RANKS");
    if (o->variable_update == WORKER_UPDATE_PARAMETER_SERVER) {
        char err[1536] = "";
        int rc = ps_init(&r->ps, ps_list, r->rank, r->size, r->m->arena_floats, err, sizeof err);
        if (rc == 0 && o->checkpoint_dir[0]) {
            snprintf(err, sizeof err, "--checkpoint_dir is not supported with "
                                      "--variable_update=parameter_server (the servers hold the "
                                      "optimizer state); use allreduce");
            rc = RT_EINVAL;
        }
        if (rc && r->rank == 0)
            fprintf(stderr, "ringtrain-worker: error: %s\n", err);
        rc = agree_status(r->comm, rc);
        if (rc)
            return rc;
    } else if (ps_list && *ps_list && r->rank == 0) {
        rt_log_warn("RINGTRAIN_PS_RANKS=%s is ignored without --variable_update=parameter_server: "
                    "those ranks train like any other", ps_list);
    }
    const ps_t *ps = &r->ps;
    r->independent = o->variable_update == WORKER_UPDATE_INDEPENDENT;
    /* Ranks that take data: every rank, or the workers in PS mode. */
    r->data_rank = ps->enabled ? (ps->is_server ? 0 : ps->index) : r->rank;
    r->data_ranks = ps->enabled ? ps->workers : r->size;
    r->printer = ps->enabled ? ps->chief : 0;
    r->global_batch = (double)o->batch_size * r->data_ranks;
    /* Horovod's practice: the learning rate follows the global batch, so a
     * job restarted on fewer or more ranks keeps its lr per sample. */
    r->opts = *o;
    if (o->lr_scaling)
        r->opts.learning_rate = o->learning_rate * r->data_ranks;
    r->o = &r->opts;
    return 0;
}

/* An output file: its directory takes a new file (one is created and
 * removed the way the real write does it) and the name is not a directory. */
static int check_output_file(const char *flag, const char *path)
{
    char err[1536];
    struct stat st;
    rt_atomic_file_t f;
    int rc = 0;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(err, sizeof err, "%s: is a directory; give a file name", path);
        rc = RT_EINVAL;
    } else if (rt_atomic_open(&f, path, 0600, err, sizeof err) != 0) {
        rc = RT_EINVAL;
    } else {
        rt_atomic_abort(&f);
    }
    if (rc)
        fprintf(stderr, "ringtrain-worker: error: %s: %s\n", flag, err);
    return rc;
}

/* Before step 1, on the rank that writes each: the checkpoint directory
 * (created 0700 if missing), --timeline and --dump_params. A typo or a
 * read-only disk is bad input reported now with errno's text, on every
 * rank together, not a failure after training. */
static int run_check_outputs(run_t *r)
{
    const worker_options_t *o = r->o;
    int rc = 0;
    if (r->rank == 0 && o->checkpoint_dir[0]) {
        char err[1536];
        rc = ckpt_dir_prepare(o->checkpoint_dir, err, sizeof err);
        if (rc) {
            fprintf(stderr, "ringtrain-worker: error: --checkpoint_dir=%s: %s\n",
                    o->checkpoint_dir, err);
            rc = RT_EINVAL;
        }
    }
    if (!rc && r->rank == 0 && o->timeline[0])
        rc = check_output_file("--timeline", o->timeline);
    if (!rc && r->rank == r->printer && o->dump_params[0])
        rc = check_output_file("--dump_params", o->dump_params);
    return agree_status(r->comm, rc);
}

/* The training data and this rank's sampler over it. */
static int run_load_data(run_t *r)
{
    const worker_options_t *o = r->o;
    int rc;
    if (o->data == WORKER_DATA_FASHION_MNIST) {
        char err[1536] = "";
        dataset_shape_t want = {r->c, r->h, r->w, r->m->classes};
        rc = dataset_load_fashion_mnist(&r->train, o->eval ? &r->test : NULL, o->data_dir,
                                        &want, err, sizeof err);
        if (rc)
            fprintf(stderr, "ringtrain-worker: error: %s (--data_dir=%s%s)\n", err, o->data_dir,
                    rc == RT_ENOENT ? "; Debian package dataset-fashion-mnist" : "");
    } else {
        rc = dataset_synthetic(&r->train, r->c, r->h, r->w, r->m->classes,
                               (size_t)o->batch_size * (size_t)r->data_ranks, o->seed);
    }
    if (!rc) {
        rc = sampler_init(&r->sampler, &r->train, r->data_rank, r->data_ranks, o->batch_size,
                          o->data != WORKER_DATA_SYNTHETIC, o->seed);
        if (rc == RT_EINVAL)
            fprintf(stderr, "ringtrain-worker: error: --batch_size=%d x %d ranks is larger than "
                            "the %zu training samples; use a smaller batch\n",
                    o->batch_size, r->data_ranks, r->train.count);
    }
    return agree_status(r->comm, rc);
}

/* Warm-up and timed steps from --num_batches or --num_epochs; with epochs,
 * from the data position on, at this world size (a resumed run may have
 * another). */
static void run_count_steps(run_t *r)
{
    const worker_options_t *o = r->o;
    r->warmup = o->num_warmup_batches;
    r->timed = o->num_batches;
    if (o->num_epochs > 0) {
        long total = r->start_step +
                     (long)sampler_steps_until(&r->sampler, r->pos, o->num_epochs);
        if (total < 1)
            total = 1;
        if (r->warmup >= total)
            r->warmup = total - 1;
        r->timed = total - r->warmup;
    }
}

/* Parameters: rank 0's initial values (or its newest checkpoint, with the
 * data position) everywhere; a resumed run times only what is left. */
static int run_init_params(run_t *r)
{
    const worker_options_t *o = r->o;
    model_t *m = r->m;
    int rc = device_params_init(&r->dev, m, o->seed, r->comm);
    if (!rc && o->checkpoint_dir[0])
        rc = resume(r);
    if (rc)
        return rc;
    run_count_steps(r);
    r->display_base = r->warmup;
    if (r->start_step > r->warmup + r->timed)
        r->start_step = r->warmup + r->timed;
    if (r->start_step > r->warmup) {
        /* Resuming past the warm-up: time what is left. */
        r->timed = r->warmup + r->timed - r->start_step;
        r->warmup = r->start_step;
    }
    return 0;
}

/* Rank 0's checkpoint writer (its host buffers made here, once) and every
 * rank's sample trace. */
static int run_prepare_saves(run_t *r)
{
    const worker_options_t *o = r->o;
    int rc = 0;
    if (r->rank == 0 && o->checkpoint_dir[0]) {
        ckpt_info_t shape = {.arena_floats = r->m->arena_floats,
                             .state_floats = r->m->state_floats};
        rc = ckpt_writer_create(&r->writer, o->checkpoint_dir, &shape, o->checkpoints_to_keep);
        if (rc)
            fprintf(stderr, "ringtrain-worker: error: --checkpoint_dir=%s: cannot make the "
                            "background writer (host copy of the model state): %s\n",
                    o->checkpoint_dir, rt_strerror(rc));
    }
    /* The trace's clock orders the runs of a job: rank 0's, for all. */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    double run = (double)now.tv_sec * 1e9 + (double)now.tv_nsec;
    int brc = coll_broadcast(r->comm, &run, sizeof run, 0);
    long every = o->checkpoint_dir[0] ? o->checkpoint_every : 0;
    long steps = r->warmup + r->timed - r->start_step;
    size_t cap = (size_t)(every > 0 && every < steps ? every : steps);
    if (!rc && !brc && !(r->ps.enabled && r->ps.is_server))
        rc = sample_trace_init(&r->trace, r->rank, r->o->batch_size, cap, (uint64_t)run,
                               r->start_step);
    return agree_status(r->comm, brc ? brc : rc);
}

/* Step-time records, the gradient buckets and the timeline: made once,
 * before the step loop. */
static int run_prepare_steps(run_t *r)
{
    const worker_options_t *o = r->o;
    model_t *m = r->m;
    fault_parse(&r->fault);
    r->sync = calloc(1, sizeof *r->sync);
    r->keep = (size_t)(r->timed < 1 ? 1 : r->timed < (1L << 20) ? r->timed : (1L << 20));
    r->times = calloc(r->keep, sizeof *r->times);
    r->scratch = calloc(r->keep, sizeof *r->scratch);
    if (!r->sync || !r->times || !r->scratch)
        return RT_ENOMEM;
    grad_sync_t *sync = r->sync;
    sync->comm = r->comm;
    sync->grads = m->grads;
    sync->overlap = o->overlap;
    buckets_plan(sync, m, o->bucket_mb);
    if (!o->timeline[0])
        return 0;
    /* Room for every span of every step; beyond it spans are dropped. */
    size_t per_step = 2 * (size_t)m->node_count + 3 * (size_t)sync->count + 8;
    size_t steps = (size_t)(r->warmup + r->timed - r->start_step);
    size_t capacity = per_step * steps + 64;
    if (capacity > (size_t)4 << 20)
        capacity = (size_t)4 << 20;
    int rc = timeline_init(&r->timeline, capacity, r->comm);
    if (rc)
        return rc;
    sync->tl = &r->timeline;
    m->trace = trace_node;
    m->trace_ctx = &r->timeline;
    return 0;
}

static void print_variables_line(const run_t *r)
{
    const worker_options_t *o = r->o;
    const grad_sync_t *sync = r->sync;
    if (r->ps.enabled) {
        printf("Variables:   parameter_server (%d server(s), %d worker(s))\n", r->ps.servers,
               r->ps.workers);
    } else if (r->independent) {
        printf("Variables:   independent (each rank trains its own copy; no gradient "
               "exchange, the ranks step together)\n");
    } else {
        size_t last = sync->end[sync->count - 1] - sync->start[sync->count - 1];
        printf("Variables:   allreduce (%d bucket(s), %.3g MiB cap, overlap %s%s, %s%s%s)\n",
               sync->count, o->bucket_mb, o->overlap ? "on" : "off",
               coll_comm_cores_busy(r->comm) ? " (no spare core: waits yield)" : "",
               coll_algorithm_for(r->comm, last, COLL_F32), o->compression ? ", wire " : "",
               o->compression ? coll_compression_name(coll_comm_compression(r->comm)) : "");
    }
}

/* tf_cnn_benchmarks' header, on the printing rank. */
static void print_header(run_t *r)
{
    const worker_options_t *o = r->o;
    const model_t *m = r->m;
    char params[32], device[320], precision[320];
    print_thousands(params, sizeof params, m->param_count);
    printf("ringtrain:   %s\n", "0.1.0");
    printf("Model:       %s\n", o->model);
    if (o->data == WORKER_DATA_SYNTHETIC)
        printf("Dataset:     synthetic (%dx%dx%d, %d classes)\n", r->c, r->h, r->w, m->classes);
    else
        printf("Dataset:     fashion_mnist (%s, %zu training images)\n", o->data_dir,
               r->train.count);
    printf("Mode:        training\n");
    printf("Batch size:  %.0f global\n", r->global_batch);
    printf("             %d per rank\n", o->batch_size);
    printf("Num batches: %ld\n", r->timed);
    if (o->data != WORKER_DATA_SYNTHETIC)
        printf("Num epochs:  %.2f\n", o->num_epochs > 0 ? o->num_epochs
                                       : (double)(r->warmup + r->timed) * r->global_batch /
                                             (double)r->train.count);
    printf("Ranks:       %d on %d host(s)\n", r->size, coll_comm_host_count(r->comm));
    printf("Device:      %s\n", device_describe(&r->dev, r->comm, r->threads, device, sizeof device));
    printf("Precision:   %s\n", device_precision(&r->dev, o, precision, sizeof precision));
    printf("Topology:    %d cores, %d NUMA node(s), %d GPU(s) on this host; rank 0 %s\n",
           r->topo.cores, r->topo.numa_nodes, device_host_gpus(&r->dev, r->topo.gpus),
           r->topo.bound);
    printf("Parameters:  %s\n", params);
    if (o->lr_scaling)
        printf("Optimizer:   sgd (learning rate %g = %g x %d ranks, --lr_scaling=linear; "
               "momentum %g, weight decay %g)\n", o->learning_rate,
               o->learning_rate / r->data_ranks, r->data_ranks, o->momentum, o->weight_decay);
    else
        printf("Optimizer:   sgd (learning rate %g, momentum %g, weight decay %g)\n",
               o->learning_rate, o->momentum, o->weight_decay);
    print_variables_line(r);
    printf("==========\n");
    printf("Running warm up\n");
    fflush(stdout);
}

/* One step's computation and update: forward, backward with the buckets
 * handed on as they become ready, the exchange, SGD. The server of a
 * parameter-server job applies the workers' gradients instead. */
static int run_one_step(run_t *r, long step, float *loss)
{
    const worker_options_t *o = r->o;
    model_t *m = r->m;
    int rc;
    if (r->ps.enabled && r->ps.is_server) {
        rc = ps_server_step(&r->ps, r->comm, m->params, m->momentum, m->grads,
                            (float)o->learning_rate, (float)o->momentum, (float)o->weight_decay);
        if (rc)
            fprintf(stderr, "ringtrain-worker: error: rank %d (parameter server): step %ld: %s\n",
                    r->rank, step + 1, rt_strerror(rc));
        return rc;
    }
    const float *images;
    const int32_t *labels;
    sampler_batch_at(&r->sampler, r->pos, &images, &labels);
    device_input(&r->dev, &images, &labels, o->batch_size, o->data == WORKER_DATA_SYNTHETIC);
    *loss = model_forward(m, images, labels, o->batch_size);
    if (!isfinite(*loss)) {
        report_nonfinite(m, r->rank, step + 1, (double)*loss);
        return RT_ENONFINITE;
    }
    model_backward(m, images, labels, o->batch_size,
                   r->ps.enabled || r->independent ? NULL : on_ready, r->sync);
    if (r->independent)
        return independent_update(o, m, r->sync, r->rank, step + 1);
    if (!r->ps.enabled)
        return allreduce_and_update(o, m, r->sync, r->rank, step + 1);
    rc = ps_worker_exchange(&r->ps, r->comm, m->grads, m->params);
    if (rc)
        fprintf(stderr, "ringtrain-worker: error: rank %d: step %ld: exchange with the "
                        "parameter servers failed: %s\n",
                r->rank, step + 1, rt_strerror(rc));
    return rc;
}

/* A step's speed line (tf_cnn_benchmarks' format) on the printing rank. */
static int print_step_line(run_t *r, long step, long k, float loss)
{
    /* On a GPU the loss is copied back only here. */
    if (device_loss(&r->dev, r->m, &loss) != 0 || !isfinite(loss)) {
        fprintf(stderr, "ringtrain-worker: error: rank %d: %s at step %ld\n", r->rank,
                isfinite(loss) ? "the GPU reported an error (see above)"
                               : "non-finite loss; lower --learning_rate or check the data",
                step + 1);
        return isfinite(loss) ? RT_ECUDA : RT_ENONFINITE;
    }
    size_t n = (size_t)(k + 1 < (long)r->keep ? k + 1 : (long)r->keep);
    speed_stats_t st;
    speed_stats(r->times, n, r->global_batch, r->scratch, &st);
    /* Step lines number timed steps from the original warm-up, so a
     * resumed run numbers its steps as the uninterrupted run does. */
    printf("%ld\timages/sec: %.1f +/- %.1f (jitter = %.1f)\t%.3f\n", step + 1 - r->display_base,
           st.mean, st.uncertainty, st.jitter, (double)loss);
    fflush(stdout);
    return 0;
}

/* Every rank learns the outcome of rank 0's save before going on, so a
 * failed save ends all of them with rank 0's error (printed there) instead
 * of leaving the others spinning in the next collective. The 4-byte
 * allreduce waits as a gradient bucket does (yielding, at most
 * --stall_timeout; through device memory on a GPU); when even it fails no
 * rank can know where the others are, and the job is aborted. */
static int agree_saved(run_t *r, int rc)
{
    float code = (float)rc;
    int arc = device_allreduce_sum1(&r->dev, r->comm, &code);
    if (arc) {
        fprintf(stderr, "ringtrain-worker: error: rank %d: could not learn whether rank 0 wrote "
                        "the checkpoint: %s; aborting the job\n",
                r->rank, rt_strerror(arc));
        coll_abort(r->comm, 1);
        return arc;
    }
    return (int)code;
}

/* The samples of this step into the trace (RINGTRAIN_TRACE_SAMPLES). */
static int trace_step(run_t *r, long step)
{
    if (!r->trace.enabled)
        return 0;
    int rc = sample_trace_record(&r->trace, step, r->pos.epoch, r->sampler.indices);
    if (rc)
        fprintf(stderr, "ringtrain-worker: error: rank %d: RINGTRAIN_TRACE_SAMPLES: more than "
                        "%zu steps between checkpoints\n", r->rank, r->trace.cap_steps);
    return rc;
}

/* The trace is written whenever a checkpoint is taken: every rank calls
 * this at the same steps. A failure here ends the job. */
static int trace_write(run_t *r)
{
    char err[1536];
    int rc = sample_trace_write(&r->trace, err, sizeof err);
    if (rc)
        fprintf(stderr, "ringtrain-worker: error: RINGTRAIN_TRACE_SAMPLES: %s\n", err);
    return rc;
}

/* Every rank stops after `step` completed steps, that checkpoint written
 * (rank 0, agreed by all), and the printing rank says so on one line. */
static int run_stop(run_t *r, long step, int sig)
{
    const worker_options_t *o = r->o;
    double t0 = rt_now();
    int rc = r->writer ? checkpoint_finish(r, step, 1) : 0;
    if (o->checkpoint_dir[0]) {
        rc = agree_saved(r, rc);
        if (!rc)
            rc = agree_status(r->comm, trace_write(r));
        if (rc)
            return rc;
    }
    if (r->rank == r->printer) {
        if (o->checkpoint_dir[0] && r->writer)
            printf("Stopped:     signal %d (%s) after step %ld: checkpoint %s written in %.2f "
                   "s; run the same command to resume\n", sig, strsignal(sig), step,
                   r->last_saved.path, rt_now() - t0);
        else
            printf("Stopped:     signal %d (%s) after step %ld%s\n", sig, strsignal(sig), step,
                   o->checkpoint_dir[0] ? "; checkpoint written by rank 0"
                                        : " (no --checkpoint_dir: nothing saved)");
        fflush(stdout);
    }
    return RT_ESTOPPED;
}

/* After every step, one small allreduce tells every rank whether any rank
 * was asked to stop and whether rank 0's last checkpoint write failed, so
 * that they stop after the same step, or fail together. A checkpoint due
 * after this step is handed to rank 0's writer first (the wait is only
 * for the previous write, if it still runs). */
static int run_control(run_t *r, long step)
{
    const worker_options_t *o = r->o;
    int rc = 0;
    int due = o->checkpoint_dir[0] && o->checkpoint_every > 0 &&
              (step + 1) % o->checkpoint_every == 0;
    if (due && r->writer) {
        double t0 = rt_now();
        rc = checkpoint_begin(r, step + 1);
        if (!rc && r->sync->tl)
            timeline_add(&r->timeline, TL_CHECKPOINT, -1, t0, rt_now(), 0, -1);
    }
    ckpt_result_t res;
    if (!rc && r->writer && ckpt_writer_poll(r->writer, &res))
        rc = checkpoint_report(r, &res, 0);
    if (!rc && due)
        rc = trace_write(r);
    double ctl[2] = {(double)worker_stop_signal(), -(double)rc};
    int arc = coll_allreduce_f64_max(r->comm, ctl, 2);
    if (arc) {
        fprintf(stderr, "ringtrain-worker: error: rank %d: step %ld: could not learn the other "
                        "ranks' state (a rank failed, or this step's gradient exchange failed: "
                        "%s; see above); aborting the job\n", r->rank, step + 1,
                rt_strerror(arc));
        coll_abort(r->comm, 1);
        return arc;
    }
    /* The rank that failed said why. */
    if (ctl[1] > 0)
        return -(int)ctl[1];
    return ctl[0] > 0 ? run_stop(r, step + 1, (int)ctl[0]) : 0;
}

/* The step loop. Nothing in it allocates. A failure aborts the job (no
 * rank is left waiting for this one). */
static int run_train(run_t *r)
{
    const worker_options_t *o = r->o;
    long total_steps = r->warmup + r->timed;
    double t_start = rt_now();
    for (long step = r->start_step; step < total_steps; step++) {
        if (r->fault.sig && r->fault.rank == r->rank && r->fault.step == step + 1)
            raise(r->fault.sig);
        if (step == r->warmup) {
            /* A GPU may still run queued warm-up steps (the host waits for
             * it nowhere inside a step): start timing once it has not. */
            int rc = device_sync(&r->dev);
            if (rc) {
                fprintf(stderr, "ringtrain-worker: error: rank %d: the GPU reported an "
                                "error in warm-up (see above)\n", r->rank);
                coll_abort(r->comm, 1);
                return rc;
            }
            if (r->rank == r->printer) {
                if (r->warmup > 0)
                    printf("Done warm up\n");
                printf("Step\tImg/sec\ttotal_loss\n");
                fflush(stdout);
            }
            t_start = rt_now();
        }
        double t0 = rt_now();
        r->timeline.step = step + 1;
        float loss = 0.0f;
        int rc = run_one_step(r, step, &loss);
        if (!rc)
            rc = trace_step(r, step);
        if (rc) {
            coll_abort(r->comm, 1);
            return rc;
        }
        sampler_pos_advance(&r->sampler, &r->pos);
        /* Every rank learns of stops and failed saves: they end together. */
        rc = run_control(r, step);
        if (rc)
            return rc;
        if (r->sync->tl)
            timeline_add(&r->timeline, TL_STEP, -1, t0, rt_now(), 0, -1);
        double dt = rt_now() - t0;
        if (step < r->warmup)
            continue;
        long k = step - r->warmup;
        r->times[(size_t)k % r->keep] = dt;
        long shown = step + 1 - r->display_base;
        if (r->rank == r->printer &&
            (k == 0 || shown % o->display_every == 0 || step + 1 == total_steps)) {
            rc = print_step_line(r, step, k, loss);
            if (rc) {
                coll_abort(r->comm, 1);
                return rc;
            }
        }
    }
    int rc = device_sync(&r->dev);
    if (rc) {
        fprintf(stderr, "ringtrain-worker: error: rank %d: the GPU reported an error (see above)\n",
                r->rank);
        coll_abort(r->comm, 1);
        return rc;
    }
    r->elapsed = rt_now() - t_start;
    /* On a GPU the last buckets may still be in flight: a failure of theirs
     * surfaces here. */
    rc = coll_allreduce_f64_max(r->comm, &r->elapsed, 1);
    if (rc)
        fprintf(stderr, "ringtrain-worker: error: rank %d: the last steps' gradient "
                        "exchange failed: %s (see above)\n", r->rank, rt_strerror(rc));
    return rc;
}

/* After the loop: the timeline, a last finiteness check, the final
 * checkpoint, and the total speed. */
static int run_finish(run_t *r)
{
    const worker_options_t *o = r->o;
    model_t *m = r->m;
    int rc;
    long total_steps = r->warmup + r->timed;
    if (o->timeline[0]) {
        m->trace = NULL;
        rc = write_timeline(o, r->comm, &r->timeline, m, r->sync);
        if (rc)
            return rc;
    }
    /* The last update is never followed by a forward: check it here. The
     * ranks' parameters differ in independent and parameter-server modes,
     * so they agree before anything collective follows. */
    rc = 0;
    if (r->dev.kind == WORKER_DEVICE_CPU && nonfinite_node(m) >= 0) {
        report_nonfinite(m, r->rank, total_steps + 1, 0.0);
        rc = RT_ENONFINITE;
    }
    rc = agree_status(r->comm, rc);
    if (rc)
        return rc;
    if (o->checkpoint_dir[0] && total_steps > r->start_step) {
        rc = r->writer ? checkpoint_finish(r, total_steps, 0) : 0;
        rc = agree_saved(r, rc);
        if (rc)
            return rc;
    }
    rc = agree_status(r->comm, trace_write(r));
    if (rc)
        return rc;
    if (r->rank == r->printer && r->timed > 0) {
        printf("----------------------------------------------------------------\n");
        printf("total images/sec: %.2f\n", r->global_batch * (double)r->timed / r->elapsed);
        printf("----------------------------------------------------------------\n");
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru) == 0)
            printf("peak RSS (rank 0): %.0f MiB\n", (double)ru.ru_maxrss / 1024.0);
        device_print_summary(&r->dev);
        fflush(stdout);
    }
    return 0;
}

/* --eval: accuracy on the test set (the training set for synthetic data). */
static int run_eval(run_t *r)
{
    const worker_options_t *o = r->o;
    const dataset_t *eval_set = o->data == WORKER_DATA_FASHION_MNIST ? &r->test : &r->train;
    size_t per = (size_t)r->c * (size_t)r->h * (size_t)r->w;
    float *images = rt_alloc_aligned((size_t)o->batch_size * per * sizeof(float), 64);
    int32_t *labels = calloc((size_t)o->batch_size, sizeof(int32_t));
    double accuracy = 0;
    int rc = RT_ENOMEM;
    if (images && labels)
        rc = evaluate(r->comm, &r->dev, r->m, eval_set,
                      r->ps.enabled && r->ps.is_server ? -1 : r->data_rank, r->data_ranks,
                      images, labels, &accuracy);
    rt_free_aligned(images);
    free(labels);
    if (!rc && r->rank == r->printer) {
        printf("Accuracy @ 1 = %.4f [%zu examples]\n", accuracy, eval_set->count);
        fflush(stdout);
    }
    return rc;
}

static int run_dump_params(run_t *r)
{
    const worker_options_t *o = r->o;
    if (r->rank != r->printer)
        return 0;
    const float *params = device_params(&r->dev, r->m);
    if (!params) {
        fprintf(stderr, "ringtrain-worker: error: --dump_params=%s: cannot copy the parameters "
                        "from the GPU (see above)\n", o->dump_params);
        return RT_ECUDA;
    }
    char err[1536];
    int rc = write_params(o->dump_params, params, r->m->arena_floats, err, sizeof err);
    if (rc)
        fprintf(stderr, "ringtrain-worker: error: --dump_params: %s\n", err);
    return rc;
}

int worker_run(const worker_options_t *o, coll_comm_t *comm)
{
    run_t *r = calloc(1, sizeof *r);
    if (!r)
        return RT_ENOMEM;
    r->o = o;
    r->comm = comm;
    r->rank = coll_comm_rank(comm);
    r->size = coll_comm_size(comm);
    int rc = run_build_model(r);
    if (!rc)
        rc = run_choose_mode(r);
    if (!rc)
        rc = run_check_outputs(r);
    if (!rc)
        rc = run_load_data(r);
    if (!rc)
        rc = run_init_params(r);
    if (!rc)
        rc = run_prepare_steps(r);
    if (!rc)
        rc = run_prepare_saves(r);
    if (!rc) {
        if (r->rank == r->printer)
            print_header(r);
        rc = run_train(r);
    }
    if (!rc)
        rc = run_finish(r);
    if (!rc && o->eval)
        rc = run_eval(r);
    if (!rc) {
        if (o->dump_params[0])
            rc = run_dump_params(r);
        rc = agree_status(comm, rc);
    }
    run_free(r);
    free(r);
    return rc;
}
