#pragma once

#include <filesystem>
#include <string>

namespace heaptrail::testing {

// The line number (from 1) of the line of `source` that contains `marker` as a whole
// word ("ALLOC:leak_old" does not match "ALLOC:leak_older"); adds a test failure and
// returns 0 when there is none. The samples mark their allocating lines this way.
unsigned markerLine(const std::filesystem::path& source, const std::string& marker);

}  // namespace heaptrail::testing
