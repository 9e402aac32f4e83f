// cxx_noop: a C++ program that does next to nothing, with libstdc++ loaded (a string
// and a vector, so the library is really used): the start and stop of a recording of a
// C++ program, without the work.
#include <string>
#include <vector>

int main(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  return args.size() > 100 ? 1 : 0;
}
