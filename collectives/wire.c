/* collectives: wire compression of fp32 allreduces (what the ring sends
 * between ranks, and hier between hosts, travels as fp16 or bf16).
 *
 * Selected per communicator (coll_config_t.compression, the same on every
 * rank). It changes only the bytes on the wire: the ring converts each
 * segment to the wire type just before it is sent (into one of
 * COLL__RING_DEPTH staging segments, so nothing is allocated per call),
 * receives wire segments, and adds them to its fp32 partial sums in fp32
 * (coll__reduce_wire). The owner of a fully reduced block rounds it through
 * the wire type too (COLL__REDUCE_ROUND), so the copy it keeps equals the one
 * every other rank receives: results stay bitwise identical everywhere.
 *
 * Error: along a block's path through an n-rank ring the partial sum is
 * rounded to the wire type at each of the n-1 reduce-scatter hops and once
 * more by its owner; each rounding errs by at most u * |partial sum| + eta
 * (u = 2^-11 fp16, 2^-8 bf16; eta = half the subnormal spacing, 2^-25 for
 * fp16 below 6.1e-5, 2^-134 for bf16), and every partial sum is at most
 * S = sum_r |x_r|, so |result - exact| <= n * (u * S + eta) (plus fp32
 * additions, (n-1) * 2^-24 * S, and for avg the scale's rounding). In hier
 * the intra-host sums are fp32 and only the ring over h hosts rounds:
 * h * (u * S + eta); with two hosts each side's partial sum is rounded once
 * before the exchange, u * S + 2 eta. fp16 values beyond 65504 become inf.
 */
#include <string.h>

#include "coll_internal.h"

const char *coll_compression_name(coll_compression_t compression)
{
    switch (compression) {
    case COLL_COMPRESS_NONE:
        return "none";
    case COLL_COMPRESS_FP16:
        return "fp16";
    case COLL_COMPRESS_BF16:
        return "bf16";
    default:
        return "unknown";
    }
}

int coll_compression_parse(const char *text, coll_compression_t *out)
{
    if (text == NULL || out == NULL)
        return RT_EINVAL;
    for (int k = 0; k < COLL_COMPRESS_COUNT; k++) {
        if (strcmp(text, coll_compression_name((coll_compression_t)k)) == 0) {
            *out = (coll_compression_t)k;
            return 0;
        }
    }
    return RT_EINVAL;
}

coll_compression_t coll_comm_compression(const coll_comm_t *comm)
{
    return comm ? (coll_compression_t)comm->compression : COLL_COMPRESS_NONE;
}

int coll__wire_create(coll_comm_t *c, coll_compression_t compression)
{
    if ((int)compression < 0 || compression >= COLL_COMPRESS_COUNT) {
        rt_log_error("collectives: unknown compression %d (valid: 0 none, 1 "
                     "fp16, 2 bf16)", (int)compression);
        return RT_EINVAL;
    }
    c->compression = (int)compression;
    c->wire = compression == COLL_COMPRESS_FP16   ? COLL_F16
              : compression == COLL_COMPRESS_BF16 ? COLL_BF16
                                                  : COLL_F32;
    c->wire_tmp = NULL;
    if (compression == COLL_COMPRESS_NONE)
        return 0;
    /* Send staging: a wire segment holds segment_bytes of fp32 as 16-bit
     * values, half the bytes (the receive side reuses comm->tmp). */
    c->wire_tmp = rt_alloc_aligned(COLL__RING_DEPTH * (c->segment_bytes / 2), 64);
    return c->wire_tmp ? 0 : RT_ENOMEM;
}

void coll__wire_destroy(coll_comm_t *c)
{
    rt_free_aligned(c->wire_tmp);
    c->wire_tmp = NULL;
}
