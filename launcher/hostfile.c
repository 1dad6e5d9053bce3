/* Host lists: built from an MPIJob the way mpi-operator's v2 controller
 * names pods ("<job>-worker-<i>.<job>.<namespace>.svc", the launcher first
 * when it is a worker), or read from an operator-written hostfile; rendered
 * as the controller renders them (Open MPI "host slots=N", Intel MPI and
 * MPICH "host:N") and as discover_hosts.sh; written atomically by the
 * project's one writer (common/files.c). */
#include "launcher.h"
#include "launcher_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"

void launch_hostlist_free(launch_hostlist_t *list)
{
    if (list == NULL)
        return;
    if (list->hosts != NULL)
        for (size_t i = 0; i < list->count; i++)
            free(list->hosts[i]);
    free(list->hosts);
    free(list->slots);
    list->hosts = NULL;
    list->slots = NULL;
    list->count = 0;
}

uint64_t launch_hostlist_total_slots(const launch_hostlist_t *list)
{
    uint64_t total = 0;
    for (size_t i = 0; i < list->count; i++)
        total += list->slots[i];
    return total;
}

static int hostlist_alloc(launch_hostlist_t *list, size_t count)
{
    memset(list, 0, sizeof *list);
    list->hosts = calloc(count ? count : 1, sizeof *list->hosts);
    list->slots = calloc(count ? count : 1, sizeof *list->slots);
    if (list->hosts == NULL || list->slots == NULL) {
        launch_hostlist_free(list);
        return RT_ENOMEM;
    }
    return 0;
}

int launch_hostlist_from_job(const launch_job_t *job, const char *cluster_domain,
                             launch_hostlist_t *list, launch_error_t *err)
{
    memset(list, 0, sizeof *list);
    if (cluster_domain != NULL && cluster_domain[0] != '\0' &&
        !launch_is_dns1123_subdomain(cluster_domain, strlen(cluster_domain))) {
        char shown[120];
        launch__quote(cluster_domain, strlen(cluster_domain), shown, sizeof shown);
        launch__error_set(err, "--cluster-domain: %s is not a DNS name (dot-separated labels of "
                          "lower-case letters, digits and '-'); use e.g. cluster.local", shown);
        return RT_EINVAL;
    }
    if (!launch_is_dns1035_label(job->name, strlen(job->name)) ||
        !launch_is_dns1123_label(job->namespace_name, strlen(job->namespace_name)) ||
        job->slots < 1 || job->slots > LAUNCH_SLOTS_MAX || job->workers > LAUNCH_REPLICAS_MAX ||
        (job->workers == 0 && !job->launcher_is_worker)) {
        launch__error_set(err, "job: not a validated MPIJob; parse it with launch_job_parse");
        return RT_EINVAL;
    }
    size_t count = (size_t)job->workers + (job->launcher_is_worker ? 1 : 0);
    if (hostlist_alloc(list, count) != 0) {
        launch__error_set(err, "hosts: out of memory for %zu hosts; retry", count);
        return RT_ENOMEM;
    }
    list->mpi = job->mpi;
    list->first_is_local = job->launcher_is_worker;
    const char *dot = cluster_domain && cluster_domain[0] ? "." : "";
    const char *domain = cluster_domain ? cluster_domain : "";
    char host[LAUNCH_HOST_MAX + 64];
    for (size_t i = 0; i < count; i++) {
        int len;
        if (job->launcher_is_worker && i == 0)
            len = snprintf(host, sizeof host, "%s-launcher.%s.%s.svc%s%s", job->name, job->name,
                           job->namespace_name, dot, domain);
        else
            len = snprintf(host, sizeof host, "%s-worker-%zu.%s.%s.svc%s%s", job->name,
                           i - (job->launcher_is_worker ? 1 : 0), job->name, job->namespace_name,
                           dot, domain);
        if (len < 0 || (size_t)len > LAUNCH_HOST_MAX) {
            launch__error_set(err, "--cluster-domain: host name of worker %zu would be %d "
                              "characters, over the 253 of a DNS name; use a shorter domain, "
                              "job name or namespace", i, len);
            launch_hostlist_free(list);
            return RT_EINVAL;
        }
        list->hosts[i] = strdup(host);
        if (list->hosts[i] == NULL) {
            launch__error_set(err, "hosts: out of memory; retry");
            launch_hostlist_free(list);
            return RT_ENOMEM;
        }
        list->slots[i] = job->slots;
    }
    list->count = count;
    return 0;
}

