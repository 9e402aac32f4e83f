#pragma once

#include <ostream>

#include "analyzer/leak_report.h"

namespace heaptrail::analyzer {

// Human-readable report in the spirit of BCC memleak, warnings first.
void writeText(std::ostream& out, const LeakReport& report);
// "    #0 leak_plain samples/leaky.c:16" and the like, one line per function: a return
// address in inlined code gives several, the inlined calls first and marked "(inlined)".
void writeStackText(std::ostream& out, const StackReport& stack);

}  // namespace heaptrail::analyzer
