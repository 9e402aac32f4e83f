// The program of issue 17: 5 leaked blocks of 123 bytes and 2,000 malloc/free pairs of
// 321 bytes, whichever allocator malloc binds to (run it with LD_PRELOAD=libjemalloc,
// libtcmalloc_minimal, libmimalloc). Its leaking line carries the marker leak_123.
// With argv[1] = "stdin" it waits for a line first (tests attach with -p).
#include <stdlib.h>
#include <string.h>

#include "stdin_gate.h"

#define NOINLINE __attribute__((noinline))

static void* volatile sink;

NOINLINE void leak_five(void) {
  for (int i = 0; i < 5; i++) sink = malloc(123);  // ALLOC:leak_123
}

NOINLINE void pairs(void) {
  for (int i = 0; i < 2000; i++) {
    char* p = malloc(321);  // ALLOC:pair_321
    memset(p, i, 321);
    free(p);
  }
}

int main(int argc, char** argv) {
  if (gated_by_stdin(argc, argv)) wait_for_stdin();
  leak_five();
  pairs();
  return 0;
}
