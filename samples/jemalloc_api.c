// Calls jemalloc's own API (mallocx, rallocx, sdallocx, dallocx) directly, linked
// against libjemalloc (DT_NEEDED, ahead of libc: its malloc is the program's too).
// Leaks: 3 blocks of 111 bytes from mallocx, one of 444 bytes grown by rallocx; 1,000
// mallocx/sdallocx and 1,000 mallocx/dallocx pairs leave nothing.
#include <stddef.h>
#include <stdlib.h>

// The Debian package ships the library without its header unless libjemalloc-dev is
// installed: the prototypes of <jemalloc/jemalloc.h>.
void* mallocx(size_t size, int flags);
void* rallocx(void* ptr, size_t size, int flags);
void sdallocx(void* ptr, size_t size, int flags);
void dallocx(void* ptr, int flags);
#define MALLOCX_ZERO 0x40

#define NOINLINE __attribute__((noinline))

static void* volatile sink;

NOINLINE void leak_mallocx(void) {
  for (int i = 0; i < 3; i++) sink = mallocx(111, 0);  // ALLOC:leak_mallocx
}

NOINLINE void leak_rallocx(void) {
  void* p = mallocx(222, MALLOCX_ZERO);
  sink = rallocx(p, 444, 0);  // ALLOC:leak_rallocx
}

NOINLINE void pairs(void) {
  for (int i = 0; i < 1000; i++) sdallocx(mallocx(333, 0), 333, 0);
  for (int i = 0; i < 1000; i++) dallocx(mallocx(334, 0), 0);
}

int main(void) {
  leak_mallocx();
  leak_rallocx();
  pairs();
  free(malloc(5));
  return 0;
}
