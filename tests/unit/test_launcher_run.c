/* Unit tests for what the launcher hands mpirun: the operator's launcher
 * environment (only where absent) for each MPI implementation, the variables
 * forwarded with -x, the argv for Open MPI and hydra mpiruns, shell-quoted
 * display, and launch_run's exit status (passed through, 128+signal) with a
 * stand-in mpirun. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/common.h"
#include "launcher/launcher.h"

#define FAKE FIXTURE_DIR "/fake-mpirun.sh"

static bool env_has(const launch_env_t *env, const char *entry)
{
    for (size_t i = 0; i < env->count; i++)
        if (strcmp(env->vars[i], entry) == 0)
            return true;
    return false;
}

static void test_env_openmpi(void **state)
{
    (void)state;
    const char *base[] = {"PATH=/usr/bin", NULL};
    launch_env_t add;
    assert_int_equal(launch_env_additions(base, LAUNCH_MPI_OPENMPI, "/tmp/x/hostfile", 8, &add), 0);
    assert_int_equal(add.count, 5);
    assert_string_equal(add.vars[0], "K_MPI_JOB_ROLE=launcher");
    assert_true(env_has(&add, "OMPI_MCA_orte_keep_fqdn_hostnames=true"));
    assert_true(env_has(&add, "OMPI_MCA_orte_default_hostfile=/tmp/x/hostfile"));
    assert_true(env_has(&add, "OMPI_MCA_plm_rsh_args=-o ConnectionAttempts=10"));
    assert_true(env_has(&add, "OMPI_MCA_orte_set_default_slots=8"));
    assert_null(add.vars[add.count]);
    launch_env_free(&add);
    launch_env_free(&add);
}

static void test_env_keeps_what_is_set(void **state)
{
    (void)state;
    /* The operator already set these on the pod (or the user did): keep them. */
    const char *base[] = {"OMPI_MCA_plm_rsh_args=-F /etc/ssh/cfg", "K_MPI_JOB_ROLE=worker",
                          "OMPI_MCA_orte_default_hostfile=/etc/mpi/hostfile", NULL};
    launch_env_t add, merged;
    assert_int_equal(launch_env_additions(base, LAUNCH_MPI_OPENMPI, "/tmp/h", 2, &add), 0);
    assert_int_equal(add.count, 2);
    assert_true(env_has(&add, "OMPI_MCA_orte_keep_fqdn_hostnames=true"));
    assert_true(env_has(&add, "OMPI_MCA_orte_set_default_slots=2"));
    assert_int_equal(launch_env_merge(base, &add, &merged), 0);
    assert_int_equal(merged.count, 5);
    assert_string_equal(merged.vars[0], "OMPI_MCA_plm_rsh_args=-F /etc/ssh/cfg");
    assert_true(env_has(&merged, "K_MPI_JOB_ROLE=worker"));
    assert_false(env_has(&merged, "K_MPI_JOB_ROLE=launcher"));
    assert_null(merged.vars[merged.count]);
    launch_env_free(&merged);
    launch_env_free(&add);
}

static void test_env_intel_mpich(void **state)
{
    (void)state;
    const char *base[] = {NULL};
    launch_env_t add;
    assert_int_equal(launch_env_additions(base, LAUNCH_MPI_INTEL, "/h", 4, &add), 0);
    assert_int_equal(add.count, 4);
    assert_true(env_has(&add, "K_MPI_JOB_ROLE=launcher"));
    assert_true(env_has(&add, "I_MPI_HYDRA_HOST_FILE=/h"));
    assert_true(env_has(&add, "I_MPI_HYDRA_BOOTSTRAP_EXEC_EXTRA_ARGS=-o ConnectionAttempts=10"));
    assert_true(env_has(&add, "I_MPI_PERHOST=4"));
    launch_env_free(&add);
    assert_int_equal(launch_env_additions(base, LAUNCH_MPI_MPICH, "/h", 4, &add), 0);
    assert_int_equal(add.count, 3);
    assert_true(env_has(&add, "HYDRA_HOST_FILE=/h"));
    assert_true(env_has(&add, "HYDRA_LAUNCH_EXTRA_ARGS=-o ConnectionAttempts=10"));
    launch_env_free(&add);
}

static void test_exports(void **state)
{
    (void)state;
    const char *env[] = {"HOME=/root", "PATH=/bin", "OPENBLAS_CORETYPE=Haswell",
                         "NCCL_DEBUG=INFO", "RINGTRAIN_ALLREDUCE=ring", "OMP_NUM_THREADS=2",
                         "SECRET=x", "NCCL_ALGO=Ring", NULL};
    const char *user[] = {"FOO", "BAR=1", "PATH"};
    launch_env_t ex;
    assert_int_equal(launch_exports_collect(env, user, 3, &ex), 0);
    const char *want[] = {"PATH", "NCCL_ALGO", "NCCL_DEBUG", "OMP_NUM_THREADS",
                          "OPENBLAS_CORETYPE", "RINGTRAIN_ALLREDUCE", "FOO", "BAR=1"};
    assert_int_equal(ex.count, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < ex.count; i++)
        assert_string_equal(ex.vars[i], want[i]);
    launch_env_free(&ex);
}

