// A library built without frame pointers (as most distribution libraries are) whose
// function allocates with new: 3 Widgets of 88 bytes leaked per nofp_make_widgets().
struct Widget { char bytes[88]; };

static void* volatile sink;

extern "C" __attribute__((noinline)) void nofp_make_widgets() {
  for (int i = 0; i < 3; i++) sink = new Widget();  // ALLOC:nofp_new
}
