#pragma once

#include <ostream>

#include "analyzer/leak_report.h"

namespace heaptrail::analyzer {

// The report as one JSON object; the format is described in the README ("JSON output").
// Text that is not valid UTF-8 (paths and names from the traced machine) has each invalid
// byte replaced by U+FFFD.
void writeJson(std::ostream& out, const LeakReport& report);

}  // namespace heaptrail::analyzer
