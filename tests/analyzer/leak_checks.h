// Checks of a symbolized leak report against the samples' ALLOC:<name> markers, shared by
// the end-to-end tests on this machine and on the emulated arm64 device.
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/source_markers.h"

namespace heaptrail::testing {

using Json = nlohmann::json;

struct Recorded {
  int status = -1;
  std::string text, json;
};

struct ExpectedLeak {
  std::string function;  // frame #0
  std::string marker;    // ALLOC:<marker>
  uint64_t bytes;
  uint64_t count;
};

inline bool endsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Checks each expected leak appears in the JSON and the text with frame #0 at its
// marker. A marker reached through several call sites makes several stacks: their
// bytes and counts are summed.
inline void checkLeaks(const Recorded& r, const std::string& source, const std::string& sourceName,
                const std::vector<ExpectedLeak>& expected) {
  const Json doc = Json::parse(r.json);
  const auto& leaks = doc.at("leaks");
  for (const auto& e : expected) {
    const unsigned line = markerLine(source, "ALLOC:" + e.marker);
    uint64_t bytes = 0, count = 0;
    for (const auto& leak : leaks) {
      const auto& frames = leak.at("frames");
      if (frames.empty() || !frames.at(0).at("function").is_string() || frames.at(0).at("function").get<std::string>() != e.function) continue;
      if (!frames.at(0).at("file").is_string() || !endsWith(frames.at(0).at("file").get<std::string>(), "/" + sourceName)) continue;
      if (frames.at(0).at("line").is_null() || frames.at(0).at("line").get<uint64_t>() != line) continue;
      bytes += leak.at("bytes").get<uint64_t>();
      count += leak.at("count").get<uint64_t>();
    }
    EXPECT_EQ(bytes, e.bytes) << "JSON leak " << e.marker << " (" << e.function << " at " << sourceName << ":"
                              << line << ")\n" << r.json;
    EXPECT_EQ(count, e.count) << "JSON leak " << e.marker;

    // Text: "<bytes> bytes in <n> allocation(s) from stack ...", then frame #0.
    uint64_t textBytes = 0, textCount = 0, groupBytes = 0, groupCount = 0;
    std::istringstream text(r.text);
    std::string current;
    while (std::getline(text, current)) {
      unsigned long long b = 0, n = 0;
      if (std::sscanf(current.c_str(), "%llu bytes in %llu allocation", &b, &n) == 2 &&
          current.find(" from stack") != std::string::npos) {
        groupBytes = b;
        groupCount = n;
        continue;
      }
      if (current.rfind("    #0 " + e.function + " ", 0) == 0 && endsWith(current, sourceName + ":" + std::to_string(line))) {
        textBytes += groupBytes;
        textCount += groupCount;
      }
      groupBytes = groupCount = 0;
    }
    EXPECT_EQ(textBytes, e.bytes) << "text leak " << e.marker << "\n" << r.text;
    EXPECT_EQ(textCount, e.count) << "text leak " << e.marker;
  }
}

// Every leak samples/leaky.c makes, on any architecture.
inline std::vector<ExpectedLeak> leakyLeaks() {
  return {
      {"leak_plain", "leak_plain", 3 * 1001, 3},
      {"make_record", "leak_in_loop", 10 * 2002, 10},
      {"realloc_chain", "realloc_chain", 4204, 1},
      {"leak_calloc", "leak_calloc", 5 * 1005, 1},
      {"leak_memalign", "leak_posix_memalign", 6006, 1},
      {"leak_memalign", "leak_memalign", 6272, 1},
      {"big_and_mapped", "leak_mmap", 12 * 4096, 1},
  };
}

}  // namespace heaptrail::testing
