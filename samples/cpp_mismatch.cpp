// Frees by the wrong family, one of each: new[] released with delete (160 bytes),
// malloc released with delete (168 bytes), new released with free (176 bytes).
// Each allocation is released, so nothing leaks; each release is a mismatch.
#include <cstdlib>

struct Blob176 { char bytes[176]; };

__attribute__((noinline)) void array_with_delete() {
  char* p = new char[160];  // ALLOC:mismatch_new_array
  delete reinterpret_cast<char(*)>(p);  // wrong: delete for new[]  // FREE:mismatch_delete
}

__attribute__((noinline)) void malloc_with_delete() {
  char* p = static_cast<char*>(std::malloc(168));  // ALLOC:mismatch_malloc
  delete p;  // wrong: delete for malloc  // FREE:mismatch_delete_malloc
}

__attribute__((noinline)) void new_with_free() {
  Blob176* p = new Blob176();  // ALLOC:mismatch_new
  std::free(p);  // wrong: free for new  // FREE:mismatch_free
}

int main() {
  array_with_delete();
  malloc_with_delete();
  new_with_free();
  return 0;
}
