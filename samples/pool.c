// An application's own allocator: a bump pool with a free list, never calling malloc.
// Record with --alloc-fn pool_alloc=malloc --alloc-fn pool_free=free.
// 6 blocks of 14014 bytes are allocated from the pool; 4 are released: 2 leaked.
#include <stddef.h>

static _Alignas(16) char arena[1 << 20];
static size_t used;

__attribute__((noinline)) void* pool_alloc(size_t size) {
  size = (size + 15) & ~(size_t)15;
  if (used + size > sizeof arena) return NULL;
  void* p = arena + used;
  used += size;
  return p;
}

__attribute__((noinline)) void pool_free(void* p) {
  (void)p;  // a real pool would put it on a free list
}

static void* volatile sink;

__attribute__((noinline)) void* make_entry(void) {
  return pool_alloc(14014);  // ALLOC:pool_leak
}

int main(void) {
  void* entries[6];
  for (int i = 0; i < 6; i++) entries[i] = make_entry();
  for (int i = 0; i < 4; i++) pool_free(entries[i]);
  sink = entries[4];
  sink = entries[5];
  return 0;
}
