/* libFuzzer harness: the checkpoint decoder (worker/checkpoint.c), the code
 * that reads every file found in --checkpoint_dir.
 *   decode against a fixed small model (37 parameters, 5 state floats) ->
 *   an accepted buffer must have exactly the expected size and re-encode to
 *   the same bytes; a refused one must leave the output untouched and say
 *   why in one printable line.
 * Seeds (corpus/checkpoint/) are valid checkpoints of that model. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "worker/checkpoint.h"

#define ARENA 37
#define STATE 5

static void check_message(const char *text)
{
    size_t bytes = strlen(text);
    FUZZ_CHECK(bytes > 0);
    for (size_t i = 0; i < bytes; i++)
        FUZZ_CHECK(text[i] >= 0x20 && text[i] < 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ckpt_info_t expect = {.model_hash = 0x5eedf00dULL, .arena_floats = ARENA,
                          .state_floats = STATE};
    float params[ARENA], momentum[ARENA], state[STATE];
    memset(params, 0xa5, sizeof params);
    memset(momentum, 0xa5, sizeof momentum);
    memset(state, 0xa5, sizeof state);
    ckpt_data_t out = {params, momentum, state};
    ckpt_info_t info;
    char err[512] = "";
    int rc = ckpt_decode(data, size, &expect, &info, &out, err, sizeof err);
    if (rc == 0) {
        FUZZ_CHECK(size == ckpt_file_bytes(&expect));
        FUZZ_CHECK(info.model_hash == expect.model_hash);
        unsigned char *again = malloc(size);
        FUZZ_CHECK(again != NULL);
        ckpt_encode(again, &info, &out);
        FUZZ_CHECK(memcmp(again, data, size) == 0);
        free(again);
    } else {
        check_message(err);
        unsigned char untouched[sizeof params];
        memset(untouched, 0xa5, sizeof untouched);
        FUZZ_CHECK(memcmp(params, untouched, sizeof params) == 0);
    }
    return 0;
}
