/* Unit tests for the launcher's host lists: the hostfile as mpi-operator's v2
 * controller writes it (Open MPI, Intel MPI, MPICH; cluster domain; the
 * launcher first with runLauncherAsWorker), discover_hosts.sh ordering,
 * reading operator-written hostfiles (good and hostile), and the atomic
 * write. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/common.h"
#include "launcher/launcher.h"

static launch_job_t job_of(const char *name, const char *ns, uint32_t workers, uint32_t slots,
                           launch_mpi_t mpi, int launcher_is_worker)
{
    launch_job_t job;
    memset(&job, 0, sizeof job);
    snprintf(job.name, sizeof job.name, "%s", name);
    snprintf(job.namespace_name, sizeof job.namespace_name, "%s", ns);
    job.workers = workers;
    job.slots = slots;
    job.mpi = mpi;
    job.launcher_is_worker = launcher_is_worker;
    return job;
}

static char *render(const launch_job_t *job, const char *domain)
{
    launch_hostlist_t list;
    launch_error_t err = {{0}};
    assert_int_equal(launch_hostlist_from_job(job, domain, &list, &err), 0);
    char *text = NULL;
    size_t bytes = 0;
    assert_int_equal(launch_hostfile_render(&list, &text, &bytes), 0);
    assert_int_equal(bytes, strlen(text));
    launch_hostlist_free(&list);
    return text;
}

static void test_openmpi_hostfile(void **state)
{
    (void)state;
    launch_job_t job = job_of("tensorflow-benchmarks", "default", 2, 8, LAUNCH_MPI_OPENMPI, 0);
    char *text = render(&job, NULL);
    assert_string_equal(text,
                        "tensorflow-benchmarks-worker-0.tensorflow-benchmarks.default.svc slots=8\n"
                        "tensorflow-benchmarks-worker-1.tensorflow-benchmarks.default.svc slots=8\n");
    free(text);
}

static void test_intel_and_mpich_hostfile(void **state)
{
    (void)state;
    launch_job_t job = job_of("job", "hpc", 3, 2, LAUNCH_MPI_INTEL, 0);
    char *text = render(&job, NULL);
    assert_string_equal(text, "job-worker-0.job.hpc.svc:2\n"
                              "job-worker-1.job.hpc.svc:2\n"
                              "job-worker-2.job.hpc.svc:2\n");
    free(text);
    job.mpi = LAUNCH_MPI_MPICH;
    text = render(&job, NULL);
    assert_string_equal(text, "job-worker-0.job.hpc.svc:2\n"
                              "job-worker-1.job.hpc.svc:2\n"
                              "job-worker-2.job.hpc.svc:2\n");
    free(text);
}

static void test_cluster_domain(void **state)
{
    (void)state;
    launch_job_t job = job_of("pi", "ml", 2, 1, LAUNCH_MPI_OPENMPI, 0);
    char *text = render(&job, "cluster.local");
    assert_string_equal(text, "pi-worker-0.pi.ml.svc.cluster.local slots=1\n"
                              "pi-worker-1.pi.ml.svc.cluster.local slots=1\n");
    free(text);
    text = render(&job, ""); /* empty means none */
    assert_string_equal(text, "pi-worker-0.pi.ml.svc slots=1\npi-worker-1.pi.ml.svc slots=1\n");
    free(text);
    static const char *const bad[] = {"Cluster.Local", "a..b", ".local", "local.", "a b",
                                      "x;y", "cluster.local\nevil slots=9", "-a.b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        launch_hostlist_t list;
        launch_error_t err = {{0}};
        assert_int_equal(launch_hostlist_from_job(&job, bad[i], &list, &err), RT_EINVAL);
        assert_int_equal(strncmp(err.text, "--cluster-domain: ", 18), 0);
        assert_null(strchr(err.text, '\n'));
        assert_null(list.hosts);
    }
    /* A host name over 253 characters is refused. */
    char domain[240];
    memset(domain, 'a', sizeof domain - 1);
    domain[sizeof domain - 1] = '\0';
    for (size_t i = 60; i < sizeof domain - 1; i += 61)
        domain[i] = '.';
    launch_hostlist_t list;
    launch_error_t err = {{0}};
    assert_int_equal(launch_hostlist_from_job(&job, domain, &list, &err), RT_EINVAL);
    assert_non_null(strstr(err.text, "253"));
}

