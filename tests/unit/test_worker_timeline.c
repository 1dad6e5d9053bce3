/* Unit tests for worker/timeline's write, with the collectives replaced by
 * a recording stand-in for one rank of a job: only rank 0 receives events
 * (the others send theirs to rank 0 and receive nothing), rank 0 writes
 * every rank's events through the atomic writer (a symlink at the name is
 * replaced, not followed), and a file that cannot be written still drains
 * every rank's events and fails on every rank. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/common.h"
#include "worker/timeline.h"

/* ---- the stand-in: this process is rank `rank` of `size` ---------------- */
struct coll_comm {
    int rank, size;
};

#define EVENTS_PER_PEER 3

static size_t received_bytes; /* from other ranks, in any call */
static int sent_elsewhere;    /* sends to a rank other than 0 */
static int exchanges_from[8]; /* rank 0: receives posted per peer */

int coll_comm_rank(const coll_comm_t *comm) { return comm->rank; }
int coll_comm_size(const coll_comm_t *comm) { return comm->size; }
int coll_barrier(coll_comm_t *comm) { (void)comm; return 0; }
void coll_abort(coll_comm_t *comm, int exit_code)
{
    (void)comm;
    fail_msg("coll_abort(%d)", exit_code);
}

int coll_allreduce_f64_min(coll_comm_t *comm, double *values, size_t count)
{
    (void)comm;
    (void)values;
    (void)count;
    return 0;
}

int coll_broadcast(coll_comm_t *comm, void *buf, size_t bytes, int root)
{
    if (root == comm->rank)
        return 0;
    received_bytes += bytes;
    /* A peer's event count, as a double, then its events (zeros). */
    if (bytes == sizeof(double))
        *(double *)buf = EVENTS_PER_PEER;
    else
        memset(buf, 0, bytes);
    return 0;
}

/* A peer's message to rank 0: its counts, then EVENTS_PER_PEER steps. */
static void fill_from(int peer, void *buf, size_t bytes)
{
    if (bytes == 2 * sizeof(uint64_t)) {
        uint64_t counts[2] = {EVENTS_PER_PEER, peer == 2 ? 1 : 0};
        memcpy(buf, counts, sizeof counts);
        return;
    }
    assert_int_equal(bytes, EVENTS_PER_PEER * sizeof(tl_event_t));
    tl_event_t *e = buf;
    for (int i = 0; i < EVENTS_PER_PEER; i++)
        e[i] = (tl_event_t){.t0 = peer + 0.1 * i, .t1 = peer + 0.1 * i + 0.05,
                            .kind = TL_STEP, .arg = -1, .step = i + 1, .algorithm = -1};
}

int coll_exchange(coll_comm_t *comm, const coll_msg_t *sends, int nsends,
                  const coll_msg_t *recvs, int nrecvs)
{
    for (int i = 0; i < nsends; i++)
        if (sends[i].peer != 0)
            sent_elsewhere++;
    for (int i = 0; i < nrecvs; i++) {
        assert_true(recvs[i].peer > 0 && recvs[i].peer < comm->size);
        received_bytes += recvs[i].bytes;
        exchanges_from[recvs[i].peer]++;
        fill_from(recvs[i].peer, recvs[i].buf, recvs[i].bytes);
    }
    return 0;
}

/* ---- tests --------------------------------------------------------------- */
static char dir[256];

static const char *const node_names[] = {"conv 5x5/1 1->32", "fc \"odd\" name"};
static const char *const algorithms[] = {"shm_oneshot"};
static const timeline_names_t names = {node_names, 2, algorithms};

