/* ringtrain common: error strings, logging with a host:rank prefix, clocks,
 * aligned allocation, CRC-32C, FNV-1a and strict number parsing. */
#include "common.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

const char *rt_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
#define RT__ERR_CASE(name, value, text)                                        \
    case RT_E##name:                                                           \
        return text;
        RT_ERRNO_MAP(RT__ERR_CASE)
#undef RT__ERR_CASE
    default:
        return "unknown error";
    }
}

static int log_rank = -1;

void rt_log_set_rank(int rank) { log_rank = rank; }

void rt_log_prefix(char *buf, size_t bytes)
{
    char host[256];
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "?");
    host[sizeof host - 1] = '\0';
    if (log_rank >= 0)
        snprintf(buf, bytes, "%s:%d", host, log_rank);
    else
        snprintf(buf, bytes, "%s", host);
}

static void log_line(const char *level, const char *fmt, va_list ap)
{
    char prefix[300];
    char msg[2048];
    rt_log_prefix(prefix, sizeof prefix);
    vsnprintf(msg, sizeof msg, fmt, ap);
    /* One write per line so lines from several threads do not interleave. */
    fprintf(stderr, "[%s] %s%s\n", prefix, level, msg);
}

void rt_log_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line("error: ", fmt, ap);
    va_end(ap);
}

void rt_log_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line("warning: ", fmt, ap);
    va_end(ap);
}

void rt_log_info(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line("", fmt, ap);
    va_end(ap);
}

double rt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void *rt_alloc_aligned(size_t bytes, size_t alignment)
{
    void *ptr = NULL;
    if (bytes == 0)
        bytes = alignment;
    if (posix_memalign(&ptr, alignment, rt_align_up(bytes, alignment)) != 0)
        return NULL;
    memset(ptr, 0, bytes);
    return ptr;
}

void rt_free_aligned(void *ptr) { free(ptr); }

/* Table-driven CRC-32C, reflected polynomial 0x82F63B78. */
static uint32_t crc_table[8][256];
static int crc_ready;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^
                              crc_table[0][crc_table[t - 1][i] & 0xff];
    crc_ready = 1;
}

uint32_t rt_crc32c(uint32_t crc, const void *data, size_t bytes)
{
    const unsigned char *p = data;
    if (!crc_ready)
        crc_init();
    crc = ~crc;
    while (bytes >= 8) {
        uint32_t lo = (uint32_t)p[0] | (uint32_t)p[1] << 8 |
                      (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 |
                      (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
        lo ^= crc;
        crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
              crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
              crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
              crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
        p += 8;
        bytes -= 8;
    }
    while (bytes--)
        crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

uint64_t rt_fnv1a(uint64_t h, const void *data, size_t bytes)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < bytes; i++) {
        h ^= p[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

int rt_parse_u64(const char *text, uint64_t min, uint64_t max, int allow_suffix,
                 uint64_t *out)
{
    if (text == NULL || out == NULL || *text == '\0' || *text == '-' ||
        *text == '+' || *text == ' ')
        return RT_EINVAL;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(text, &end, 10);
    if (end == text)
        return RT_EINVAL;
    if (errno == ERANGE)
        return RT_ERANGE;
    uint64_t mult = 1;
    if (*end != '\0') {
        if (!allow_suffix || end[1] != '\0')
            return RT_EINVAL;
        switch (*end) {
        case 'K': case 'k': mult = UINT64_C(1) << 10; break;
        case 'M': case 'm': mult = UINT64_C(1) << 20; break;
        case 'G': case 'g': mult = UINT64_C(1) << 30; break;
        default: return RT_EINVAL;
        }
    }
    if (v > UINT64_MAX / mult)
        return RT_ERANGE;
    v *= mult;
    if (v < min || v > max)
        return RT_ERANGE;
    *out = (uint64_t)v;
    return 0;
}

int rt_parse_double(const char *text, double min, double max, double *out)
{
    if (text == NULL || out == NULL || *text == '\0' || *text == ' ')
        return RT_EINVAL;
    errno = 0;
    char *end = NULL;
    double v = strtod(text, &end);
    if (end == text || *end != '\0')
        return RT_EINVAL;
    if (errno == ERANGE || !isfinite(v))
        return RT_ERANGE;
    if (v < min || v > max)
        return RT_ERANGE;
    *out = v;
    return 0;
}

int rt_exit_code_of_status(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 1;
}