static char *joined(char **argv)
{
    char *line = NULL;
    assert_int_equal(launch_argv_format(argv, &line), 0);
    return line;
}

static void test_argv_openmpi(void **state)
{
    (void)state;
    const char *exports[] = {"PATH", "NCCL_DEBUG"};
    const char *extra[] = {"--mca", "btl", "tcp,self"};
    const char *prog[] = {"/opt/ringtrain-worker", "--model", "mlp"};
    launch_argv_opts_t o = {.mpirun = "mpirun", .mpi = LAUNCH_MPI_OPENMPI, .np = 16,
                            .hostfile = "/tmp/j/hostfile", .allow_run_as_root = 1,
                            .bind_to = "none", .map_by_slot = 1, .exports = exports,
                            .export_count = 2, .extra = extra, .extra_count = 3, .program = prog,
                            .program_count = 3};
    char **argv = NULL;
    size_t argc = 0;
    assert_int_equal(launch_argv_build(&o, &argv, &argc), 0);
    char *line = joined(argv);
    assert_string_equal(line, "mpirun --allow-run-as-root -np 16 --hostfile /tmp/j/hostfile "
                              "--map-by slot --bind-to none -x PATH -x NCCL_DEBUG --mca btl "
                              "tcp,self /opt/ringtrain-worker --model mlp");
    assert_int_equal(argc, 20);
    assert_null(argv[argc]);
    free(line);
    launch_argv_free(argv);

    /* Local mode: no hostfile, oversubscribe, mpirun's own binding. */
    launch_argv_opts_t l = {.mpi = LAUNCH_MPI_OPENMPI, .np = 3, .oversubscribe = 1,
                            .map_by_slot = 1, .program = prog, .program_count = 1};
    assert_int_equal(launch_argv_build(&l, &argv, &argc), 0);
    line = joined(argv);
    assert_string_equal(line, "mpirun -np 3 --map-by slot --oversubscribe /opt/ringtrain-worker");
    free(line);
    launch_argv_free(argv);
}

static void test_argv_hydra(void **state)
{
    (void)state;
    const char *exports[] = {"PATH"};
    const char *prog[] = {"./a.out"};
    launch_argv_opts_t o = {.mpirun = "/opt/intel/bin/mpirun", .mpi = LAUNCH_MPI_INTEL, .np = 6,
                            .hostfile = "/h", .allow_run_as_root = 1, .bind_to = "none",
                            .map_by_slot = 1, .exports = exports, .export_count = 1,
                            .program = prog, .program_count = 1};
    char **argv = NULL;
    assert_int_equal(launch_argv_build(&o, &argv, NULL), 0);
    char *line = joined(argv);
    /* hydra passes the environment itself and has no Open MPI-only options. */
    assert_string_equal(line, "/opt/intel/bin/mpirun -n 6 -f /h ./a.out");
    free(line);
    launch_argv_free(argv);
    o.mpi = LAUNCH_MPI_MPICH;
    o.mpirun = NULL;
    assert_int_equal(launch_argv_build(&o, &argv, NULL), 0);
    line = joined(argv);
    assert_string_equal(line, "mpirun -n 6 -f /h ./a.out");
    free(line);
    launch_argv_free(argv);
}

static void test_argv_format_quotes(void **state)
{
    (void)state;
    char *argv[] = {"mpirun", "a b", "it's", "$(reboot)", "", "x;y", "plain-1.0/=,:@%+", NULL};
    char *line = joined(argv);
    assert_string_equal(line, "mpirun 'a b' 'it'\\''s' '$(reboot)' '' 'x;y' plain-1.0/=,:@%+");
    free(line);
}

static void test_run_exit_status(void **state)
{
    (void)state;
    extern char **environ;
    launch_run_result_t r;
    char *ok[] = {FAKE, "fake-job", "exit", "0", NULL};
    assert_int_equal(launch_run(ok, environ, 1.0, &r), 0);
    assert_int_equal(r.exit_code, 0);
    char *three[] = {FAKE, "fake-job", "exit", "3", NULL};
    assert_int_equal(launch_run(three, environ, 1.0, &r), 0);
    assert_int_equal(r.exit_code, 3);
    assert_int_equal(r.forwarded, 0);
    /* A status above 128 is mpirun's own, not a signal. */
    char *high[] = {FAKE, "fake-job", "exit", "205", NULL};
    assert_int_equal(launch_run(high, environ, 1.0, &r), 0);
    assert_int_equal(r.exit_code, 205);
    assert_int_equal(r.signal, 0);
    char *killed[] = {FAKE, "fake-job", "kill", "KILL", NULL};
    assert_int_equal(launch_run(killed, environ, 1.0, &r), 0);
    assert_int_equal(r.exit_code, 128 + 9);
    assert_int_equal(r.signal, 9);
    char *segv[] = {FAKE, "fake-job", "kill", "SEGV", NULL};
    assert_int_equal(launch_run(segv, environ, 1.0, &r), 0);
    assert_int_equal(r.exit_code, 128 + 11);
    assert_int_equal(r.signal, 11);
}