/* ---- reading an existing hostfile --------------------------------------- */

static bool is_ip_literal(const char *host)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

bool launch__host_is_local(const char *host)
{
    char self[256];
    if (strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
        strcmp(host, "::1") == 0)
        return true;
    if (gethostname(self, sizeof self) != 0)
        return false;
    self[sizeof self - 1] = '\0';
    size_t self_bytes = strlen(self);
    return self_bytes > 0 && strncmp(host, self, self_bytes) == 0 && (host[self_bytes] == '\0' || host[self_bytes] == '.');
}

static int parse_count(const char *text, size_t bytes, uint32_t *value)
{
    if (bytes == 0 || bytes > 7)
        return RT_EINVAL;
    uint32_t v = 0;
    for (size_t i = 0; i < bytes; i++) {
        if (text[i] < '0' || text[i] > '9')
            return RT_EINVAL;
        v = v * 10 + (uint32_t)(text[i] - '0');
    }
    *value = v;
    return 0;
}

/* A NUL would end a host name early: "10.0.0.1\0junk" must not read as
 * 10.0.0.1 (found by tests/fuzz/fuzz_mpijob). */
static int check_no_nul(const char *text, size_t bytes, const char *source,
                        launch_error_t *err)
{
    const char *nul = memchr(text, '\0', bytes);
    if (nul == NULL)
        return 0;
    size_t line_no = 1;
    for (const char *p = text; p < nul; p++)
        line_no += *p == '\n';
    launch__error_set(err, "%s:%zu: contains a NUL byte, so it is not a hostfile; give the "
                      "hostfile the operator wrote (\"host slots=N\" lines)", source, line_no);
    return RT_EFORMAT;
}

/* One line of a hostfile: where it is, and its words (blank-separated,
 * without a trailing comment). */
typedef struct {
    const char *source;
    size_t line_no;
    const char *words[8];
    size_t lens[8];
    size_t count;
} hostfile_line_t;

static int split_words(const char *text, size_t pos, size_t end, hostfile_line_t *line,
                       launch_error_t *err)
{
    size_t stop = pos;
    while (stop < end && text[stop] != '#')
        stop++;
    line->count = 0;
    size_t p = pos;
    while (p < stop) {
        while (p < stop && (text[p] == ' ' || text[p] == '\t' || text[p] == '\r'))
            p++;
        if (p >= stop)
            break;
        size_t w = p;
        while (p < stop && text[p] != ' ' && text[p] != '\t' && text[p] != '\r')
            p++;
        if (line->count == 8) {
            launch__error_set(err, "%s:%zu: too many words on one line; write \"host "
                              "slots=N\" or \"host:N\"", line->source, line->line_no);
            return RT_EFORMAT;
        }
        line->words[line->count] = text + w;
        line->lens[line->count++] = p - w;
    }
    return 0;
}

/* The first word: "host" (syntax 0, Open MPI) or "host:N" (syntax 1, Intel
 * MPI / MPICH), which must be the syntax of every line (*syntax: -1 before
 * the first). */
