// One self-contained HTML page (no network: inline script and style, a Content Security
// Policy that forbids fetching anything): summary and warnings, a zoomable flame graph of
// outstanding bytes or of allocations, memory over time per process with the analysis
// point and the --since threshold marked, and the leak table with full stacks.
//
// Every text from the trace is untrusted: the static parts are HTML-escaped once, the
// data for the scripts is JSON with '<', '>' and '&' escaped (it cannot end its script
// element) and is only ever put into the page as text (textContent), never as markup.
#pragma once

#include <cstddef>
#include <ostream>
#include <string>
#include <string_view>

#include "analyzer/leak_report.h"

namespace heaptrail::analyzer::report {

struct HtmlLimits {
  size_t flameNodes = 20000;  // nodes drawn at most; the smallest are merged into their parent
  size_t tableRows = 200;     // groups listed with their stacks
};

void writeHtml(std::ostream& out, const LeakReport& report, const HtmlLimits& limits = {});

// Text as HTML character data or attribute value: valid UTF-8 (invalid bytes and control
// characters become U+FFFD), & < > " ' as references.
std::string htmlEscape(std::string_view text);

}  // namespace heaptrail::analyzer::report
