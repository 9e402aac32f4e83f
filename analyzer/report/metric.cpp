#include "analyzer/report/metric.h"

namespace heaptrail::analyzer::report {

std::optional<Metric> parseMetric(std::string_view text) {
  if (text == "bytes" || text == "inuse-bytes") return Metric::InuseBytes;
  if (text == "count" || text == "inuse-count") return Metric::InuseCount;
  if (text == "alloc-bytes") return Metric::AllocBytes;
  if (text == "alloc-count") return Metric::AllocCount;
  return std::nullopt;
}

std::string_view metricName(Metric metric) {
  switch (metric) {
    case Metric::InuseBytes: return "inuse-bytes";
    case Metric::InuseCount: return "inuse-count";
    case Metric::AllocBytes: return "alloc-bytes";
    case Metric::AllocCount: return "alloc-count";
  }
  return "inuse-bytes";
}

bool isAllocMetric(Metric metric) { return metric == Metric::AllocBytes || metric == Metric::AllocCount; }

uint64_t valueOf(const LeakGroup& group, Metric metric) {
  switch (metric) {
    case Metric::InuseBytes: return group.bytes;
    case Metric::InuseCount: return group.count;
    case Metric::AllocBytes: return group.allocatedBytes;
    case Metric::AllocCount: return group.allocations;
  }
  return 0;
}

}  // namespace heaptrail::analyzer::report
