#include <string>
#include <vector>

#include "recorder/record_command.h"

int main(int argc, char** argv) {
  return heaptrail::recorder::recordMain(std::vector<std::string>(argv + 1, argv + argc), "heaptrail-record");
}
