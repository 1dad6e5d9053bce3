/* collectives internal: how a vector is cut into blocks and segments.
 *
 * Blocks: count elements over parts ranks; the first count % parts blocks get
 * one element more (Open MPI's convention), so block sizes differ by at most
 * one and every element belongs to exactly one block. Segments: a range cut
 * into pieces of at most seg elements; the last one is shorter.
 */
#ifndef RINGTRAIN_COLLECTIVES_BLOCKS_H
#define RINGTRAIN_COLLECTIVES_BLOCKS_H

#include <stddef.h>

static inline size_t coll__block_count(size_t count, size_t parts, size_t b)
{
    return count / parts + (b < count % parts ? 1 : 0);
}

static inline size_t coll__block_offset(size_t count, size_t parts, size_t b)
{
    size_t extra = count % parts;
    return b * (count / parts) + (b < extra ? b : extra);
}

/* Number of segments of at most seg elements covering count (0 for 0). */
static inline size_t coll__seg_total(size_t count, size_t seg)
{
    return (count + seg - 1) / seg;
}

/* Elements in segment s of a range of count elements. */
static inline size_t coll__seg_count(size_t count, size_t seg, size_t s)
{
    size_t off = s * seg;
    return count - off < seg ? count - off : seg;
}

#endif
