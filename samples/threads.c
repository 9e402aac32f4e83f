// 4 threads, each allocating 100 blocks of 8008 bytes and freeing every other one:
// 200 blocks leaked in all, 50 per thread. Optional argv[1]: seconds to wait first, or
// "stdin": print "ready" and wait for a line on stdin first (stdin_gate.h).
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "stdin_gate.h"

#define THREADS 4
#define BLOCKS 100

static void* volatile sink;

__attribute__((noinline)) static void* worker(void* arg) {
  (void)arg;
  void* blocks[BLOCKS];
  for (int i = 0; i < BLOCKS; i++) blocks[i] = malloc(8008);  // ALLOC:thread_worker
  for (int i = 0; i < BLOCKS; i += 2) free(blocks[i]);
  for (int i = 1; i < BLOCKS; i += 2) sink = blocks[i];
  return NULL;
}

int main(int argc, char** argv) {
  if (gated_by_stdin(argc, argv))
    wait_for_stdin();
  else if (argc > 1)
    usleep((useconds_t)(atof(argv[1]) * 1e6));
  pthread_t threads[THREADS];
  for (int i = 0; i < THREADS; i++) pthread_create(&threads[i], NULL, worker, NULL);
  for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
  return 0;
}
