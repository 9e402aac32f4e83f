// A service with one real leak and one cache, for `heaptrail analyze --growth`: the cache
// takes 64 KiB while warming up in its first tenth of a second and keeps it; the leak
// loses 256 bytes every 20 ms for the rest of the run (60 times: 15360 bytes). By bytes
// the cache comes first; by steadiness of growth the leak does.
#define _GNU_SOURCE
#include <stdlib.h>
#include <time.h>

#define NOINLINE __attribute__((noinline))

static void* cache[64];
static void* volatile sink;

static void pause_ms(long ms) {
  struct timespec t = {0, ms * 1000000L};
  nanosleep(&t, NULL);
}

NOINLINE void warm_cache(int i) {
  cache[i] = malloc(1024);  // ALLOC:cache
}

NOINLINE void handle_request(void) {
  char* scratch = malloc(4096);  // freed: not a leak
  sink = malloc(256);            // ALLOC:leak
  free(scratch);
}

int main(void) {
  for (int i = 0; i < 64; i++) {
    warm_cache(i);
    if (i % 8 == 7) pause_ms(10);
  }
  for (int i = 0; i < 60; i++) {
    handle_request();
    pause_ms(20);
  }
  return 0;
}
