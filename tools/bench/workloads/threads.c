/* threads: several threads churning malloc/free pairs of mixed sizes; one block in 16
 * is handed to another thread through a shared mailbox and freed there (cross-thread
 * frees). Everything is freed at the end.
 *
 *   threads [THREADS [PAIRS_PER_THREAD [EVENTS_PER_SECOND]]]
 *
 * Defaults: 4 threads, 25000 pairs each, full speed. EVENTS_PER_SECOND > 0 paces the
 * threads so that, together, they make about that many allocator calls per second.
 * Prints "allocs=N frees=N work_ns=T rate=R" (R: allocator calls per second). */
#include <pthread.h>
#include <stdatomic.h>

#include "common.h"

#define SLOTS 128
#define MAILBOXES 64
#define MAX_THREADS 64

static _Atomic(void *) mailbox[MAILBOXES];
static unsigned long long pairs_per_thread;
static double thread_rate; /* allocator calls per second per thread, 0: no pacing */

struct worker {
	pthread_t thread;
	unsigned index;
	unsigned long long allocs, frees;
};

static NOINLINE void *site_a(struct worker *w, size_t n) { w->allocs++; return malloc(n); }
static NOINLINE void *site_b(struct worker *w, size_t n) { void *p = site_a(w, n); __asm__ volatile("" ::: "memory"); return p; }
static NOINLINE void *site_c(struct worker *w, size_t n) { void *p = site_b(w, n); __asm__ volatile("" ::: "memory"); return p; }
static NOINLINE void *site_d(struct worker *w, size_t n) { w->allocs++; return malloc(n); }
static NOINLINE void *site_e(struct worker *w, size_t n) { void *p = site_d(w, n); __asm__ volatile("" ::: "memory"); return p; }

static NOINLINE void release(struct worker *w, void *p)
{
	if (p) {
		w->frees++;
		free(p);
	}
}

/* Hands `p` to whichever thread visits this mailbox next and frees what was there
 * (usually another thread's block). */
static NOINLINE void hand_over(struct worker *w, unsigned box, void *p)
{
	release(w, atomic_exchange(&mailbox[box % MAILBOXES], p));
}

static void *run(void *arg)
{
	struct worker *w = arg;
	void *slots[SLOTS] = {0};
	uint64_t rng = 0x9E3779B97F4A7C15ull * (w->index + 1);
	const uint64_t start = now_ns();
	for (unsigned long long i = 0; i < pairs_per_thread; ++i) {
		const uint64_t r = rng_next(&rng);
		const unsigned slot = (unsigned)(r >> 57) % SLOTS;
		if (((r >> 40) & 15) == 0) {
			hand_over(w, (unsigned)(r >> 44), slots[slot]);
		} else {
			release(w, slots[slot]);
		}
		const size_t n = mixed_size(r >> 8);
		slots[slot] = (r & 1) ? site_c(w, n) : site_e(w, n);
		*(volatile char *)slots[slot] = (char)i;
		if (thread_rate > 0 && (i & 255) == 255) {
			/* Pace: two calls per pair; sleep until this pair is due. */
			const uint64_t due = start + (uint64_t)((double)(2 * (i + 1)) * 1e9 / thread_rate);
			const uint64_t now = now_ns();
			if (due > now) {
				struct timespec ts = {(time_t)((due - now) / 1000000000ull), (long)((due - now) % 1000000000ull)};
				nanosleep(&ts, NULL);
			}
		}
	}
	for (unsigned s = 0; s < SLOTS; ++s)
		release(w, slots[s]);
	return NULL;
}

int main(int argc, char **argv)
{
	unsigned threads = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 0) : 4;
	pairs_per_thread = argc > 2 ? strtoull(argv[2], NULL, 0) : 25000;
	const double rate = argc > 3 ? strtod(argv[3], NULL) : 0;
	if (threads < 1 || threads > MAX_THREADS) {
		fprintf(stderr, "threads: 1..%d threads\n", MAX_THREADS);
		return 2;
	}
	thread_rate = rate > 0 ? rate / threads : 0;
	static struct worker workers[MAX_THREADS];
	const uint64_t t0 = now_ns();
	for (unsigned t = 0; t < threads; ++t) {
		workers[t].index = t;
		if (pthread_create(&workers[t].thread, NULL, run, &workers[t]) != 0) {
			perror("pthread_create");
			return 1;
		}
	}
	unsigned long long allocs = 0, frees = 0;
	for (unsigned t = 0; t < threads; ++t) {
		pthread_join(workers[t].thread, NULL);
		allocs += workers[t].allocs;
		frees += workers[t].frees;
	}
	for (unsigned b = 0; b < MAILBOXES; ++b) {
		void *p = atomic_exchange(&mailbox[b], NULL);
		if (p) {
			free(p);
			frees++;
		}
	}
	const uint64_t t1 = now_ns();
	const double secs = (double)(t1 - t0) / 1e9;
	printf("allocs=%llu frees=%llu work_ns=%llu rate=%.0f\n", allocs, frees,
	       (unsigned long long)(t1 - t0), (double)(allocs + frees) / secs);
	maybe_linger();
	return 0;
}
