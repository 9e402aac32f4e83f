// Calls into the frame-pointer-less library (libnofp.so), which leaks 3 x 88 bytes.
extern "C" void nofp_make_widgets();

__attribute__((noinline)) void use_library() { nofp_make_widgets(); }

int main() {
  use_library();
  return 0;
}
