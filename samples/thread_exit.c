// Threads that free everything they allocate, then exit: nothing leaks, nothing is freed
// twice. At thread exit glibc flushes the thread's malloc cache (tcache) by calling
// free() again on blocks the program freed already, and frees the cache itself, which
// the program never saw allocated: neither may be reported. argv[1]: the number of
// threads (default 1). Each thread does 5 malloc + 5 free of 40 bytes (they stay in its
// tcache), and opens and closes a file: fopen()'s FILE is allocated and fclose()'d by
// libc on the program's behalf, a free the analyzer must apply.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define BLOCKS 5

static void* volatile sink;

__attribute__((noinline)) static void* worker(void* arg) {
  (void)arg;
  void* blocks[BLOCKS];
  for (int i = 0; i < BLOCKS; i++) blocks[i] = malloc(40);  // ALLOC:thread_exit_block
  for (int i = 0; i < BLOCKS; i++) free(blocks[i]);
  FILE* f = fopen("/proc/self/stat", "r");  // ALLOC:thread_exit_file
  if (f) {
    sink = f;
    fclose(f);
  }
  return NULL;
}

int main(int argc, char** argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  if (threads < 1 || threads > 64) threads = 1;
  pthread_t ids[64];
  for (int i = 0; i < threads; i++) pthread_create(&ids[i], NULL, worker, NULL);
  for (int i = 0; i < threads; i++) pthread_join(ids[i], NULL);
  return 0;
}
