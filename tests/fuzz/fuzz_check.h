/* Shared by the libFuzzer harnesses: invariant checks that abort (so
 * libFuzzer keeps the input as a crash) with a message saying which one
 * broke. Beyond "no crash, no leak, no undefined behaviour", every harness
 * checks that an error is one printable line, so hostile input cannot forge
 * the launcher's output. */
#ifndef RINGTRAIN_FUZZ_CHECK_H
#define RINGTRAIN_FUZZ_CHECK_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "launcher/launcher.h"

#define FUZZ_CHECK(cond)                                                                       \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);       \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

/* A failure message: not empty, one line of printable ASCII. */
static inline void fuzz_check_error(const launch_error_t *err)
{
    size_t bytes = strnlen(err->text, sizeof err->text);
    FUZZ_CHECK(bytes > 0 && bytes < sizeof err->text);
    for (size_t i = 0; i < bytes; i++)
        FUZZ_CHECK(err->text[i] >= 0x20 && err->text[i] < 0x7f);
}

/* Renders list as a hostfile and reads it back (as the launcher reads an
 * operator's hostfile): the same hosts and slots must come out. Also
 * renders discover_hosts.sh for a pattern of hosts that are up. */
static inline void fuzz_check_hostlist(const launch_hostlist_t *list, unsigned pattern)
{
    char *text = NULL;
    size_t bytes = 0;
    FUZZ_CHECK(launch_hostfile_render(list, &text, &bytes) == 0);
    FUZZ_CHECK(strlen(text) == bytes);
    size_t lines = 0;
    for (size_t i = 0; i < bytes; i++)
        lines += text[i] == '\n';
    FUZZ_CHECK(lines == list->count);

    launch_hostlist_t back;
    launch_error_t err = {{0}};
    int rc = launch_hostlist_parse(text, bytes, (int)list->mpi, "rendered", &back, &err);
    if (rc != 0)
        fprintf(stderr, "rendered hostfile refused: %s\n", err.text);
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(back.count == list->count && back.mpi == list->mpi);
    for (size_t i = 0; i < back.count; i++) {
        FUZZ_CHECK(strcmp(back.hosts[i], list->hosts[i]) == 0);
        FUZZ_CHECK(back.slots[i] == list->slots[i]);
    }
    launch_hostlist_free(&back);
    free(text);

    unsigned char *up = malloc(list->count ? list->count : 1);
    FUZZ_CHECK(up != NULL);
    size_t up_count = 0;
    for (size_t i = 0; i < list->count; i++) {
        up[i] = (unsigned char)((pattern >> (i % 8)) & 1);
        up_count += up[i] || (i == 0 && list->first_is_local);
    }
    FUZZ_CHECK(launch_discover_hosts_render(list, up, &text, &bytes) == 0);
    FUZZ_CHECK(strncmp(text, "#!/bin/sh\n", 10) == 0);
    lines = 0;
    for (size_t i = 0; i < bytes; i++)
        lines += text[i] == '\n';
    FUZZ_CHECK(lines == 1 + up_count);
    free(text);
    free(up);
}

#endif
