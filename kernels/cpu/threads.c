/* ringtrain kernels (CPU): thread count shared by OpenBLAS and our OpenMP
 * loops. Until kernels_set_num_threads() is called, OpenBLAS's own default
 * (OPENBLAS_NUM_THREADS or the core count) is used for both, so the two never
 * disagree. */
#include "kernels.h"
#include "cpu_internal.h"

#include <cblas.h>

static int kern__num_threads; /* 0: not set, follow OpenBLAS */

void kernels_set_num_threads(int n)
{
    if (n < 1)
        n = 1;
    kern__num_threads = n;
    openblas_set_num_threads(n);
}

int kernels_get_num_threads(void)
{
    if (kern__num_threads > 0)
        return kern__num_threads;
    int n = openblas_get_num_threads();
    return n > 0 ? n : 1;
}

int kern__threads(void)
{
    return kern__gemm_is_own() ? kernels_get_num_threads() : 1;
}
