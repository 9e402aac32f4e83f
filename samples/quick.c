// Leaks one 11011-byte block and exits at once: a life of a few milliseconds.
#include <stdlib.h>

static void* volatile sink;

int main(void) {
  sink = malloc(11011);  // ALLOC:quick_leak
  return 0;
}
