#include "tests/support/source_markers.h"

#include <gtest/gtest.h>

#include <cctype>
#include <fstream>

namespace heaptrail::testing {

unsigned markerLine(const std::filesystem::path& source, const std::string& marker) {
  std::ifstream in(source);
  std::string line;
  for (unsigned n = 1; std::getline(in, line); ++n) {
    for (size_t pos = line.find(marker); pos != std::string::npos; pos = line.find(marker, pos + 1)) {
      const size_t end = pos + marker.size();
      if (end == line.size() || !(std::isalnum(static_cast<unsigned char>(line[end])) || line[end] == '_')) return n;
    }
  }
  ADD_FAILURE() << "no " << marker << " in " << source;
  return 0;
}

}  // namespace heaptrail::testing
