// Two versions of one program for `heaptrail diff`: run without arguments it leaks a
// 4321-byte session in open_session and keeps a 2000-byte table either
// way; run with "fixed" it frees the session. The diff of the two shows exactly the leak.
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))

static void* volatile table;

NOINLINE char* open_session(void) {
  return malloc(4321);  // ALLOC:session
}

NOINLINE void build_table(void) {
  table = malloc(2000);  // ALLOC:table
}

int main(int argc, char** argv) {
  const int fixed = argc > 1 && strcmp(argv[1], "fixed") == 0;
  build_table();
  for (int i = 0; i < 3; i++) {
    char* s = open_session();
    memset(s, i, 16);
    if (fixed || i > 0) free(s);
  }
  return 0;
}
