// Built like distribution code (-O2 -fomit-frame-pointer): a leak at the end of a call
// chain ten functions deep, and one made in a callback that libc's qsort calls. Only
// call-frame information (.eh_frame) can unwind these stacks. With argv[1] = "stdin"
// it waits for a line before it allocates (tests let the recorder load its tables).
#include <stdlib.h>
#include <string.h>

#include "stdin_gate.h"

// Each level does work after its call, so that no call becomes a jump (tail call).
#define LEVEL(name, next)                                  \
  __attribute__((noinline)) int name(int n) {              \
    int r = next(n + 1);                                   \
    __asm__ volatile("" : "+r"(r));                        \
    return r + 1;                                          \
  }

static void* volatile sink;

__attribute__((noinline)) int chain_leaf(int n) {
  sink = malloc(64 + (size_t)n);  // ALLOC:chain_leaf
  return n;
}
LEVEL(chain9, chain_leaf)  // CALL:chain9
LEVEL(chain8, chain9)  // CALL:chain8
LEVEL(chain7, chain8)  // CALL:chain7
LEVEL(chain6, chain7)  // CALL:chain6
LEVEL(chain5, chain6)  // CALL:chain5
LEVEL(chain4, chain5)  // CALL:chain4
LEVEL(chain3, chain4)  // CALL:chain3
LEVEL(chain2, chain3)  // CALL:chain2
LEVEL(chain1, chain2)  // CALL:chain1

static int compared;

__attribute__((noinline)) int compare_ints(const void* a, const void* b) {
  if (compared++ == 0) sink = malloc(48);  // ALLOC:compare_ints
  __asm__ volatile("" ::: "memory");
  return *(const int*)a - *(const int*)b;
}

__attribute__((noinline)) int sort_numbers(void) {
  int numbers[] = {5, 3, 9, 1, 7, 2, 8};
  qsort(numbers, sizeof numbers / sizeof numbers[0], sizeof numbers[0], compare_ints);  // CALL:qsort
  __asm__ volatile("" ::: "memory");
  return numbers[0];
}

int main(int argc, char** argv) {
  if (gated_by_stdin(argc, argv)) wait_for_stdin();
  int r = chain1(0);  // CALL:main_chain
  r += sort_numbers();  // CALL:main_sort
  return r == 12345;
}
