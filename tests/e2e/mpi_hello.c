/* Stand-in MPI program for the simulated-pod tests until the worker is
 * merged: every rank reports its host, then the ranks run allreduces whose
 * exact sum is known, optionally for a long time (to be interrupted).
 *   mpi_hello [--iterations N] [--sleep-ms M] [--tag WORD]
 * Rank 0 prints "allreduce: sum=S expected=E ok" (or "MISMATCH", exit 1)
 * after the first allreduce, then "hello: done" at the end. --tag only marks
 * the command line, so a test can find every rank it started. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long iterations = 1;
    long sleep_ms = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--iterations") == 0)
            iterations = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--sleep-ms") == 0)
            sleep_ms = atol(argv[i + 1]);
    }
    MPI_Init(&argc, &argv);
    int rank = 0, size = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    char host[256];
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    printf("rank %d of %d on %s\n", rank, size, host);
    fflush(stdout);
    MPI_Barrier(MPI_COMM_WORLD);
    int rc = 0;
    for (long it = 0; it < iterations; it++) {
        long mine = rank + 1 + it, sum = 0;
        MPI_Allreduce(&mine, &sum, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
        long expected = (long)size * (size + 1) / 2 + (long)size * it;
        if (sum != expected)
            rc = 1;
        if (rank == 0 && (it == 0 || sum != expected)) {
            printf("allreduce: sum=%ld expected=%ld %s\n", sum, expected,
                   sum == expected ? "ok" : "MISMATCH");
            fflush(stdout);
        }
        if (sleep_ms > 0) {
            struct timespec ts = {sleep_ms / 1000, (sleep_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    if (rank == 0) {
        printf("hello: done\n");
        fflush(stdout);
    }
    MPI_Finalize();
    return rc;
}
