// A long-lived leak and a young one, for age filtering: one 9009-byte block leaked at
// start, then a pause, then one 9109-byte block leaked. The pause is argv[1] seconds
// (default 2), or with argv[1] = "stdin": until a line (or the end) on stdin, after
// printing "ready" on stdout, so that a test can attach to it in between.
#include <stdlib.h>
#include <unistd.h>

#include "stdin_gate.h"

static void* volatile sink;

__attribute__((noinline)) static void leak_old(void) { sink = malloc(9009); }    // ALLOC:leak_old
__attribute__((noinline)) static void leak_young(void) { sink = malloc(9109); }  // ALLOC:leak_young

int main(int argc, char** argv) {
  leak_old();
  if (gated_by_stdin(argc, argv)) {
    wait_for_stdin();
  } else {
    usleep((useconds_t)((argc > 1 ? atof(argv[1]) : 2.0) * 1e6));
  }
  leak_young();
  return 0;
}
