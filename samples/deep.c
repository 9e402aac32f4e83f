// A leak 24 calls deep through functions with large stack frames (600 bytes each), so
// the outer frames lie far above the stack pointer: one 15015-byte block leaked.
#include <stdlib.h>
#include <string.h>

static void* volatile sink;

__attribute__((noinline)) void recurse(int depth) {
  char pad[600];
  memset(pad, depth, sizeof pad);
  if (depth == 0)
    sink = malloc(15015);  // ALLOC:deep_leak
  else
    recurse(depth - 1);
  sink = pad[depth % 600] ? sink : sink;  // keeps the frame from being a tail call
}

int main(void) {
  recurse(23);
  return 0;
}
