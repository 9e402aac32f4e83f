// A plugin built without frame pointers, loaded with dlopen by nofp_dlopen: it leaks
// 3 x 40 bytes two calls deep.
#include <stdlib.h>

static void* volatile sink;

__attribute__((noinline)) static int plugin_inner(int n) {
  sink = malloc(40);  // ALLOC:plugin_inner
  __asm__ volatile("" ::: "memory");
  return n + 1;
}

__attribute__((noinline)) int plugin_leak(int times) {
  int r = 0;
  for (int i = 0; i < times; i++) r += plugin_inner(i);  // CALL:plugin_leak
  __asm__ volatile("" ::: "memory");
  return r;
}
