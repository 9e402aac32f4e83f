/* kernel_churn N [RATE]: makes the kernel allocate and free on its behalf, N times:
 * eventfd() + close() (a kmalloc of the eventfd_ctx, a kmem_cache_alloc of the struct
 * file, and their frees). RATE > 0 paces the loop to RATE iterations per second (to find
 * the rate a kernel recorder sustains without loss). Prints `iterations= work_ns=`. */
#include <sys/eventfd.h>

#include "common.h"

int main(int argc, char **argv)
{
	const long n = argc > 1 ? atol(argv[1]) : 100000;
	const double rate = argc > 2 ? atof(argv[2]) : 0;
	const uint64_t start = now_ns();
	for (long i = 0; i < n; ++i) {
		if (rate > 0) {
			const uint64_t due = start + (uint64_t)((double)i * 1e9 / rate);
			while (now_ns() < due)
				;
		}
		const int fd = eventfd(0, EFD_CLOEXEC);
		if (fd < 0) {
			perror("eventfd");
			return 1;
		}
		close(fd);
	}
	printf("iterations=%ld work_ns=%llu\n", n, (unsigned long long)(now_ns() - start));
	return 0;
}
