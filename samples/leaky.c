// Allocates and leaks in known ways; every scenario uses its own sizes so a test can
// pick its events out of the trace. The expected outcome of each is in README.md and
// the allocating line of each leak is marked "ALLOC:<name>".
#define _GNU_SOURCE
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

static void* volatile sink;  // keeps the compiler from dropping allocations

NOINLINE void leak_plain(void) {
  for (int i = 0; i < 3; i++) sink = malloc(1001);  // ALLOC:leak_plain
}

NOINLINE void* make_record(void) {
  return malloc(2002);  // ALLOC:leak_in_loop
}

NOINLINE void leak_in_loop(void) {
  for (int i = 0; i < 10; i++) sink = make_record();
}

NOINLINE void churn(void) {
  for (int i = 0; i < 100; i++) {
    char* p = malloc(3003);  // ALLOC:churn
    memset(p, i, 3003);
    free(p);
  }
}

NOINLINE void realloc_chain(void) {
  char* p = malloc(4004);  // ALLOC:realloc_first
  p = realloc(p, 4104);
  p = realloc(p, 4204);  // ALLOC:realloc_chain
  sink = p;
}

NOINLINE void leak_calloc(void) {
  sink = calloc(5, 1005);  // ALLOC:leak_calloc
}

NOINLINE void leak_memalign(void) {
  void* p = NULL;
  if (posix_memalign(&p, 64, 6006) == 0) sink = p;  // ALLOC:leak_posix_memalign
  free(aligned_alloc(128, 6144));
  sink = memalign(256, 6272);  // ALLOC:leak_memalign
  free(valloc(6400));
}

NOINLINE void big_and_mapped(void) {
  free(malloc(5 << 20));  // served by mmap inside malloc: recorded once, as malloc
  char* m = mmap(NULL, 16 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);  // ALLOC:leak_mmap
  munmap(m + 12 * 4096, 4 * 4096);  // the first 12 pages stay mapped: 49152 bytes leaked
}

int main(void) {
  leak_plain();
  leak_in_loop();
  churn();
  realloc_chain();
  leak_calloc();
  leak_memalign();
  big_and_mapped();
  return 0;
}
