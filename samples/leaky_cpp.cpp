// C++ leaks through containers and new: 7 Nodes of 48 bytes leaked by `new` (the
// operator itself calls malloc), and a std::vector<int> buffer of 12012 bytes leaked.
#include <cstdlib>
#include <vector>

namespace sample {

struct Node {
  Node* next = nullptr;
  char payload[40] = {};
};

__attribute__((noinline)) Node* make_list(int n) {
  Node* head = nullptr;
  for (int i = 0; i < n; i++) {
    Node* node = new Node();  // ALLOC:cpp_new_node
    node->next = head;
    head = node;
  }
  return head;
}

__attribute__((noinline)) std::vector<int>* make_buffer() {
  auto* v = new std::vector<int>();
  v->resize(3003);  // 12012 bytes
  return v;
}

}  // namespace sample

static void* volatile sink;

int main() {
  sink = sample::make_list(7);
  sink = sample::make_buffer();
  return 0;
}
