/* ringtrain worker: deterministic random numbers. Every random draw is a
 * function of (seed, stream, counter), so data order and initial values do
 * not depend on how many steps ran before a restart. */
#ifndef RINGTRAIN_WORKER_RNG_H
#define RINGTRAIN_WORKER_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t state;
} rng_t;

/* A generator for one purpose: stream names it (e.g. epoch, sample index). */
void rng_init(rng_t *r, uint64_t seed, uint64_t stream);
uint64_t rng_next_u64(rng_t *r);
/* Uniform in [0, 1). */
float rng_uniform(rng_t *r);
/* Standard normal (Box-Muller). */
float rng_normal(rng_t *r);
/* Uniform integer in [0, bound), bound > 0, without modulo bias. */
uint64_t rng_below(rng_t *r, uint64_t bound);

#endif
