#include <iostream>
#include <string>
#include <vector>

#include "analyzer/cli.h"

int main(int argc, char** argv) {
  const int code = heaptrail::analyzer::heaptrailMain(std::vector<std::string>(argv + 1, argv + argc), std::cout, std::cerr);
  std::cout.flush();
  return code;
}