static void record(timeline_t *tl, coll_comm_t *comm)
{
    received_bytes = 0;
    sent_elsewhere = 0;
    memset(exchanges_from, 0, sizeof exchanges_from);
    assert_int_equal(timeline_init(tl, 64, comm), 0);
    double t = rt_now();
    tl->step = 1;
    timeline_add(tl, TL_FORWARD, 0, t, t + 0.001, 0, -1);
    timeline_add(tl, TL_BACKWARD, 1, t + 0.001, t + 0.002, 0, -1);
    timeline_add(tl, TL_ALLREDUCE, 0, t + 0.001, t + 0.003, 4096, 0);
    timeline_add(tl, TL_STEP, -1, t, t + 0.004, 0, -1);
}

static size_t count_of(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[1 << 16];
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[got] = '\0';
    return buf;
}

/* Rank 2 of 4 sends its events to rank 0 and receives none of the others'. */
static void test_other_rank_only_sends(void **s)
{
    (void)s;
    struct coll_comm comm = {2, 4};
    timeline_t tl;
    record(&tl, &comm);
    char path[300];
    snprintf(path, sizeof path, "%s/rank2.json", dir);
    assert_int_equal(timeline_write(&tl, &comm, path, &names), 0);
    if (received_bytes != 0)
        fail_msg("rank 2 received %zu bytes of other ranks' events; only rank 0 needs them",
                 received_bytes);
    assert_int_equal(sent_elsewhere, 0);
    assert_int_not_equal(access(path, F_OK), 0);
    timeline_free(&tl);
}

/* Rank 0 of 3 writes name (in the test directory); returns what
 * timeline_write returned, after checking both peers were received. */
static int rank0_of_3_writes(const char *name)
{
    struct coll_comm comm = {0, 3};
    timeline_t tl;
    record(&tl, &comm);
    char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int rc = timeline_write(&tl, &comm, path, &names);
    timeline_free(&tl);
    assert_int_equal(exchanges_from[1], 2);
    assert_int_equal(exchanges_from[2], 2);
    return rc;
}

/* Rank 0 of 3 writes its own and both peers' events; a symlink at the name
 * is replaced, its target untouched; the file is 0644. */
static void test_rank0_writes_every_rank(void **s)
{
    (void)s;
    char path[300], victim[300];
    snprintf(path, sizeof path, "%s/rank0.json", dir);
    snprintf(victim, sizeof victim, "%s/victim", dir);
    FILE *f = fopen(victim, "w");
    assert_non_null(f);
    fputs("precious", f);
    fclose(f);
    assert_int_equal(symlink(victim, path), 0);
    assert_int_equal(rank0_of_3_writes("rank0.json"), 0);
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0644);
    assert_string_equal(slurp(victim), "precious");
    const char *json = slurp(path);
    assert_int_equal(count_of(json, "\"name\":\"process_name\""), 3);
    assert_int_equal(count_of(json, "\"name\":\"step\""), 1 + 2 * EVENTS_PER_PEER);
    assert_int_equal(count_of(json, "\"pid\":2,\"tid\":0,\"ts\""), EVENTS_PER_PEER);
    assert_non_null(strstr(json, "backward fc odd name"));
    assert_non_null(strstr(json, "\"algorithm\":\"shm_oneshot\""));
    assert_non_null(strstr(json, "\"ranks\":3}}\n"));
}

/* A file that cannot be created: every rank's events are still received
 * (no rank is left waiting to send) and the write fails. */
static void test_unwritable_still_drains(void **s)
{
    (void)s;
    assert_int_equal(rank0_of_3_writes("none/t.json"), RT_EIO);
}

static int setup(void **s)
{
    (void)s;
    snprintf(dir, sizeof dir, "/tmp/ringtrain-test-timeline.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

/* The tests leave these two files at most. */
static int teardown(void **s)
{
    (void)s;
    const char *left[] = {"rank0.json", "victim"};
    for (size_t i = 0; i < sizeof left / sizeof *left; i++) {
        char p[300];
        snprintf(p, sizeof p, "%s/%s", dir, left[i]);
        unlink(p);
    }
    return rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_other_rank_only_sends),
        cmocka_unit_test(test_rank0_writes_every_rank),
        cmocka_unit_test(test_unwritable_still_drains),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
