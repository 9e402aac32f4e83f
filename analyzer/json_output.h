#pragma once

#include <ostream>
#include <string>
#include <string_view>

#include "analyzer/leak_report.h"

namespace heaptrail::analyzer {

// The report as one JSON object; the format is described in the analyzer's README.
void writeJson(std::ostream& out, const LeakReport& report);

// `text` as a JSON string literal, quotes included; invalid UTF-8 becomes U+FFFD.
std::string jsonString(std::string_view text);

}  // namespace heaptrail::analyzer
