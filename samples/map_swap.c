// A hostile target for the recorder: it maps a library (dlopen of argv[1]), then puts a
// FIFO in the library's place (argv[2] = "fifo") or a symbolic link to argv[3]
// (argv[2] = "link"), so that a recorder opening the mapped file by its path would block
// forever or read another file. The same goes at "<library> (deleted)", the path
// /proc/PID/maps shows for the mapping once the library is unlinked. With argv[4] = "stdin" it waits for a line on stdin
// after the swap (ready to be attached to with -p), else it goes on at once. Then it
// leaks one block of 7007 bytes and exits.
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stdin_gate.h"

static void* volatile sink;

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: map_swap LIBRARY fifo|link [TARGET] [stdin]\n");
    return 2;
  }
  if (!dlopen(argv[1], RTLD_NOW)) {
    fprintf(stderr, "map_swap: %s\n", dlerror());
    return 1;
  }
  unlink(argv[1]);
  char deleted[4096];
  snprintf(deleted, sizeof deleted, "%s (deleted)", argv[1]);
  const char* paths[] = {argv[1], deleted};
  for (int i = 0; i < 2; i++) {
    const int failed = strcmp(argv[2], "fifo") == 0 ? mkfifo(paths[i], 0666) : symlink(argc > 3 ? argv[3] : "/", paths[i]);
    if (failed) {
      perror("map_swap");
      return 1;
    }
  }
  if (argc > 4 && strcmp(argv[4], "stdin") == 0) wait_for_stdin();
  sink = malloc(7007);  // ALLOC:map_swap
  return 0;
}
