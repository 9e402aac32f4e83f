// An allocator function that may never return: maybe_escape(n, 1) allocates and then
// longjmps out, so a return probe on it never fires; maybe_escape(n, 0) returns. Record
// with --alloc-fn maybe_escape=malloc. From one call site in main: three escapes, then
// five 17017-byte leaks. Then "ready" on stdout and a line awaited on stdin. Then three
// escapes from another call site and five 17217-byte leaks from other_site, called from
// main at the same depth. All ten leaks must be recorded: none may be taken for a call
// nested in an escaped one.
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static jmp_buf back;
static void* volatile sink;

__attribute__((noinline)) void* maybe_escape(size_t n, int escape) {
  void* p = malloc(n);
  if (escape) longjmp(back, 1);
  return p;
}

__attribute__((noinline)) static void other_site(size_t n) { sink = malloc(n); }  // ALLOC:other_site

int main(void) {
  for (volatile int i = 0; i < 8; ++i) {
    if (setjmp(back)) continue;  // escaped
    sink = maybe_escape(i < 3 ? 16 : 17017, i < 3);  // ALLOC:same_site
  }
  write(1, "ready\n", 6);
  char line[64];
  ssize_t n;
  do n = read(0, line, sizeof line);
  while (n > 0 && memchr(line, '\n', (size_t)n) == NULL);
  for (volatile int i = 0; i < 3; ++i)
    if (!setjmp(back)) maybe_escape(16, 1);
  for (int i = 0; i < 5; ++i) other_site(17217);
  return 0;
}
