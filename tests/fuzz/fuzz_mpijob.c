/* libFuzzer harness: the MPIJob parser and the hostfile writer, and the
 * reader of an operator-written hostfile, on the same bytes (each input is
 * tried as both: the two readers share nothing but the bytes).
 *   MPIJob: parse -> validate -> host list (no domain, a domain, a domain
 *   that makes names too long) -> hostfile and discover_hosts.sh rendered in
 *   memory -> the hostfile read back must give the same hosts and slots.
 *   Hostfile: parse -> render -> parse again: the same hosts and slots.
 * Errors must be one printable line. Built and run by tests/fuzz/meson.build
 * and run.sh. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fuzz_check.h"
#include "launcher/launcher.h"

static void fuzz_mpijob(const char *text, size_t bytes)
{
    launch_job_t job;
    launch_error_t err = {{0}};
    if (launch_job_parse(text, bytes, NULL, &job, &err) != 0) {
        fuzz_check_error(&err);
        return;
    }
    FUZZ_CHECK(launch_is_dns1035_label(job.name, strlen(job.name)));
    FUZZ_CHECK(launch_is_dns1123_label(job.namespace_name, strlen(job.namespace_name)));
    FUZZ_CHECK(job.slots >= 1 && job.slots <= LAUNCH_SLOTS_MAX);
    FUZZ_CHECK(job.workers <= LAUNCH_REPLICAS_MAX);
    FUZZ_CHECK(job.workers > 0 || job.launcher_is_worker);

    static const char *const domains[] = {NULL, "cluster.local",
                                          /* 4 labels of 60: every host is over 253 */
                                          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
                                          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
                                          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
                                          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    /* Huge jobs once: rendering 100000 hosts three times is slow, not deeper. */
    size_t variants = job.workers > 4096 ? 1 : sizeof domains / sizeof domains[0];
    for (size_t d = 0; d < variants; d++) {
        launch_hostlist_t list;
        if (launch_hostlist_from_job(&job, domains[d], &list, &err) != 0) {
            fuzz_check_error(&err);
            FUZZ_CHECK(d == 2);
            continue;
        }
        FUZZ_CHECK(d != 2);
        FUZZ_CHECK(list.count == (size_t)job.workers + (job.launcher_is_worker ? 1 : 0));
        FUZZ_CHECK(list.mpi == job.mpi);
        for (size_t i = 0; i < list.count; i++) {
            FUZZ_CHECK(launch_is_dns1123_subdomain(list.hosts[i], strlen(list.hosts[i])));
            FUZZ_CHECK(list.slots[i] == job.slots);
        }
        FUZZ_CHECK(launch_hostlist_total_slots(&list) == (uint64_t)list.count * job.slots);
        fuzz_check_hostlist(&list, (unsigned)bytes * 2654435761u);
        launch_hostlist_free(&list);
        launch_hostlist_free(&list); /* safe twice */
    }
}

/* host is a whole word of text: at a line start or after a blank, and
 * followed by the end, a blank, ':' (host:N) or '#'. */
static bool word_in(const char *text, size_t bytes, const char *host)
{
    size_t len = strlen(host);
    for (size_t p = 0; p + len <= bytes; p++) {
        if (memcmp(text + p, host, len) != 0)
            continue;
        bool before = p == 0 || (text[p - 1] != '\0' && strchr(" \t\r\n", text[p - 1]) != NULL);
        bool after = p + len == bytes || (text[p + len] != '\0' &&
                                          strchr(" \t\r\n:#", text[p + len]) != NULL);
        if (before && after)
            return true;
    }
    return false;
}

static void fuzz_hostfile(const char *text, size_t bytes)
{
    launch_hostlist_t list;
    launch_error_t err = {{0}};
    if (launch_hostlist_parse(text, bytes, -1, "hostfile", &list, &err) != 0) {
        fuzz_check_error(&err);
        return;
    }
    FUZZ_CHECK(list.count >= 1 && list.count <= (size_t)LAUNCH_REPLICAS_MAX + 1);
    for (size_t i = 0; i < list.count; i++) {
        FUZZ_CHECK(strlen(list.hosts[i]) >= 1 && strlen(list.hosts[i]) <= LAUNCH_HOST_MAX);
        FUZZ_CHECK(list.slots[i] >= 1 && list.slots[i] <= LAUNCH_SLOTS_MAX);
        /* Read as written: not cut short, not glued together. */
        FUZZ_CHECK(word_in(text, bytes, list.hosts[i]));
    }
    if (list.count <= 4096)
        fuzz_check_hostlist(&list, (unsigned)bytes);
    launch_hostlist_free(&list);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_mpijob((const char *)data, size);
    fuzz_hostfile((const char *)data, size);
    return 0;
}