static void test_launcher_as_worker_first(void **state)
{
    (void)state;
    launch_job_t job = job_of("pi", "ml", 2, 4, LAUNCH_MPI_OPENMPI, 1);
    char *text = render(&job, NULL);
    assert_string_equal(text, "pi-launcher.pi.ml.svc slots=4\n"
                              "pi-worker-0.pi.ml.svc slots=4\n"
                              "pi-worker-1.pi.ml.svc slots=4\n");
    free(text);
    job.mpi = LAUNCH_MPI_INTEL;
    text = render(&job, "c.d");
    assert_string_equal(text, "pi-launcher.pi.ml.svc.c.d:4\n"
                              "pi-worker-0.pi.ml.svc.c.d:4\n"
                              "pi-worker-1.pi.ml.svc.c.d:4\n");
    free(text);
    launch_hostlist_t list;
    launch_error_t err = {{0}};
    assert_int_equal(launch_hostlist_from_job(&job, NULL, &list, &err), 0);
    assert_int_equal(list.first_is_local, 1);
    assert_int_equal(list.count, 3);
    assert_int_equal(launch_hostlist_total_slots(&list), 12);
    launch_hostlist_free(&list);
    launch_hostlist_free(&list); /* safe twice */
}

static void test_discover_hosts(void **state)
{
    (void)state;
    /* Sorted as the controller sorts pod names: worker-10 before worker-2. */
    launch_job_t job = job_of("wide", "default", 12, 1, LAUNCH_MPI_OPENMPI, 0);
    launch_hostlist_t list;
    launch_error_t err = {{0}};
    assert_int_equal(launch_hostlist_from_job(&job, NULL, &list, &err), 0);
    char *text = NULL;
    size_t bytes = 0;
    assert_int_equal(launch_discover_hosts_render(&list, NULL, &text, &bytes), 0);
    assert_string_equal(text, "#!/bin/sh\n"
                              "echo wide-worker-0.wide.default.svc\n"
                              "echo wide-worker-1.wide.default.svc\n"
                              "echo wide-worker-10.wide.default.svc\n"
                              "echo wide-worker-11.wide.default.svc\n"
                              "echo wide-worker-2.wide.default.svc\n"
                              "echo wide-worker-3.wide.default.svc\n"
                              "echo wide-worker-4.wide.default.svc\n"
                              "echo wide-worker-5.wide.default.svc\n"
                              "echo wide-worker-6.wide.default.svc\n"
                              "echo wide-worker-7.wide.default.svc\n"
                              "echo wide-worker-8.wide.default.svc\n"
                              "echo wide-worker-9.wide.default.svc\n");
    free(text);
    /* Only hosts that are up. */
    unsigned char up[12] = {0};
    up[3] = up[10] = 1;
    assert_int_equal(launch_discover_hosts_render(&list, up, &text, &bytes), 0);
    assert_string_equal(text, "#!/bin/sh\n"
                              "echo wide-worker-10.wide.default.svc\n"
                              "echo wide-worker-3.wide.default.svc\n");
    free(text);
    launch_hostlist_free(&list);

    /* The launcher, when a worker, stays first. */
    job = job_of("a", "ns", 2, 1, LAUNCH_MPI_MPICH, 1);
    assert_int_equal(launch_hostlist_from_job(&job, NULL, &list, &err), 0);
    assert_int_equal(launch_discover_hosts_render(&list, NULL, &text, &bytes), 0);
    assert_string_equal(text, "#!/bin/sh\necho a-launcher.a.ns.svc\necho a-worker-0.a.ns.svc\n"
                              "echo a-worker-1.a.ns.svc\n");
    free(text);
    launch_hostlist_free(&list);
}

