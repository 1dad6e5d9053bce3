/* ringtrain-worker: one rank of a data-parallel training job. Run it under
 * mpirun (or ringtrain-launcher); every rank gets the same flags. */
#include <signal.h>
#include <stdio.h>

#include <mpi.h>

#include "collectives/collectives.h"
#include "common/common.h"
#include "worker.h"

static int exit_code(int rc)
{
    if (rc == 0)
        return 0;
    /* Stopped as asked, its checkpoint written: 128 + SIGTERM, as a shell
     * reports a process SIGTERM ended. */
    if (rc == RT_ESTOPPED)
        return 128 + SIGTERM;
    if (rc == RT_EINVAL || rc == RT_EFORMAT || rc == RT_ENOENT || rc == RT_EMISMATCH)
        return 2;
    return 1;
}

/* --compression's choices are stored as their index. */
_Static_assert(COLL_COMPRESS_NONE == 0 && COLL_COMPRESS_FP16 == 1 && COLL_COMPRESS_BF16 == 2,
               "worker --compression=none|fp16|bf16 indexes coll_compression_t");

int main(int argc, char **argv)
{
    /* A file-size limit (ulimit -f) must fail the write with EFBIG, which the
     * writers report and every rank agrees on, not kill this rank. */
    signal(SIGXFSZ, SIG_IGN);
    int provided = 0;
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "ringtrain-worker: error: MPI_Init_thread failed; run under mpirun\n");
        return 1;
    }
    /* After MPI_Init_thread, so no handler of the MPI library's replaces it. */
    if (worker_stop_install() != 0)
        fprintf(stderr, "ringtrain-worker: warning: cannot catch SIGTERM/SIGUSR1; a stop "
                        "request will end this rank without a checkpoint\n");
    worker_options_t opts;
    worker_options_init(&opts);
    char err[1024] = "";
    int parse_rc = worker_options_parse(&opts, argc, argv, err, sizeof err);

    coll_config_t cfg;
    coll_config_init(&cfg);
    if (parse_rc == 0 && opts.allreduce[0])
        cfg.algorithm = opts.allreduce;
    if (parse_rc == 0) {
        cfg.stall_timeout = opts.stall_timeout;
        cfg.compression = (coll_compression_t)opts.compression;
        /* 0 threads = every core of the rank's share: the CPUs are full. */
        cfg.compute_threads = opts.num_intra_threads > 0 ? opts.num_intra_threads : -1;
    }
    coll_comm_t *comm = NULL;
    int rc = coll_comm_create(&comm, MPI_COMM_WORLD, &cfg);
    if (rc) {
        fprintf(stderr, "ringtrain-worker: error: cannot set up collectives: %s%s\n",
                rt_strerror(rc), rc == RT_EINVAL ? " (check --allreduce / RINGTRAIN_ALLREDUCE)" : "");
        MPI_Finalize();
        return exit_code(rc);
    }
    int rank = coll_comm_rank(comm);
    rt_log_set_rank(rank);
    if (parse_rc) {
        if (rank == 0)
            fprintf(stderr, "ringtrain-worker: error: %s\n", err);
        rc = parse_rc;
    } else if (opts.help) {
        if (rank == 0)
            fputs(worker_usage(), stdout);
    } else {
        rc = worker_run(&opts, comm);
    }
    coll_comm_destroy(comm);
    MPI_Finalize();
    return exit_code(rc);
}