static int parse_host_word(const hostfile_line_t *line, int *syntax, char *host,
                           uint32_t *slots, launch_error_t *err)
{
    const char *word = line->words[0];
    size_t len = line->lens[0];
    const char *colon = memchr(word, ':', len);
    const char *colon2 = colon ? memchr(colon + 1, ':', len - (size_t)(colon + 1 - word)) : NULL;
    int this_syntax = (colon != NULL && colon2 == NULL && line->count == 1) ? 1 : 0;
    size_t host_len = this_syntax ? (size_t)(colon - word) : len;
    char shown[120];
    launch__quote(word, len, shown, sizeof shown);
    if (*syntax >= 0 && this_syntax != *syntax) {
        launch__error_set(err, "%s:%zu: %s mixes \"host:N\" and \"host slots=N\" lines; use "
                          "one syntax", line->source, line->line_no, shown);
        return RT_EFORMAT;
    }
    *syntax = this_syntax;
    if (host_len == 0 || host_len > LAUNCH_HOST_MAX) {
        launch__error_set(err, "%s:%zu: host %s is empty or longer than 253 characters; fix "
                          "the hostfile", line->source, line->line_no, shown);
        return RT_EFORMAT;
    }
    memcpy(host, word, host_len);
    host[host_len] = '\0';
    if (!launch_is_dns1123_subdomain(host, host_len) && !is_ip_literal(host)) {
        launch__error_set(err, "%s:%zu: host %s is not a DNS name (lower-case letters, "
                          "digits, '-' and '.') or an IP address; fix the hostfile",
                          line->source, line->line_no, shown);
        return RT_EINVAL;
    }
    if (this_syntax == 1 && (parse_count(colon + 1, len - host_len - 1, slots) != 0 ||
                             *slots < 1 || *slots > LAUNCH_SLOTS_MAX)) {
        launch__error_set(err, "%s:%zu: %s: slots must be 1..%u; fix the hostfile",
                          line->source, line->line_no, shown, LAUNCH_SLOTS_MAX);
        return RT_EINVAL;
    }
    return 0;
}

/* The words after "host": slots=N and max_slots=N (Open MPI's syntax). */
static int parse_slot_words(const hostfile_line_t *line, uint32_t *slots,
                            launch_error_t *err)
{
    for (size_t k = 1; k < line->count; k++) {
        uint32_t value = 0;
        const char *word = line->words[k];
        size_t len = line->lens[k];
        const char *eq = memchr(word, '=', len);
        size_t key_len = eq ? (size_t)(eq - word) : len;
        bool is_slots = key_len == 5 && memcmp(word, "slots", 5) == 0;
        bool is_max = (key_len == 9 && (memcmp(word, "max_slots", 9) == 0 ||
                                        memcmp(word, "max-slots", 9) == 0));
        char shown[120];
        launch__quote(word, len, shown, sizeof shown);
        if (eq == NULL || (!is_slots && !is_max)) {
            launch__error_set(err, "%s:%zu: %s is not slots=N or max_slots=N; fix the "
                              "hostfile", line->source, line->line_no, shown);
            return RT_EFORMAT;
        }
        if (parse_count(eq + 1, len - key_len - 1, &value) != 0 || value < 1 ||
            value > LAUNCH_SLOTS_MAX) {
            launch__error_set(err, "%s:%zu: %s: must be 1..%u; fix the hostfile",
                              line->source, line->line_no, shown, LAUNCH_SLOTS_MAX);
            return RT_EINVAL;
        }
        if (is_slots)
            *slots = value;
    }
    return 0;
}

/* One host line into the list. */
static int add_host_line(const hostfile_line_t *line, int *syntax, launch_hostlist_t *list,
                         launch_error_t *err)
{
    char host[LAUNCH_HOST_MAX + 2];
    uint32_t slots = 1;
    int rc = parse_host_word(line, syntax, host, &slots, err);
    if (rc == 0 && *syntax == 0)
        rc = parse_slot_words(line, &slots, err);
    if (rc != 0)
        return rc;
    list->hosts[list->count] = strdup(host);
    if (list->hosts[list->count] == NULL) {
        launch__error_set(err, "%s: out of memory; retry", line->source);
        return RT_ENOMEM;
    }
    list->slots[list->count++] = slots;
    return 0;
}

