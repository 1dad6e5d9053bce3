/* ringtrain worker: splitmix64-based generator. Cheap, stateless to seed, and
 * good enough for shuffling and initialisation. */
#include "rng.h"

#include <math.h>

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

void rng_init(rng_t *r, uint64_t seed, uint64_t stream)
{
    r->state = mix64(seed + UINT64_C(0x9e3779b97f4a7c15)) ^ mix64(~stream);
}

uint64_t rng_next_u64(rng_t *r)
{
    r->state += UINT64_C(0x9e3779b97f4a7c15);
    return mix64(r->state);
}

float rng_uniform(rng_t *r)
{
    return (float)(rng_next_u64(r) >> 40) * (1.0f / 16777216.0f);
}

float rng_normal(rng_t *r)
{
    double u1 = ((double)(rng_next_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (double)(rng_next_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint64_t rng_below(rng_t *r, uint64_t bound)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t x;
    do {
        x = rng_next_u64(r);
    } while (x >= limit);
    return x % bound;
}
