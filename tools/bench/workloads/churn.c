/* churn: one thread, malloc/free pairs of mixed sizes from a handful of call sites at
 * different stack depths; everything is freed at the end (nothing leaks).
 *
 *   churn [PAIRS]      (default 100000)
 *
 * Prints "allocs=N frees=N work_ns=T" (allocator calls made by the work loop). */
#include "common.h"

#define SLOTS 256

static void *slots[SLOTS];
static unsigned long long allocs, frees;

static NOINLINE void *site_a(size_t n) { allocs++; return malloc(n); }
static NOINLINE void *site_b(size_t n) { void *p = site_a(n); __asm__ volatile("" ::: "memory"); return p; }
static NOINLINE void *site_c(size_t n) { void *p = site_b(n); __asm__ volatile("" ::: "memory"); return p; }
static NOINLINE void *site_d(size_t n) { allocs++; return malloc(n); }
static NOINLINE void *site_e(size_t n) { void *p = site_d(n); __asm__ volatile("" ::: "memory"); return p; }
static NOINLINE void *site_f(size_t n) { void *p = site_e(n); __asm__ volatile("" ::: "memory"); return p; }
static NOINLINE void *site_g(size_t n) { void *p = site_f(n); __asm__ volatile("" ::: "memory"); return p; }

static NOINLINE void release(void *p)
{
	if (p) {
		frees++;
		free(p);
	}
}

static NOINLINE void *allocate(uint64_t r)
{
	const size_t n = mixed_size(r >> 8);
	switch (r & 3) {
	case 0: return site_a(n);
	case 1: return site_c(n);
	case 2: return site_e(n);
	default: return site_g(n);
	}
}

static NOINLINE void work(unsigned long long pairs)
{
	uint64_t rng = 0x9E3779B97F4A7C15ull;
	for (unsigned long long i = 0; i < pairs; ++i) {
		const uint64_t r = rng_next(&rng);
		const unsigned slot = (unsigned)(r >> 56) % SLOTS;
		release(slots[slot]);
		slots[slot] = allocate(r);
		/* Touch the block, as a program would. */
		*(volatile char *)slots[slot] = (char)i;
	}
	for (unsigned s = 0; s < SLOTS; ++s) {
		release(slots[s]);
		slots[s] = NULL;
	}
}

int main(int argc, char **argv)
{
	const unsigned long long pairs = argc > 1 ? strtoull(argv[1], NULL, 0) : 100000;
	const uint64_t t0 = now_ns();
	work(pairs);
	const uint64_t t1 = now_ns();
	printf("allocs=%llu frees=%llu work_ns=%llu\n", allocs, frees, (unsigned long long)(t1 - t0));
	maybe_linger();
	return 0;
}