/* The hostfile's syntax names its MPI; a contradicting
 * --mpi-implementation is refused. */
static int settle_mpi(launch_hostlist_t *list, int syntax, int mpi_hint, const char *source,
                      launch_error_t *err)
{
    if (syntax == 0) {
        list->mpi = LAUNCH_MPI_OPENMPI;
        if (mpi_hint > 0) {
            launch__error_set(err, "%s: \"host slots=N\" is Open MPI's syntax, but "
                              "--mpi-implementation is %s; use a \"host:N\" hostfile or "
                              "--mpi-implementation OpenMPI", source,
                              launch_mpi_name((launch_mpi_t)mpi_hint));
            return RT_EINVAL;
        }
        return 0;
    }
    list->mpi = mpi_hint == LAUNCH_MPI_INTEL ? LAUNCH_MPI_INTEL : LAUNCH_MPI_MPICH;
    if (mpi_hint == LAUNCH_MPI_OPENMPI) {
        launch__error_set(err, "%s: \"host:N\" is the Intel MPI / MPICH syntax, but "
                          "--mpi-implementation is OpenMPI; use a \"host slots=N\" "
                          "hostfile or --mpi-implementation Intel|MPICH", source);
        return RT_EINVAL;
    }
    return 0;
}

int launch_hostlist_parse(const char *text, size_t bytes, int mpi_hint, const char *source,
                          launch_hostlist_t *list, launch_error_t *err)
{
    memset(list, 0, sizeof *list);
    int rc = check_no_nul(text, bytes, source, err);
    if (rc != 0)
        return rc;
    size_t lines = 1;
    for (size_t i = 0; i < bytes; i++)
        lines += text[i] == '\n';
    const size_t max_hosts = (size_t)LAUNCH_REPLICAS_MAX + 1;
    size_t cap = lines < max_hosts ? lines : max_hosts;
    if (hostlist_alloc(list, cap) != 0) {
        launch__error_set(err, "%s: out of memory; retry", source);
        return RT_ENOMEM;
    }
    int syntax = -1; /* 0: "host slots=N", 1: "host:N" */
    hostfile_line_t line = {.source = source};
    for (size_t pos = 0; pos < bytes && rc == 0;) {
        size_t end = pos;
        while (end < bytes && text[end] != '\n')
            end++;
        line.line_no++;
        rc = split_words(text, pos, end, &line, err);
        pos = end + 1;
        if (rc != 0 || line.count == 0)
            continue;
        if (list->count == cap) {
            launch__error_set(err, "%s:%zu: more than %zu hosts; a job has at most %u workers",
                              source, line.line_no, max_hosts, LAUNCH_REPLICAS_MAX);
            rc = RT_ERANGE;
        } else {
            rc = add_host_line(&line, &syntax, list, err);
        }
    }
    if (rc == 0 && list->count == 0) {
        launch__error_set(err, "%s: no hosts in the hostfile; give a hostfile with \"host "
                          "slots=N\" lines (or an MPIJob with --mpijob)", source);
        rc = RT_EFORMAT;
    }
    if (rc == 0)
        rc = settle_mpi(list, syntax, mpi_hint, source, err);
    if (rc != 0) {
        launch_hostlist_free(list);
        return rc;
    }
    list->first_is_local = launch__host_is_local(list->hosts[0]);
    return 0;
}

/* ---- rendering ---------------------------------------------------------- */

typedef struct {
    char *data;
    size_t bytes;
    size_t capacity;
} buf_t;

