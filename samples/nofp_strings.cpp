// C++ built -O2 -fomit-frame-pointer: a std::string leaked with `new`, whose characters
// libstdc++ allocates itself (append -> _M_replace_aux -> _M_create, not inlined into
// the program), three calls below main. With
// argv[1] = "stdin" it waits for a line first.
#include <string>

#include "stdin_gate.h"

static std::string* volatile kept;

__attribute__((noinline)) std::string* make_text(size_t n) {
  std::string* s = new std::string();  // ALLOC:make_string
  s->append(n, 'x');  // ALLOC:make_text (the characters: in libstdc++, _M_replace_aux)
  __asm__ volatile("" ::: "memory");
  return s;
}

__attribute__((noinline)) void keep_text(size_t n) {
  kept = make_text(n);  // CALL:keep_text
  __asm__ volatile("" ::: "memory");
}

int main(int argc, char** argv) {
  if (gated_by_stdin(argc, argv)) wait_for_stdin();
  keep_text(300);  // CALL:main_keep
  return 0;
}
