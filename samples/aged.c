// A long-lived leak and a young one, for age filtering: one 9009-byte block leaked at
// start, then a pause (argv[1] seconds, default 2), then one 9109-byte block leaked.
#include <stdlib.h>
#include <unistd.h>

static void* volatile sink;

__attribute__((noinline)) static void leak_old(void) { sink = malloc(9009); }    // ALLOC:leak_old
__attribute__((noinline)) static void leak_young(void) { sink = malloc(9109); }  // ALLOC:leak_young

int main(int argc, char** argv) {
  const double pause = argc > 1 ? atof(argv[1]) : 2.0;
  leak_old();
  usleep((useconds_t)(pause * 1e6));
  leak_young();
  return 0;
}
