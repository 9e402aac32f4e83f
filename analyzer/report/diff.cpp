#include "analyzer/report/diff.h"

#include <algorithm>
#include <map>

#include <nlohmann/json.hpp>

#include "analyzer/report/folded.h"
#include "analyzer/report/frame_names.h"
#include "analyzer/text_output.h"
#include "common/safe_text.h"
#include "common/units.h"

namespace heaptrail::analyzer::report {
namespace {

std::vector<std::string> signature(const LeakGroup& g) {
  std::vector<std::string> names;
  for (const auto& f : rootFirst(g.stack)) names.push_back(f.name);
  return names;
}

std::string signedBytes(int64_t v) { return (v > 0 ? "+" : "") + std::to_string(v); }

void writeTotals(std::ostream& out, const char* label, const LeakReport& r) {
  const auto& s = r.summary;
  out << label << common::printable(s.trace) << ": " << s.matchingBytes << " bytes ("
      << common::formatBytes(s.matchingBytes) << ") in " << s.matchingAllocations << " allocations outstanding";
  if (s.suppressing && s.suppressedGroups > 0) out << ", " << s.suppressedBytes << " bytes suppressed";
  out << "\n";
  for (const auto& w : r.warnings) out << "  WARNING: " << common::printable(w) << "\n";
}

void writeEntries(std::ostream& out, const std::vector<DiffEntry>& entries) {
  for (const auto& e : entries) {
    out << "\n" << signedBytes(e.deltaBytes()) << " bytes, " << signedBytes(e.deltaCount()) << " allocations ("
        << e.baseBytes << " -> " << e.newBytes << " bytes, " << e.baseCount << " -> " << e.newCount << " allocations)\n";
    writeStackText(out, e.stack);
  }
}

}  // namespace

Diff diffReports(const LeakReport& base, const LeakReport& next, const DiffOptions& options) {
  std::map<std::vector<std::string>, DiffEntry> entries;
  for (const auto& g : base.leaks) {
    auto& e = entries[signature(g)];
    if (e.stack.frames.empty() && e.stack.stackId == 0) e.stack = g.stack;
    e.baseBytes += g.bytes;
    e.baseCount += g.count;
    e.baseAllocatedBytes += g.allocatedBytes;
    e.baseAllocations += g.allocations;
  }
  for (const auto& g : next.leaks) {
    auto& e = entries[signature(g)];
    if (e.newBytes == 0 && e.newCount == 0 && e.newAllocations == 0) e.stack = g.stack;
    e.newBytes += g.bytes;
    e.newCount += g.count;
    e.newAllocatedBytes += g.allocatedBytes;
    e.newAllocations += g.allocations;
  }
  Diff d;
  d.base = &base;
  d.next = &next;
  for (auto& [frames, e] : entries) {
    e.frames = frames;
    const int64_t delta = e.deltaBytes();
    const uint64_t magnitude = delta < 0 ? static_cast<uint64_t>(-delta) : static_cast<uint64_t>(delta);
    if (delta == 0 || magnitude < options.minBytes) {
      ++d.unchanged;
      continue;
    }
    (delta > 0 ? d.grown : d.shrunk).push_back(std::move(e));
  }
  const auto order = [](const DiffEntry& a, const DiffEntry& b) {
    const int64_t da = a.deltaBytes() < 0 ? -a.deltaBytes() : a.deltaBytes();
    const int64_t db = b.deltaBytes() < 0 ? -b.deltaBytes() : b.deltaBytes();
    if (da != db) return da > db;
    return a.frames < b.frames;
  };
  std::sort(d.grown.begin(), d.grown.end(), order);
  std::sort(d.shrunk.begin(), d.shrunk.end(), order);
  d.grownTotal = d.grown.size();
  d.shrunkTotal = d.shrunk.size();
  if (options.top > 0) {
    if (d.grown.size() > options.top) d.grown.resize(options.top);
    if (d.shrunk.size() > options.top) d.shrunk.resize(options.top);
  }
  return d;
}

void writeDiffText(std::ostream& out, const Diff& d) {
  writeTotals(out, "Base ", *d.base);
  writeTotals(out, "New  ", *d.next);
  const int64_t delta = static_cast<int64_t>(d.next->summary.matchingBytes) - static_cast<int64_t>(d.base->summary.matchingBytes);
  out << "Difference: " << signedBytes(delta) << " bytes outstanding; " << d.grownTotal << " stacks grew, " << d.shrunkTotal
      << " shrank or are gone, " << d.unchanged << " unchanged\n";
  if (!d.grown.empty()) {
    out << "\nGrew";
    if (d.grown.size() < d.grownTotal) out << " (the top " << d.grown.size() << ")";
    out << ":\n";
    writeEntries(out, d.grown);
  }
  if (!d.shrunk.empty()) {
    out << "\nShrank or gone";
    if (d.shrunk.size() < d.shrunkTotal) out << " (the top " << d.shrunk.size() << ")";
    out << ":\n";
    writeEntries(out, d.shrunk);
  }
}

void writeDiffJson(std::ostream& out, const Diff& d) {
  using Json = nlohmann::ordered_json;
  const auto totals = [](const LeakReport& r) {
    const auto& s = r.summary;
    return Json{{"trace", s.trace},
                {"outstanding_bytes", s.matchingBytes},
                {"outstanding_allocations", s.matchingAllocations},
                {"suppressed_bytes", s.suppressedBytes},
                {"lost_total", s.lostTotal},
                {"status", s.status},
                {"warnings", r.warnings}};
  };
  const auto entries = [](const std::vector<DiffEntry>& list) {
    Json a = Json::array();
    for (const auto& e : list) {
      Json frames = Json::array();
      const auto functions = rootFirst(e.stack);
      for (auto it = functions.rbegin(); it != functions.rend(); ++it)
        frames.push_back(Json{{"function", it->name},
                              {"file", it->file.empty() ? Json(nullptr) : Json(it->file)},
                              {"line", it->line > 0 ? Json(it->line) : Json(nullptr)},
                              {"inlined", it->inlined}});
      a.push_back(Json{{"delta_bytes", e.deltaBytes()},
                       {"delta_count", e.deltaCount()},
                       {"base_bytes", e.baseBytes},
                       {"base_count", e.baseCount},
                       {"new_bytes", e.newBytes},
                       {"new_count", e.newCount},
                       {"base_allocated_bytes", e.baseAllocatedBytes},
                       {"new_allocated_bytes", e.newAllocatedBytes},
                       {"frames", std::move(frames)}});
    }
    return a;
  };
  const Json doc{{"base", totals(*d.base)},
                 {"new", totals(*d.next)},
                 {"grown_total", d.grownTotal},
                 {"shrunk_total", d.shrunkTotal},
                 {"unchanged", d.unchanged},
                 {"grown", entries(d.grown)},
                 {"shrunk", entries(d.shrunk)}};
  out << doc.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
}

void writeDiffFolded(std::ostream& out, const LeakReport& base, const LeakReport& next, Metric metric) {
  // Process ids differ between runs: no process roots.
  const auto a = foldedValues(base, metric, false);
  const auto b = foldedValues(next, metric, false);
  std::map<std::string, std::pair<uint64_t, uint64_t>> both;
  for (const auto& [stack, v] : a) both[stack].first = v;
  for (const auto& [stack, v] : b) both[stack].second = v;
  for (const auto& [stack, v] : both) out << stack << ' ' << v.first << ' ' << v.second << '\n';
}

}  // namespace heaptrail::analyzer::report
