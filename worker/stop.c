/* ringtrain worker: stop requests. A handler only records the first stop
 * signal; the step loop reads it once per step and the ranks agree to stop
 * after the same step (train.c). */
#include <signal.h>
#include <string.h>

#include "common/common.h"
#include "worker.h"

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
    if (!stop_signal)
        stop_signal = sig;
}

int worker_stop_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    /* Restarted, so no read, write or wait elsewhere sees EINTR. */
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGUSR1, &sa, NULL) != 0)
        return RT_ESYS;
    return 0;
}

int worker_stop_signal(void)
{
    return stop_signal;
}
