/* ringtrain worker: checkpoints.
 *
 * A checkpoint holds what a run needs to continue exactly where it was:
 * parameters, optimizer state (momentum), batch-norm running statistics and
 * the number of completed steps. Data order and every random draw are a
 * function of (seed, epoch, step), so no generator state is stored beyond
 * the seed; the data position is a sample index in the epoch's
 * permutation, so a run at another world size continues where this one
 * stopped. Version 1 files (no position) are read too. Layout (little-endian):
 *
 *   header (CKPT_HEADER_BYTES): magic "RTCKPT\0\1", version, sizes, model
 *     hash, step, seed, ranks, batch, payload CRC-32C, (version 2) the data
 *     position (epoch and sample index in its permutation) and the size of
 *     the training set, header CRC-32C
 *   payload: params[arena_floats] momentum[arena_floats] state[state_floats]
 *
 * Files are ckpt-<step, 12 digits>.rtck, mode 0600, written through the
 * atomic writer of common/files.c (a new O_EXCL temporary file, fsync,
 * rename, fsync of the directory): a crash leaves either the old set or the
 * new one, never a half-written checkpoint under a real name, and a symlink
 * planted at any name is never followed.
 */
#ifndef RINGTRAIN_WORKER_CHECKPOINT_H
#define RINGTRAIN_WORKER_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#define CKPT_HEADER_BYTES 96
#define CKPT_VERSION 2

typedef struct {
    uint64_t model_hash;
    uint64_t step;          /* completed steps */
    uint64_t seed;
    uint64_t arena_floats;  /* params and momentum each */
    uint64_t state_floats;
    uint32_t ranks, batch;  /* of the run that wrote it */
    uint32_t version;       /* decoded: the file's; encoding: 0 = CKPT_VERSION */
    /* Version 2 (zero in version 1): the next global batch starts at sample
     * `sample` of epoch `epoch`'s permutation of a training set of
     * data_count samples (0: synthetic data, whose size follows the world). */
    uint32_t sample, data_count;
    uint64_t epoch;
} ckpt_info_t;

/* Buffers a checkpoint is read into or written from. */
typedef struct {
    float *params, *momentum, *state;
} ckpt_data_t;

/* Bytes of a whole checkpoint file for these sizes. */
size_t ckpt_file_bytes(const ckpt_info_t *info);

/* Encodes header + payload into out (ckpt_file_bytes(info) bytes). */
void ckpt_encode(unsigned char *out, const ckpt_info_t *info,
                 const ckpt_data_t *data);

/* Decodes and checks a checkpoint held in memory. `expect` gives the model
 * hash and sizes it must match; data receives the payload (may be NULL to
 * only validate). On failure returns RT_EFORMAT / RT_ECORRUPT / RT_EMISMATCH
 * with the reason in err. */
int ckpt_decode(const unsigned char *buf, size_t bytes, const ckpt_info_t *expect,
                ckpt_info_t *info, ckpt_data_t *data, char *err, size_t err_bytes);

/* Makes dir ready for checkpoints before a run trains: creates it (0700)
 * when missing, refuses anything but a directory, and creates and removes a
 * file in it (permission bits say nothing for root, nor of a read-only or
 * immutable directory). Warns when group or others may write it. Returns 0
 * or RT_EIO with errno's text in err (callers name dir before it). */
int ckpt_dir_prepare(const char *dir, char *err, size_t err_bytes);

/* Writes a checkpoint for info->step into dir (which must exist), then
 * removes this model's checkpoints beyond the newest `keep`, keeping the new
 * one. Only files whose header is this model's (hash and sizes), whose step
 * matches their name and whose size is right count and are removed; others
 * under a checkpoint name are left alone. On failure nothing under a
 * ckpt-*.rtck name changes; returns RT_EIO (RT_EINVAL for a name too long)
 * and err says why, with errno's text. */
int ckpt_save(const char *dir, const ckpt_info_t *info, const ckpt_data_t *data,
              int keep, char *path_out, size_t path_bytes, char *err,
              size_t err_bytes);

/* Loads the newest valid checkpoint of dir into data. Invalid ones (also a
 * FIFO or a directory under a checkpoint's name, never blocked on) are
 * skipped with a warning naming them. A valid one of another model (hash or
 * sizes differ from expect) stops the search: RT_EMISMATCH, err naming it
 * and why, path_out filled (resuming past it would silently restart the
 * job from an older state). Returns 0 (info and path filled), RT_ENOENT
 * when there is none (a fresh start), or another RT_E... */
int ckpt_load_latest(const char *dir, const ckpt_info_t *expect,
                     ckpt_info_t *info, ckpt_data_t *data, char *path_out,
                     size_t path_bytes, char *err, size_t err_bytes);

/* ---- background writer ---------------------------------------------------
 * Saving must not stall training: the caller copies the state into host
 * buffers made once (ckpt_writer_buffers) and submits; one thread writes
 * the file (ckpt_save: atomic, CRC, pruning) while training goes on. One
 * write runs at a time: the caller waits for the previous one before it
 * refills the buffers, and learns each write's outcome once, by poll or
 * wait. */
typedef struct ckpt_writer ckpt_writer_t;

/* The outcome of one write. */
typedef struct {
    int rc;              /* 0, or ckpt_save's code */
    uint64_t step;
    double seconds;      /* the write alone, in the thread */
    char path[4200];
    char err[1536];
} ckpt_result_t;

/* Makes the buffers (params and momentum of shape->arena_floats each,
 * state of shape->state_floats) and starts the thread. 0, RT_ENOMEM or
 * RT_ESYS. */
int ckpt_writer_create(ckpt_writer_t **out, const char *dir, const ckpt_info_t *shape,
                       int keep);
/* Where the caller puts the state before ckpt_writer_submit. Not to be
 * touched while a write runs. */
ckpt_data_t ckpt_writer_buffers(ckpt_writer_t *w);
/* Writes the buffers as checkpoint info->step in the background. RT_EBUSY
 * when a write runs or its outcome was not taken yet. */
int ckpt_writer_submit(ckpt_writer_t *w, const ckpt_info_t *info);
/* 1 and *res when a write finished whose outcome was not taken yet; 0
 * otherwise (idle, or still writing). Never blocks. */
int ckpt_writer_poll(ckpt_writer_t *w, ckpt_result_t *res);
/* Waits for a running write; 1 and *res as poll, 0 when there is none. */
int ckpt_writer_wait(ckpt_writer_t *w, ckpt_result_t *res);
/* Waits for a running write, stops the thread and frees; accepts NULL. */
void ckpt_writer_destroy(ckpt_writer_t *w);

#endif
