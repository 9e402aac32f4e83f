// Every C++ allocation operator, each leaking once (sizes are unique so a test can find
// them) and each released once through its matching delete. Leaked:
//   new            -> Leak48   (48 bytes)
//   new[]          -> 25 ints  (100 bytes)
//   new(nothrow)   -> Leak56   (56 bytes)
//   new[](nothrow) -> 30 ints  (120 bytes)
//   aligned new    -> Aligned  (192 bytes, alignas(64))
//   aligned new[]  -> 2 x Aligned (384 bytes)
// Freed (not leaked): new 72 bytes with sized delete, new[] 35 ints (140 bytes) with
// delete[], aligned 1 x Aligned2 (320 bytes) with aligned delete.
#include <new>

struct Leak48 { char bytes[48]; };
struct Leak56 { char bytes[56]; };
struct Freed72 { char bytes[72]; };
struct alignas(64) Aligned { char bytes[192]; };
struct alignas(64) Aligned2 { char bytes[320]; };

static void* volatile sink;

__attribute__((noinline)) void leak_new() { sink = new Leak48(); }                          // ALLOC:new_plain
__attribute__((noinline)) void leak_new_array() { sink = new int[25](); }                  // ALLOC:new_array
__attribute__((noinline)) void leak_new_nothrow() { sink = new (std::nothrow) Leak56(); }  // ALLOC:new_nothrow
__attribute__((noinline)) void leak_new_array_nothrow() { sink = new (std::nothrow) int[30](); }  // ALLOC:new_array_nothrow
__attribute__((noinline)) void leak_new_aligned() { sink = new Aligned(); }                // ALLOC:new_aligned
__attribute__((noinline)) void leak_new_array_aligned() { sink = new Aligned[2](); }       // ALLOC:new_array_aligned

__attribute__((noinline)) void balanced() {
  Freed72* a = new Freed72();
  delete a;  // sized delete with -fsized-deallocation (the default in C++14 and later)
  int* b = new int[35]();
  delete[] b;
  Aligned2* c = new Aligned2();
  delete c;  // aligned (and sized) delete
}

int main() {
  leak_new();
  leak_new_array();
  leak_new_nothrow();
  leak_new_array_nothrow();
  leak_new_aligned();
  leak_new_array_aligned();
  balanced();
  return 0;
}
