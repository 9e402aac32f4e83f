// Two analyses compared stack by stack ("did my fix remove the leak", "what grew between
// two versions"): stacks are matched by their symbolized frames (function names, or
// module+offset where unknown), since addresses differ between runs.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "analyzer/leak_report.h"
#include "analyzer/report/metric.h"

namespace heaptrail::analyzer::report {

struct DiffEntry {
  std::vector<std::string> frames;  // root first
  StackReport stack;                // from the new trace when it has the stack, else the base
  uint64_t baseBytes = 0, baseCount = 0, baseAllocatedBytes = 0, baseAllocations = 0;
  uint64_t newBytes = 0, newCount = 0, newAllocatedBytes = 0, newAllocations = 0;
  int64_t deltaBytes() const { return static_cast<int64_t>(newBytes) - static_cast<int64_t>(baseBytes); }
  int64_t deltaCount() const { return static_cast<int64_t>(newCount) - static_cast<int64_t>(baseCount); }
};

struct DiffOptions {
  size_t top = 10;          // per direction (grown, shrunk); 0 = all
  uint64_t minBytes = 0;    // hide stacks whose outstanding bytes changed by less
};

struct Diff {
  const LeakReport* base = nullptr;
  const LeakReport* next = nullptr;
  std::vector<DiffEntry> grown;   // delta > 0, largest growth first
  std::vector<DiffEntry> shrunk;  // delta < 0, largest drop first
  size_t grownTotal = 0, shrunkTotal = 0;  // before --top
  size_t unchanged = 0;
};

// `base` and `next` must hold every group (top 0) and outlive the result.
Diff diffReports(const LeakReport& base, const LeakReport& next, const DiffOptions& options);

void writeDiffText(std::ostream& out, const Diff& diff);
void writeDiffJson(std::ostream& out, const Diff& diff);
// flamegraph's differential input (difffolded.pl): `root;...;leaf BASE NEW` per stack.
void writeDiffFolded(std::ostream& out, const LeakReport& base, const LeakReport& next, Metric metric);

}  // namespace heaptrail::analyzer::report
