// Running the `heaptrail` command line in-process, with what it printed and its exit code.
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include "analyzer/cli.h"

namespace heaptrail::testing {

struct CliResult {
  int code = -1;
  std::string out, err;
};

inline CliResult runHeaptrail(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  CliResult r;
  r.code = analyzer::heaptrailMain(args, out, err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

}  // namespace heaptrail::testing
