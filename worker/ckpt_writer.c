/* ringtrain worker: the background checkpoint writer. One thread, one set
 * of host buffers made once: the step loop copies the state in (a memcpy,
 * or a download from the GPU) and goes on training while the thread
 * encodes, writes, fsyncs, renames and prunes (ckpt_save). The loop waits
 * only when it wants to refill the buffers while the previous write still
 * runs. */
#include "checkpoint.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

typedef enum { W_IDLE, W_QUEUED, W_WRITING, W_DONE } writer_state_t;

struct ckpt_writer {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int quit;
    writer_state_t state;
    char dir[4096];
    int keep;
    ckpt_info_t info;      /* of the queued or running write */
    ckpt_data_t buf;       /* made once */
    ckpt_result_t result;  /* of the last write, valid in W_DONE */
};

static void write_one(ckpt_writer_t *w)
{
    ckpt_result_t *res = &w->result;
    memset(res, 0, sizeof *res);
    res->step = w->info.step;
    double t0 = rt_now();
    res->rc = ckpt_save(w->dir, &w->info, &w->buf, w->keep, res->path, sizeof res->path,
                        res->err, sizeof res->err);
    res->seconds = rt_now() - t0;
}

static void *writer_main(void *arg)
{
    ckpt_writer_t *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->quit && w->state != W_QUEUED)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->state != W_QUEUED)
            break;
        w->state = W_WRITING;
        /* The buffers and info are the writer's until W_DONE. */
        pthread_mutex_unlock(&w->mu);
        write_one(w);
        pthread_mutex_lock(&w->mu);
        w->state = W_DONE;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void buffers_free(ckpt_writer_t *w)
{
    rt_free_aligned(w->buf.params);
    rt_free_aligned(w->buf.momentum);
    rt_free_aligned(w->buf.state);
}

int ckpt_writer_create(ckpt_writer_t **out, const char *dir, const ckpt_info_t *shape,
                       int keep)
{
    *out = NULL;
    ckpt_writer_t *w = calloc(1, sizeof *w);
    if (!w)
        return RT_ENOMEM;
    snprintf(w->dir, sizeof w->dir, "%s", dir);
    w->keep = keep;
    size_t arena = (size_t)shape->arena_floats * sizeof(float);
    size_t state = (size_t)shape->state_floats * sizeof(float);
    w->buf.params = rt_alloc_aligned(arena ? arena : 64, 64);
    w->buf.momentum = rt_alloc_aligned(arena ? arena : 64, 64);
    w->buf.state = rt_alloc_aligned(state ? state : 64, 64);
    if (!w->buf.params || !w->buf.momentum || !w->buf.state) {
        buffers_free(w);
        free(w);
        return RT_ENOMEM;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        buffers_free(w);
        free(w);
        return RT_ESYS;
    }
    *out = w;
    return 0;
}

ckpt_data_t ckpt_writer_buffers(ckpt_writer_t *w)
{
    return w->buf;
}

int ckpt_writer_submit(ckpt_writer_t *w, const ckpt_info_t *info)
{
    pthread_mutex_lock(&w->mu);
    int rc = RT_EBUSY;
    if (w->state == W_IDLE) {
        w->info = *info;
        w->state = W_QUEUED;
        pthread_cond_broadcast(&w->cv);
        rc = 0;
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

/* Takes a finished write's outcome (mu held). */
static int take(ckpt_writer_t *w, ckpt_result_t *res)
{
    if (w->state != W_DONE)
        return 0;
    *res = w->result;
    w->state = W_IDLE;
    return 1;
}

int ckpt_writer_poll(ckpt_writer_t *w, ckpt_result_t *res)
{
    pthread_mutex_lock(&w->mu);
    int got = take(w, res);
    pthread_mutex_unlock(&w->mu);
    return got;
}

int ckpt_writer_wait(ckpt_writer_t *w, ckpt_result_t *res)
{
    pthread_mutex_lock(&w->mu);
    while (w->state == W_QUEUED || w->state == W_WRITING)
        pthread_cond_wait(&w->cv, &w->mu);
    int got = take(w, res);
    pthread_mutex_unlock(&w->mu);
    return got;
}

void ckpt_writer_destroy(ckpt_writer_t *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    /* A queued write is still written: it may be the last checkpoint. */
    while (w->state == W_QUEUED || w->state == W_WRITING)
        pthread_cond_wait(&w->cv, &w->mu);
    w->quit = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    buffers_free(w);
    free(w);
}
