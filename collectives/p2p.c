/* ringtrain collectives: point-to-point exchange (parameter-server mode).
 *
 * coll_exchange posts every receive, then every send, and waits for all of
 * them on the progress thread; messages larger than one MPI call allows go in
 * chunks. Messages between one pair of ranks match in the order posted (MPI's
 * non-overtaking rule), so both sides need only agree on the order. The
 * request array grows once to the largest exchange seen and is reused. */
#include <stdlib.h>
#include <string.h>

#include "coll_internal.h"

typedef struct {
    const coll_msg_t *sends, *recvs;
    int nsends, nrecvs;
} exchange_t;

#define EXCHANGE_TAG 0x7073 /* "ps" */

static size_t chunks_of(const coll_comm_t *c, size_t bytes)
{
    return bytes == 0 ? 0 : (bytes + c->mpi_chunk_bytes - 1) / c->mpi_chunk_bytes;
}

static int post(coll_comm_t *c, const coll_msg_t *m, int send, size_t *n)
{
    for (size_t off = 0; off < m->bytes; off += c->mpi_chunk_bytes) {
        size_t len = m->bytes - off < c->mpi_chunk_bytes ? m->bytes - off : c->mpi_chunk_bytes;
        char *p = (char *)m->buf + off;
        if (send)
            COLL__MPI_CHECK(MPI_Isend(p, (int)len, MPI_BYTE, m->peer, EXCHANGE_TAG,
                                      c->comm, &c->p2p_reqs[(*n)++]));
        else
            COLL__MPI_CHECK(MPI_Irecv(p, (int)len, MPI_BYTE, m->peer, EXCHANGE_TAG,
                                      c->comm, &c->p2p_reqs[(*n)++]));
    }
    return 0;
}

int coll__exec_exchange(coll_comm_t *c, const void *arg)
{
    const exchange_t *x = arg;
    size_t total = 0;
    for (int i = 0; i < x->nsends; i++)
        total += chunks_of(c, x->sends[i].bytes);
    for (int i = 0; i < x->nrecvs; i++)
        total += chunks_of(c, x->recvs[i].bytes);
    if (total > c->p2p_cap) {
        MPI_Request *grown = realloc(c->p2p_reqs, total * sizeof *grown);
        if (!grown)
            return RT_ENOMEM;
        c->p2p_reqs = grown;
        c->p2p_cap = total;
    }
    size_t n = 0;
    int rc = 0;
    for (int i = 0; i < x->nrecvs && rc == 0; i++)
        rc = post(c, &x->recvs[i], 0, &n);
    for (int i = 0; i < x->nsends && rc == 0; i++)
        rc = post(c, &x->sends[i], 1, &n);
    /* Wait for everything posted, also after a failure to post. */
    for (size_t left = n; left > 0; left--) {
        int index = MPI_UNDEFINED;
        int wrc = coll__mpi_waitany(c, (int)n, c->p2p_reqs, &index);
        if (wrc) {
            rc = wrc;
            break;
        }
    }
    return rc;
}

static int check_msgs(const coll_comm_t *c, const coll_msg_t *m, int count, const char *what)
{
    if (count < 0 || (count > 0 && m == NULL)) {
        rt_log_error("coll_exchange: %s: %d messages but no array", what, count);
        return RT_EINVAL;
    }
    for (int i = 0; i < count; i++) {
        if (m[i].peer < 0 || m[i].peer >= c->size || m[i].peer == c->rank) {
            rt_log_error("coll_exchange: %s[%d]: peer %d is not another rank of %d", what, i,
                         m[i].peer, c->size);
            return RT_EINVAL;
        }
        if (m[i].bytes > 0 && m[i].buf == NULL) {
            rt_log_error("coll_exchange: %s[%d]: NULL buffer for %zu bytes", what, i,
                         m[i].bytes);
            return RT_EINVAL;
        }
    }
    return 0;
}

int coll_exchange(coll_comm_t *comm, const coll_msg_t *sends, int nsends,
                  const coll_msg_t *recvs, int nrecvs)
{
    if (comm == NULL)
        return RT_EINVAL;
    int rc = check_msgs(comm, sends, nsends, "sends");
    if (rc == 0)
        rc = check_msgs(comm, recvs, nrecvs, "recvs");
    if (rc)
        return rc;
    rc = coll__broken(comm);
    if (rc != 0)
        return rc;
    exchange_t x = {sends, recvs, nsends, nrecvs};
    coll_request_t req;
    memset(&req, 0, sizeof req);
    req.comm = comm;
    req.kind = COLL__KIND_EXCHANGE;
    req.sendbuf = &x;
    req.algorithm = -1;
    return coll__run_blocking(comm, &req);
}
