// SPDX-License-Identifier: GPL-2.0
/*
 * prng.c: the seeded PRNG (xoshiro256** seeded by splitmix64) and the
 * random choices built directly on it.  Every random decision of a run
 * comes from here, so a run is a function of the seed.
 */

#include "fuzz.h"

/* ------------------------------------------------------------------ */
/* PRNG: xoshiro256** seeded by splitmix64                              */

static uint64_t rng_state[4];

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void rng_seed(uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		rng_state[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(void)
{
	uint64_t *s = rng_state;
	uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* 0..n-1 (0 if n is 0) */
uint64_t rnd(uint64_t n)
{
	return n ? rng_next() % n : 0;
}

bool chance(unsigned int pct)
{
	return rnd(100) < pct;
}

/* An index chosen with probability proportional to weights[i]. */
int pick_weighted(const int *weights, int n)
{
	long total = 0, x;
	int i;

	for (i = 0; i < n; i++)
		total += weights[i];
	if (!total)
		return -1;
	x = (long)rnd(total);
	for (i = 0; i < n; i++) {
		x -= weights[i];
		if (x < 0)
			break;
	}
	return i;
}
