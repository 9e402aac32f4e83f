// Folded stacks (Brendan Gregg's flamegraph.pl input, read by speedscope and inferno):
// one line per distinct stack, `root;...;leaf VALUE`, the allocator's caller as the leaf
// and inlined calls as their own frames.
#pragma once

#include <map>
#include <ostream>
#include <string>

#include "analyzer/leak_report.h"
#include "analyzer/report/metric.h"

namespace heaptrail::analyzer::report {

// A frame name made safe for one folded field: no ';' (the separator), no line breaks
// nor other control characters.
std::string foldedFrame(const std::string& name);

// The folded stack of a group: with several processes in the report, the process is the
// root frame so their stacks do not merge.
std::string foldedStack(const LeakGroup& group, bool perProcess);

// Whether the report's stacks get their process as root frame (several processes shown).
bool perProcessRoots(const LeakReport& report);

// Stack -> summed value over the report's groups (zero values left out).
std::map<std::string, uint64_t> foldedValues(const LeakReport& report, Metric metric, bool perProcess);

void writeFolded(std::ostream& out, const LeakReport& report, Metric metric);

}  // namespace heaptrail::analyzer::report
