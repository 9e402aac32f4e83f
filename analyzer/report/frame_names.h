// The functions of a report's frames as the graphical formats name them (folded stacks,
// pprof, html, diff): one entry per function, inlined calls included.
#pragma once

#include <string>
#include <vector>

#include "analyzer/leak_report.h"

namespace heaptrail::analyzer::report {

struct FunctionAt {
  std::string name;     // function, or module+0xoffset / 0xaddress when unknown
  std::string file;     // source file as the DWARF names it, empty if unknown
  unsigned line = 0;
  bool inlined = false;  // a call inlined into the next entry
  bool known = false;    // `name` is a function name
};

// The functions at one return address, innermost (inlined) first.
std::vector<FunctionAt> functionsAt(const Frame& frame);

// The whole stack root first, leaf (the allocator's caller) last.
std::vector<FunctionAt> rootFirst(const StackReport& stack);

// A stack that has no frames still has a name, so its bytes are counted somewhere.
std::string placeholderName(const StackReport& stack);

}  // namespace heaptrail::analyzer::report
