// Loads the plugin (argv[1], default: libhtplugin.so next to this program) after
// start, calls its leaking function, and unloads it before exiting: its leak must
// still be attributed to the plugin's source offline.
#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char** argv) {
  char path[PATH_MAX];
  if (argc > 1) {
    snprintf(path, sizeof path, "%s", argv[1]);
  } else {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0) return 1;
    self[n] = '\0';
    snprintf(path, sizeof path, "%s/libhtplugin.so", dirname(self));
  }
  usleep(50 * 1000);  // be clearly after the start of the recording
  void* plugin = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!plugin) {
    fprintf(stderr, "plugin_host: %s\n", dlerror());
    return 1;
  }
  void (*leak)(void) = (void (*)(void))dlsym(plugin, "plugin_leak");
  if (!leak) return 1;
  leak();
  dlclose(plugin);
  return 0;
}
