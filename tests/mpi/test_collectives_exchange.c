/* MPI test of coll_exchange: a ring (each rank sends to the next, receives
 * from the previous), a star (rank 0 gathers from and scatters to all, as a
 * parameter server does), messages of many sizes (chunked when
 * RINGTRAIN_MPI_CHUNK_BYTES is small), and bad arguments refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "collectives/collectives.h"
#include "common/common.h"

static int failures;

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                   \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
            failures++;                                                       \
        }                                                                     \
    } while (0)

static unsigned char value(int from, int to, size_t i) { return (unsigned char)(from * 31 + to * 7 + i * 13); }

int main(int argc, char **argv)
{
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
    coll_comm_t *c = NULL;
    if (coll_comm_create(&c, MPI_COMM_WORLD, NULL) != 0) {
        fprintf(stderr, "cannot create communicator\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    int rank = coll_comm_rank(c), size = coll_comm_size(c);
    const size_t sizes[] = {0, 1, 7, 4096, 100003, 3u << 20};
    size_t max = 3u << 20;
    unsigned char *out = malloc(max), *in = malloc(max);
    unsigned char **ins = calloc((size_t)size, sizeof *ins), **outs = calloc((size_t)size, sizeof *outs);
    for (int r = 0; r < size; r++) {
        ins[r] = malloc(max);
        outs[r] = malloc(max);
    }
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0] && size > 1; k++) {
        size_t bytes = sizes[k];
        /* Ring. */
        int next = (rank + 1) % size, prev = (rank + size - 1) % size;
        for (size_t i = 0; i < bytes; i++)
            out[i] = value(rank, next, i);
        memset(in, 0xee, bytes);
        coll_msg_t s = {out, bytes, next}, r = {in, bytes, prev};
        CHECK(coll_exchange(c, &s, 1, &r, 1) == 0, "ring exchange of %zu bytes failed", bytes);
        for (size_t i = 0; i < bytes; i++)
            if (in[i] != value(prev, rank, i)) {
                CHECK(0, "ring %zu bytes: byte %zu from %d is %u, expected %u", bytes, i, prev, in[i],
                      value(prev, rank, i));
                break;
            }
        /* Star: everyone sends to rank 0, then rank 0 answers everyone. */
        coll_msg_t msgs[64];
        int n = 0;
        if (rank == 0) {
            for (int p = 1; p < size && n < 64; p++)
                msgs[n++] = (coll_msg_t){ins[p], bytes, p};
            CHECK(coll_exchange(c, NULL, 0, msgs, n) == 0, "star gather failed");
            n = 0;
            for (int p = 1; p < size && n < 64; p++) {
                for (size_t i = 0; i < bytes; i++) {
                    if (ins[p][i] != value(p, 0, i)) {
                        CHECK(0, "star %zu bytes: byte %zu from %d wrong", bytes, i, p);
                        break;
                    }
                    outs[p][i] = (unsigned char)(ins[p][i] + 1);
                }
                msgs[n++] = (coll_msg_t){outs[p], bytes, p};
            }
            CHECK(coll_exchange(c, msgs, n, NULL, 0) == 0, "star scatter failed");
        } else {
            for (size_t i = 0; i < bytes; i++)
                out[i] = value(rank, 0, i);
            coll_msg_t up = {out, bytes, 0}, down = {in, bytes, 0};
            CHECK(coll_exchange(c, &up, 1, &down, 1) == 0, "star worker exchange failed");
            for (size_t i = 0; i < bytes; i++)
                if (in[i] != (unsigned char)(value(rank, 0, i) + 1)) {
                    CHECK(0, "star %zu bytes: answer byte %zu wrong", bytes, i);
                    break;
                }
        }
    }
    /* Bad arguments: refused on the calling rank, nothing sent. */
    coll_msg_t self = {out, 4, rank}, far = {out, 4, size}, nul = {NULL, 4, (rank + 1) % size};
    CHECK(coll_exchange(c, &self, 1, NULL, 0) == RT_EINVAL, "sending to oneself accepted");
    CHECK(coll_exchange(c, &far, 1, NULL, 0) == RT_EINVAL, "peer out of range accepted");
    if (size > 1)
        CHECK(coll_exchange(c, &nul, 1, NULL, 0) == RT_EINVAL, "NULL buffer accepted");
    CHECK(coll_exchange(c, NULL, 1, NULL, 0) == RT_EINVAL, "NULL array accepted");
    CHECK(coll_exchange(c, NULL, 0, NULL, 0) == 0, "empty exchange refused");

    int total = failures;
    double f = failures;
    coll_allreduce_f64_sum(c, &f, 1);
    if (rank == 0)
        printf("coll_exchange at %d ranks: %s (%d failure(s) over all ranks)\n", size,
               f == 0 ? "ok" : "FAILED", (int)f);
    for (int r = 0; r < size; r++) {
        free(ins[r]);
        free(outs[r]);
    }
    free(ins);
    free(outs);
    free(out);
    free(in);
    coll_comm_destroy(c);
    MPI_Finalize();
    return total || f != 0 ? 1 : 0;
}
