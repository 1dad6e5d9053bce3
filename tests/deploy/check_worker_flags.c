/* tests/deploy: checks a ringtrain-worker command line from a manifest with
 * the worker's own parser (worker_options_parse, no MPI needed), so a flag
 * the worker does not know or a value out of its bounds in deploy/ fails the
 * build's tests instead of a job on a cluster.
 *   check_worker_flags ringtrain-worker --model=resnet101 --batch_size=64 ...
 * (the first argument stands for the program, as argv[0] does for it).
 * Prints "ok: model=... batch_size=... device=..." and exits 0, or prints the
 * worker's error and exits 2. */
#include <stdio.h>

#include "worker/worker.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "check_worker_flags: error: no command line; give e.g. ringtrain-worker --model=lenet\n");
        return 2;
    }
    worker_options_t opts;
    worker_options_init(&opts);
    char err[1024] = "";
    if (worker_options_parse(&opts, argc - 1, argv + 1, err, sizeof err) != 0) {
        fprintf(stderr, "check_worker_flags: error: %s\n", err);
        return 2;
    }
    printf("ok: model=%s batch_size=%d num_batches=%ld device=%s bind=%s num_intra_threads=%d\n",
           opts.model, opts.batch_size, opts.num_batches,
           opts.device == WORKER_DEVICE_CUDA ? "cuda" : "cpu", opts.bind ? "core" : "none",
           opts.num_intra_threads);
    return 0;
}
