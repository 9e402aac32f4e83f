/* Shared bits of the benchmark workloads. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

/* xorshift64*: cheap, deterministic, no allocation. */
static inline uint64_t rng_next(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1Dull;
}

/* Mixed sizes, roughly what programs ask for: mostly small, some medium, a few
 * large blocks (all below glibc's mmap threshold, so malloc stays on the heap). */
static inline size_t mixed_size(uint64_t r)
{
	const unsigned bucket = (unsigned)(r & 63);
	r >>= 6;
	if (bucket < 40)
		return 8 + (size_t)(r % 120);    /* 8 .. 127 */
	if (bucket < 56)
		return 128 + (size_t)(r % 896);  /* 128 .. 1023 */
	if (bucket < 62)
		return 1024 + (size_t)(r % 7168); /* 1 KiB .. 8 KiB */
	return 8192 + (size_t)(r % 57344);     /* 8 KiB .. 64 KiB */
}

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* BENCH_LINGER_MS=N: stay alive N ms after the work, so that a profiler can read
 * per-program BPF statistics before the tool detaches. */
static inline void maybe_linger(void)
{
	const char *linger = getenv("BENCH_LINGER_MS");
	if (linger && *linger) {
		fflush(stdout);
		usleep((useconds_t)(atol(linger) * 1000));
	}
}

#endif
