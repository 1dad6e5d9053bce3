/* ringtrain worker: checkpoints.
 *
 * A checkpoint holds what a run needs to continue exactly where it was:
 * parameters, optimizer state (momentum), batch-norm running statistics and
 * the number of completed steps. Data order and every random draw are a
 * function of (seed, epoch, step), so no generator state is stored beyond
 * the seed. Layout (little-endian):
 *
 *   header (CKPT_HEADER_BYTES): magic "RTCKPT\0\1", version, sizes, model
 *     hash, step, seed, ranks, batch, payload CRC-32C, header CRC-32C
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
#define CKPT_VERSION 1

typedef struct {
    uint64_t model_hash;
    uint64_t step;          /* completed steps */
    uint64_t seed;
    uint64_t arena_floats;  /* params and momentum each */
    uint64_t state_floats;
    uint32_t ranks, batch;  /* of the run that wrote it (informational) */
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
 * skipped with a warning naming them. Returns 0 (info and path filled),
 * RT_ENOENT when there is none (a fresh start), or another RT_E... */
int ckpt_load_latest(const char *dir, const ckpt_info_t *expect,
                     ckpt_info_t *info, ckpt_data_t *data, char *path_out,
                     size_t path_bytes, char *err, size_t err_bytes);

#endif
