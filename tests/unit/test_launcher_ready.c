/* Unit tests for readiness: against local ports that listen, that refuse,
 * that never answer (a full accept queue drops SYNs), a port that starts
 * listening late, and names that do not resolve; short deadlines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/common.h"
#include "launcher/launcher.h"

/* A bound (not yet listening) socket on 127.0.0.1 and its port. */
static int bound_socket(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static launch_wait_opts_t quick(uint16_t port, double timeout_s)
{
    launch_wait_opts_t o;
    launch_wait_opts_default(&o);
    o.port = port;
    o.timeout_s = timeout_s;
    o.connect_timeout_s = 0.2;
    return o;
}

static void test_defaults(void **state)
{
    (void)state;
    launch_wait_opts_t o;
    launch_wait_opts_default(&o);
    assert_int_equal(o.port, 22);
    assert_true(o.timeout_s == 300.0);
    assert_true(o.backoff_start_s == 0.1);
    assert_string_equal(launch_host_state_text(LAUNCH_HOST_NO_DNS), "no DNS");
    assert_string_equal(launch_host_state_text(LAUNCH_HOST_REFUSED), "refused");
    assert_string_equal(launch_host_state_text(LAUNCH_HOST_TIMED_OUT), "timed out");
}

static void test_listening_port_is_ready(void **state)
{
    (void)state;
    uint16_t port;
    int fd = bound_socket(&port);
    assert_int_equal(listen(fd, 16), 0);
    /* A name as well as an address, where the machine resolves "localhost"
     * (a minimal root made by debootstrap has no /etc/hosts at all). */
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    const char *name = "localhost";
    if (getaddrinfo(name, NULL, &hints, &res) != 0) {
        print_message("\"localhost\" does not resolve here: using 127.0.0.1 twice\n");
        name = "127.0.0.1";
    } else {
        freeaddrinfo(res);
    }
    launch_host_status_t h[2] = {{.host = "127.0.0.1"}, {.host = name}};
    launch_wait_opts_t o = quick(port, 5.0);
    double t0 = rt_now();
    assert_int_equal(launch_hosts_wait(h, 2, &o), 0);
    assert_true(rt_now() - t0 < 2.0);
    assert_int_equal(h[0].state, LAUNCH_HOST_READY);
    assert_int_equal(h[0].attempts, 1);
    assert_int_equal(h[1].state, LAUNCH_HOST_READY);
    close(fd);
}

static void test_closed_port_is_refused(void **state)
{
    (void)state;
    uint16_t port;
    int fd = bound_socket(&port);
    close(fd); /* nothing listens there now */
    launch_host_status_t h = {.host = "127.0.0.1"};
    launch_wait_opts_t o = quick(port, 0.5);
    double t0 = rt_now();
    assert_int_equal(launch_hosts_wait(&h, 1, &o), RT_ETIMEDOUT);
    double took = rt_now() - t0;
    print_message("refused after %.2f s, %u attempts\n", took, h.attempts);
    assert_int_equal(h.state, LAUNCH_HOST_REFUSED);
    assert_int_equal(h.detail, ECONNREFUSED);
    /* Tried at 0, 0.1, 0.3 s (backoff doubling from 0.1 s), then the deadline. */
    assert_in_range(h.attempts, 3, 4);
    assert_true(took >= 0.5 && took < 1.5);
}

static void test_unresolvable_name(void **state)
{
    (void)state;
    launch_host_status_t h[2] = {{.host = "no-such-host.invalid"},
                                 {.host = "job-worker-0.job.no-such-namespace.svc.invalid"}};
    launch_wait_opts_t o = quick(22, 0.3);
    assert_int_equal(launch_hosts_wait(h, 2, &o), RT_ETIMEDOUT);
    assert_int_equal(h[0].state, LAUNCH_HOST_NO_DNS);
    assert_int_equal(h[1].state, LAUNCH_HOST_NO_DNS);
    assert_true(h[0].attempts >= 1);
}

static void test_full_backlog_times_out(void **state)
{
    (void)state;
    uint16_t port;
    int fd = bound_socket(&port);
    assert_int_equal(listen(fd, 0), 0);
    /* Fill the accept queue; further SYNs are dropped, so connects hang. */
    int fillers[3];
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    for (int i = 0; i < 3; i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        (void)connect(fillers[i], (struct sockaddr *)&a, sizeof a);
    }
    usleep(100 * 1000);
    launch_host_status_t h = {.host = "127.0.0.1"};
    launch_wait_opts_t o = quick(port, 0.6);
    double t0 = rt_now();
    assert_int_equal(launch_hosts_wait(&h, 1, &o), RT_ETIMEDOUT);
    double took = rt_now() - t0;
    print_message("timed out after %.2f s, %u attempts\n", took, h.attempts);
    assert_int_equal(h.state, LAUNCH_HOST_TIMED_OUT);
    /* The deadline holds even with hanging connects: at most one extra attempt. */
    assert_true(took < 0.6 + 0.2 + 0.5);
    for (int i = 0; i < 3; i++)
        close(fillers[i]);
    close(fd);
}

typedef struct {
    int fd;
    double delay_s;
} late_t;

static void *listen_late(void *arg)
{
    late_t *l = arg;
    usleep((useconds_t)(l->delay_s * 1e6));
    listen(l->fd, 16);
    return NULL;
}

static void test_late_listener_with_backoff(void **state)
{
    (void)state;
    uint16_t port;
    late_t l = {.delay_s = 0.4};
    l.fd = bound_socket(&port);
    pthread_t tid;
    assert_int_equal(pthread_create(&tid, NULL, listen_late, &l), 0);
    launch_host_status_t h = {.host = "127.0.0.1"};
    launch_wait_opts_t o = quick(port, 5.0);
    assert_int_equal(launch_hosts_wait(&h, 1, &o), 0);
    pthread_join(tid, NULL);
    print_message("ready after %.2f s, %u attempts\n", h.ready_after_s, h.attempts);
    assert_int_equal(h.state, LAUNCH_HOST_READY);
    assert_true(h.ready_after_s >= 0.39);
    /* Backoff from 0.1 s: tries at 0, 0.1, 0.3, 0.7 s -> ready at the 4th. */
    assert_in_range(h.attempts, 3, 5);
    assert_true(h.ready_after_s < 1.5);
    close(l.fd);
}

static void test_mixed_hosts_name_each_reason(void **state)
{
    (void)state;
    uint16_t up_port, down_port;
    int up = bound_socket(&up_port);
    assert_int_equal(listen(up, 16), 0);
    int down = bound_socket(&down_port);
    close(down);
    /* Every host gets the same port, so "refused" needs a second address:
     * 127.0.0.2 is loopback too but nothing listens there. */
    launch_host_status_t h[3] = {{.host = "127.0.0.1"}, {.host = "127.0.0.2"},
                                 {.host = "missing.invalid"}};
    launch_wait_opts_t o = quick(up_port, 0.4);
    o.threads = 2;
    assert_int_equal(launch_hosts_wait(h, 3, &o), RT_ETIMEDOUT);
    assert_int_equal(h[0].state, LAUNCH_HOST_READY);
    assert_int_equal(h[1].state, LAUNCH_HOST_REFUSED);
    assert_int_equal(h[2].state, LAUNCH_HOST_NO_DNS);
    close(up);
}

static void test_zero_timeout_tries_once(void **state)
{
    (void)state;
    uint16_t port;
    int fd = bound_socket(&port);
    assert_int_equal(listen(fd, 16), 0);
    launch_host_status_t h = {.host = "127.0.0.1"};
    launch_wait_opts_t o = quick(port, 0.0);
    assert_int_equal(launch_hosts_wait(&h, 1, &o), 0);
    assert_int_equal(h.attempts, 1);
    assert_int_equal(launch_hosts_wait(NULL, 0, &o), 0);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_listening_port_is_ready),
        cmocka_unit_test(test_closed_port_is_refused),
        cmocka_unit_test(test_unresolvable_name),
        cmocka_unit_test(test_full_backlog_times_out),
        cmocka_unit_test(test_late_listener_with_backoff),
        cmocka_unit_test(test_mixed_hosts_name_each_reason),
        cmocka_unit_test(test_zero_timeout_tries_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
