// Four threads allocating at full speed, each from its own function (worker_0 ..
// worker_3, block sizes 16001 + i), until killed or argv[1] seconds have passed: a
// recorder attached at any moment must see all four.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static volatile int stop;

#define WORKER(i)                                                    \
  __attribute__((noinline)) static void* worker_##i(void* arg) {     \
    (void)arg;                                                       \
    while (!stop) free(malloc(16001 + i)); /* ALLOC:busy_##i */      \
    return NULL;                                                     \
  }
WORKER(0)
WORKER(1)
WORKER(2)
WORKER(3)

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? atof(argv[1]) : 60.0;
  void* (*workers[4])(void*) = {worker_0, worker_1, worker_2, worker_3};
  pthread_t threads[4];
  for (int i = 0; i < 4; ++i) {
    pthread_create(&threads[i], NULL, workers[i], NULL);
    char name[16] = "worker_0";
    name[7] = (char)('0' + i);
    pthread_setname_np(threads[i], name);  // the test reads each one's CPU time by name
  }
  usleep((useconds_t)(seconds * 1e6));
  stop = 1;
  for (int i = 0; i < 4; ++i) pthread_join(threads[i], NULL);
  return 0;
}
