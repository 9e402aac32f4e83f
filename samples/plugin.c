// A plugin that leaks two 10010-byte blocks each time plugin_leak() is called.
#include <stdlib.h>

static void* volatile sink;

__attribute__((noinline)) static void* plugin_make(void) {
  return malloc(10010);  // ALLOC:plugin_leak
}

void plugin_leak(void) {
  sink = plugin_make();
  sink = plugin_make();
}