static void test_parse_operator_hostfile(void **state)
{
    (void)state;
    launch_hostlist_t list;
    launch_error_t err = {{0}};
    const char *text = "# written by mpi-operator\n"
                       "job-worker-0.job.default.svc slots=8\n"
                       "\n"
                       "  job-worker-1.job.default.svc   slots=8 max_slots=8  # second\n"
                       "10.0.0.7 slots=2\n";
    assert_int_equal(launch_hostlist_parse(text, strlen(text), -1, "hostfile", &list, &err), 0);
    assert_int_equal(list.count, 3);
    assert_int_equal(list.mpi, LAUNCH_MPI_OPENMPI);
    assert_string_equal(list.hosts[0], "job-worker-0.job.default.svc");
    assert_string_equal(list.hosts[1], "job-worker-1.job.default.svc");
    assert_string_equal(list.hosts[2], "10.0.0.7");
    assert_int_equal(list.slots[0], 8);
    assert_int_equal(list.slots[2], 2);
    assert_int_equal(list.first_is_local, 0);
    assert_int_equal(launch_hostlist_total_slots(&list), 18);
    launch_hostlist_free(&list);

    /* host:N is hydra's syntax: MPICH unless told Intel. */
    text = "job-worker-0.job.default.svc:4\njob-worker-1.job.default.svc:4\n";
    assert_int_equal(launch_hostlist_parse(text, strlen(text), -1, "hostfile", &list, &err), 0);
    assert_int_equal(list.mpi, LAUNCH_MPI_MPICH);
    assert_int_equal(list.slots[1], 4);
    launch_hostlist_free(&list);
    assert_int_equal(launch_hostlist_parse(text, strlen(text), LAUNCH_MPI_INTEL, "hostfile", &list,
                                           &err), 0);
    assert_int_equal(list.mpi, LAUNCH_MPI_INTEL);
    launch_hostlist_free(&list);

    /* A host without slots= has one; the round trip renders it back. */
    text = "localhost\nnode-1 slots=3\n";
    assert_int_equal(launch_hostlist_parse(text, strlen(text), -1, "hostfile", &list, &err), 0);
    assert_int_equal(list.first_is_local, 1);
    char *out = NULL;
    size_t bytes = 0;
    assert_int_equal(launch_hostfile_render(&list, &out, &bytes), 0);
    assert_string_equal(out, "localhost slots=1\nnode-1 slots=3\n");
    free(out);
    launch_hostlist_free(&list);

    /* This machine's own name first marks the launcher as a worker. */
    char self[256];
    assert_int_equal(gethostname(self, sizeof self), 0);
    char mine[600];
    snprintf(mine, sizeof mine, "%s.job.ns.svc slots=2\nother slots=2\n", self);
    for (char *p = mine; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    if (launch_hostlist_parse(mine, strlen(mine), -1, "hostfile", &list, &err) == 0) {
        assert_int_equal(list.first_is_local, 1);
        launch_hostlist_free(&list);
    }
}

static void test_parse_bad_hostfiles(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int hint;
        const char *says;
    } bad[] = {
        {"", -1, "no hosts"},
        {"# only a comment\n\n", -1, "no hosts"},
        {"a;rm -rf / slots=1\n", -1, "not a DNS name"},
        {"Host-A slots=1\n", -1, "not a DNS name"},
        {"-a slots=1\n", -1, "not a DNS name"},
        {"a slots=0\n", -1, "1..1024"},
        {"a slots=1025\n", -1, "1..1024"},
        {"a slots=-1\n", -1, "1..1024"},
        {"a slots=x\n", -1, "1..1024"},
        {"a slots=99999999999\n", -1, "1..1024"},
        {"a cpus=2\n", -1, "not slots=N"},
        {"a slots=2 $(reboot)\n", -1, "not slots=N"},
        {"a:0\n", -1, "1..1024"},
        {"a:\n", -1, "1..1024"},
        {"a:2\nb slots=2\n", -1, "mixes"},
        {"a slots=2\n", LAUNCH_MPI_INTEL, "Open MPI's syntax"},
        {"a:2\n", LAUNCH_MPI_OPENMPI, "Intel MPI / MPICH syntax"},
        {"a b c d e f g h i\n", -1, "too many words"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        launch_hostlist_t list;
        launch_error_t err = {{0}};
        int rc = launch_hostlist_parse(bad[i].text, strlen(bad[i].text), bad[i].hint, "hf",
                                       &list, &err);
        print_message("bad hostfile %zu: rc %d, \"%s\"\n", i, rc, err.text);
        assert_int_not_equal(rc, 0);
        assert_int_equal(strncmp(err.text, "hf", 2), 0);
        assert_non_null(strstr(err.text, bad[i].says));
        assert_null(strchr(err.text, '\n'));
        assert_null(list.hosts);
    }
    /* Regression (tests/fuzz/fuzz_mpijob): a NUL byte cut a host name short,
     * so "127.0.0.1\0\x80\0\x04" read as host 127.0.0.1. */
    static const char with_nul[] = "127.0.0.1\0\x80\0\x04";
    static const char nul_line3[] = "a slots=1\nb slots=1\nc\0d slots=1\n";
    launch_hostlist_t list;
    launch_error_t err = {{0}};
    assert_int_equal(launch_hostlist_parse(with_nul, sizeof with_nul - 1, -1, "hf", &list, &err),
                     RT_EFORMAT);
    assert_string_equal(err.text, "hf:1: contains a NUL byte, so it is not a hostfile; give the "
                                  "hostfile the operator wrote (\"host slots=N\" lines)");
    assert_null(list.hosts);
    assert_int_equal(launch_hostlist_parse(nul_line3, sizeof nul_line3 - 1, -1, "hf", &list,
                                           &err),
                     RT_EFORMAT);
    assert_int_equal(strncmp(err.text, "hf:3: contains a NUL byte", 25), 0);
}

static void test_atomic_write(void **state)
{
    (void)state;
    char dir[] = "/tmp/ringtrain-test-hf-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/hostfile", dir);
    launch_error_t err = {{0}};
    assert_int_equal(launch_file_write_atomic(path, "a slots=1\n", 10, 0444, &err), 0);
    /* Replacing keeps exactly one file, with the new text and mode. */
    assert_int_equal(launch_file_write_atomic(path, "b slots=2\n", 10, 0444, &err), 0);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char buf[64] = {0};
    assert_int_equal(fread(buf, 1, sizeof buf - 1, f), 10);
    fclose(f);
    assert_string_equal(buf, "b slots=2\n");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0444);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int entries = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            entries++;
    closedir(d);
    assert_int_equal(entries, 1); /* no temporary file left */
    /* A directory that does not exist: the common writer's RT_ENOENT and its
     * error, naming the path and the directory. */
    char missing[300], want[400];
    snprintf(missing, sizeof missing, "%s/no/such/dir/hostfile", dir);
    int rc = launch_file_write_atomic(missing, "x", 1, 0444, &err);
    print_message("missing directory: rc %d: %s\n", rc, err.text);
    assert_int_equal(rc, RT_ENOENT);
    snprintf(want, sizeof want, "%s: cannot create a file in %s/no/such/dir: ", missing, dir);
    assert_non_null(strstr(err.text, want));
    /* A name that is a directory is refused before anything is created. */
    char slash[300];
    snprintf(slash, sizeof slash, "%s/", dir);
    rc = launch_file_write_atomic(slash, "x", 1, 0444, &err);
    print_message("directory name: rc %d: %s\n", rc, err.text);
    assert_int_equal(rc, RT_EINVAL);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openmpi_hostfile),
        cmocka_unit_test(test_intel_and_mpich_hostfile),
        cmocka_unit_test(test_cluster_domain),
        cmocka_unit_test(test_launcher_as_worker_first),
        cmocka_unit_test(test_discover_hosts),
        cmocka_unit_test(test_parse_operator_hostfile),
        cmocka_unit_test(test_parse_bad_hostfiles),
        cmocka_unit_test(test_atomic_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