static int buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int buf_printf(buf_t *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->capacity - b->bytes;
        int wanted = vsnprintf(b->data ? b->data + b->bytes : NULL, b->data ? room : 0, fmt, ap);
        va_end(ap);
        if (wanted < 0)
            return RT_EINVAL;
        if (b->data != NULL && (size_t)wanted < room) {
            b->bytes += (size_t)wanted;
            return 0;
        }
        size_t capacity = b->capacity ? b->capacity : 4096;
        while (capacity - b->bytes <= (size_t)wanted)
            capacity *= 2;
        char *data = realloc(b->data, capacity);
        if (data == NULL)
            return RT_ENOMEM;
        b->data = data;
        b->capacity = capacity;
    }
}

int launch_hostfile_render(const launch_hostlist_t *list, char **text, size_t *bytes)
{
    buf_t b = {0};
    int rc = buf_printf(&b, "%s", "");
    for (size_t i = 0; rc == 0 && i < list->count; i++) {
        if (list->mpi == LAUNCH_MPI_OPENMPI)
            rc = buf_printf(&b, "%s slots=%u\n", list->hosts[i], list->slots[i]);
        else
            rc = buf_printf(&b, "%s:%u\n", list->hosts[i], list->slots[i]);
    }
    if (rc != 0) {
        free(b.data);
        return rc;
    }
    *text = b.data;
    *bytes = b.bytes;
    return 0;
}

/* The controller sorts pod names; a host is "<pod>.<job>.<ns>.svc…", so
 * compare the pod part first. */
static int host_cmp(const void *a, const void *b)
{
    const char *x = *(const char *const *)a;
    const char *y = *(const char *const *)b;
    size_t x_pod = strcspn(x, ".");
    size_t y_pod = strcspn(y, ".");
    size_t common = x_pod < y_pod ? x_pod : y_pod;
    int c = memcmp(x, y, common);
    if (c != 0)
        return c;
    if (x_pod != y_pod)
        return x_pod < y_pod ? -1 : 1;
    return strcmp(x, y);
}

int launch_discover_hosts_render(const launch_hostlist_t *list, const unsigned char *up,
                                 char **text, size_t *bytes)
{
    const char **sorted = calloc(list->count ? list->count : 1, sizeof *sorted);
    if (sorted == NULL)
        return RT_ENOMEM;
    size_t first = list->first_is_local && list->count > 0 ? 1 : 0;
    size_t count = 0;
    for (size_t i = first; i < list->count; i++)
        if (up == NULL || up[i])
            sorted[count++] = list->hosts[i];
    qsort(sorted, count, sizeof *sorted, host_cmp);
    buf_t b = {0};
    int rc = buf_printf(&b, "#!/bin/sh\n");
    if (rc == 0 && first)
        rc = buf_printf(&b, "echo %s\n", list->hosts[0]);
    for (size_t i = 0; rc == 0 && i < count; i++)
        rc = buf_printf(&b, "echo %s\n", sorted[i]);
    free(sorted);
    if (rc != 0) {
        free(b.data);
        return rc;
    }
    *text = b.data;
    *bytes = b.bytes;
    return 0;
}

/* ---- writing and reading files ------------------------------------------ */

int launch_file_write_atomic(const char *path, const char *text, size_t bytes, mode_t mode,
                             launch_error_t *err)
{
    char why[sizeof err->text];
    int rc = rt_file_write_atomic(path, text, bytes, (unsigned)mode, why, sizeof why);
    if (rc != 0)
        launch__error_set(err, "%s", why);
    return rc;
}

int launch_hostlist_load(const char *path, int mpi_hint, launch_hostlist_t *list, char **text,
                         size_t *bytes, launch_error_t *err)
{
    memset(list, 0, sizeof *list);
    int rc = launch__file_read(path, "the hostfile", LAUNCH_HOSTFILE_MAX_BYTES, text, bytes,
                               err);
    if (rc != 0)
        return rc;
    rc = launch_hostlist_parse(*text, *bytes, mpi_hint, path, list, err);
    if (rc != 0) {
        free(*text);
        *text = NULL;
        *bytes = 0;
    }
    return rc;
}
