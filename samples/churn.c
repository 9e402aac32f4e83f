// Allocates and frees 64-byte blocks: nothing leaks. `churn N`: N malloc/free pairs, then
// prints "ready" and waits for a line on stdin. `churn forever`: prints "ready", then
// allocates and frees until it is killed (a busy process to attach to).
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stdin_gate.h"

static void* volatile sink;

__attribute__((noinline)) static void churn_once(void) {
  sink = malloc(64);  // ALLOC:churn
  free(sink);
}

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "forever") == 0) {
    write(1, "ready\n", 6);
    for (;;) churn_once();
  }
  const long n = argc > 1 ? atol(argv[1]) : 100000;
  for (long i = 0; i < n; i++) churn_once();
  wait_for_stdin();
  return 0;
}