/* What execve would refuse with E2BIG is found before the spawn. */
static void test_argv_check_size(void **state)
{
    (void)state;
    launch_error_t err = {{0}};
    char *argv[] = {"mpirun", "-np", "2", "prog", NULL};
    char *envp[] = {"PATH=/usr/bin:/bin", NULL, NULL};
    assert_int_equal(launch_argv_check_size(argv, envp, &err), 0);
    /* One variable over 32 pages, named. */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *big = malloc(page * 32 + 16);
    assert_non_null(big);
    memcpy(big, "RINGTRAIN_PS_RANKS=", 19);
    memset(big + 19, '7', page * 32 - 19);
    big[page * 32] = '\0'; /* exactly one byte too many with its NUL */
    envp[1] = big;
    assert_int_equal(launch_argv_check_size(argv, envp, &err), RT_ERANGE);
    print_message("%s\n", err.text);
    assert_non_null(strstr(err.text, "RINGTRAIN_PS_RANKS: "));
    big[page * 32 - 1] = '\0'; /* at the limit: fine */
    assert_int_equal(launch_argv_check_size(argv, envp, &err), 0);
    /* An argument, quoted by its start. */
    char *long_arg[] = {"mpirun", big, NULL};
    big[page * 32 - 1] = '7';
    assert_int_equal(launch_argv_check_size(long_arg, NULL, &err), RT_ERANGE);
    assert_non_null(strstr(err.text, "mpirun argument \"RINGTRAIN_PS_RANKS=77"));
    /* Many strings, each small enough, together over ARG_MAX. */
    long arg_max = sysconf(_SC_ARG_MAX);
    if (arg_max > 0 && arg_max < (1L << 30)) {
        size_t count = (size_t)arg_max / (page * 16) + 2;
        char **many = calloc(count + 1, sizeof *many);
        assert_non_null(many);
        big[page * 16] = '\0';
        for (size_t i = 0; i < count; i++)
            many[i] = big;
        assert_int_equal(launch_argv_check_size(many, NULL, &err), RT_ERANGE);
        print_message("%s\n", err.text);
        assert_non_null(strstr(err.text, "(ARG_MAX)"));
        free(many);
    }
    free(big);
}

static void test_run_env_and_no_shell(void **state)
{
    (void)state;
    char path[] = "/tmp/ringtrain-test-env-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char *envp[] = {"PATH=/usr/bin:/bin", "K_MPI_JOB_ROLE=launcher", "ODD=$(echo no)", NULL};
    char *argv[] = {FAKE, "fake-job", "env", path, NULL};
    launch_run_result_t r;
    assert_int_equal(launch_run(argv, envp, 1.0, &r), 0);
    assert_int_equal(r.exit_code, 0);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char text[4096] = {0};
    size_t got = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    unlink(path);
    assert_true(got > 0);
    assert_non_null(strstr(text, "K_MPI_JOB_ROLE=launcher\n"));
    /* Passed as data, never evaluated by a shell. */
    assert_non_null(strstr(text, "ODD=$(echo no)\n"));
}

static void test_run_missing_program(void **state)
{
    (void)state;
    extern char **environ;
    char *argv[] = {"/nonexistent/mpirun", "x", NULL};
    launch_run_result_t r;
    errno = 0;
    assert_int_equal(launch_run(argv, environ, 1.0, &r), RT_ESYS);
    assert_int_equal(errno, ENOENT);
    char *bare[] = {"ringtrain-no-such-mpirun", NULL};
    assert_int_equal(launch_run(bare, environ, 1.0, &r), RT_ESYS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_openmpi),
        cmocka_unit_test(test_env_keeps_what_is_set),
        cmocka_unit_test(test_env_intel_mpich),
        cmocka_unit_test(test_exports),
        cmocka_unit_test(test_argv_openmpi),
        cmocka_unit_test(test_argv_hydra),
        cmocka_unit_test(test_argv_format_quotes),
        cmocka_unit_test(test_run_exit_status),
        cmocka_unit_test(test_argv_check_size),
        cmocka_unit_test(test_run_env_and_no_shell),
        cmocka_unit_test(test_run_missing_program),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
