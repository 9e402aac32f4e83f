// For tests that attach to a running sample: with argv[1] = "stdin" the sample prints
// "ready" and waits for a line (or the end) on stdin at the point where it calls this.
#ifndef HEAPTRAIL_SAMPLES_STDIN_GATE_H
#define HEAPTRAIL_SAMPLES_STDIN_GATE_H

#include <string.h>
#include <unistd.h>

static inline int gated_by_stdin(int argc, char** argv) { return argc > 1 && strcmp(argv[1], "stdin") == 0; }

static inline void wait_for_stdin(void) {
  char line[64];
  write(1, "ready\n", 6);
  ssize_t n;
  do n = read(0, line, sizeof line);
  while (n > 0 && memchr(line, '\n', (size_t)n) == NULL);
}

#endif
