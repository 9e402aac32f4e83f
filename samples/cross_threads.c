// 16 threads: 8 producers allocate 200 blocks of 13013 bytes each and hand them to 8
// consumers, which free them. One block per producer (its last) is never freed:
// 8 blocks leaked. Every other block is allocated in one thread and freed in another.
// With argv[1] = "stdin" it prints "ready" and waits for a line on stdin first.
#include <pthread.h>
#include <stdlib.h>

#include "stdin_gate.h"

#define PAIRS 8
#define BLOCKS 200

struct channel {
  pthread_mutex_t lock;
  pthread_cond_t ready;
  void* slots[BLOCKS];
  int count;
};

static struct channel channels[PAIRS];
static void* volatile sink;

__attribute__((noinline)) static void* produce(void* arg) {
  struct channel* c = arg;
  for (int i = 0; i < BLOCKS; i++) {
    void* block = malloc(13013);  // ALLOC:cross_thread
    if (i == BLOCKS - 1) {
      sink = block;  // leaked
      break;
    }
    pthread_mutex_lock(&c->lock);
    c->slots[c->count++] = block;
    pthread_cond_signal(&c->ready);
    pthread_mutex_unlock(&c->lock);
  }
  return NULL;
}

__attribute__((noinline)) static void* consume(void* arg) {
  struct channel* c = arg;
  for (int done = 0; done < BLOCKS - 1; done++) {
    pthread_mutex_lock(&c->lock);
    while (c->count == 0) pthread_cond_wait(&c->ready, &c->lock);
    void* block = c->slots[--c->count];
    pthread_mutex_unlock(&c->lock);
    free(block);
  }
  return NULL;
}

int main(int argc, char** argv) {
  if (gated_by_stdin(argc, argv)) wait_for_stdin();
  pthread_t threads[2 * PAIRS];
  for (int i = 0; i < PAIRS; i++) {
    pthread_mutex_init(&channels[i].lock, NULL);
    pthread_cond_init(&channels[i].ready, NULL);
    pthread_create(&threads[2 * i], NULL, consume, &channels[i]);
    pthread_create(&threads[2 * i + 1], NULL, produce, &channels[i]);
  }
  for (int i = 0; i < 2 * PAIRS; i++) pthread_join(threads[i], NULL);
  return 0;
}
