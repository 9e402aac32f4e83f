// Which value of a group the single-valued formats (folded stacks, flame graphs, diff) show.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "analyzer/leak_report.h"

namespace heaptrail::analyzer::report {

enum class Metric {
  InuseBytes,   // outstanding bytes at the analysis point (default)
  InuseCount,   // outstanding allocations
  AllocBytes,   // bytes allocated up to the analysis point, freed or not
  AllocCount,   // allocations up to the analysis point
};

// "bytes" / "inuse-bytes", "count" / "inuse-count", "alloc-bytes", "alloc-count".
std::optional<Metric> parseMetric(std::string_view text);
std::string_view metricName(Metric metric);
bool isAllocMetric(Metric metric);

uint64_t valueOf(const LeakGroup& group, Metric metric);

}  // namespace heaptrail::analyzer::report
