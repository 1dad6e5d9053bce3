/* Configure-time probe: can clang build a libFuzzer harness here? */
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return (int)(size > 0 && data[0] == 0);
}
