// Loads nofp_plugin (no frame pointers) with dlopen and calls it. Itself built
// -O2 -fomit-frame-pointer. With argv[1] = "stdin" it waits for a line after dlopen,
// before it calls the plugin (tests let the recorder load the plugin's table); without
// it the plugin leaks right after it is loaded, before the recorder has its table, and
// the walk is finished by the recorder from a copy of the stack, in which run_plugin's
// large frame leaves pages that were never touched (not in memory: not copied).
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "stdin_gate.h"

__attribute__((noinline)) int run_plugin(const char* path, int gated) {
  char scratch[3 * 4096];  // only its first bytes are written
  scratch[0] = 0;
  __asm__ volatile("" : : "r"(scratch) : "memory");
  void* handle = dlopen(path, RTLD_NOW);
  if (!handle) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return -1;
  }
  int (*leak)(int) = (int (*)(int))dlsym(handle, "plugin_leak");
  if (!leak) return -1;
  if (gated) wait_for_stdin();
  int r = leak(3);  // CALL:run_plugin
  __asm__ volatile("" ::: "memory");
  return r;
}

int main(int argc, char** argv) {
  const int gated = gated_by_stdin(argc, argv);
  const char* path = argc > 1 + gated ? argv[1 + gated] : "./libnofp_plugin.so";
  int r = run_plugin(path, gated);  // CALL:main_plugin
  return r < 0;
}
