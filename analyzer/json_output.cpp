#include "analyzer/json_output.h"

#include <nlohmann/json.hpp>

#include "common/hex.h"

namespace heaptrail::analyzer {
namespace {

// Keys stay in the order they are set, the order the README documents.
using Json = nlohmann::ordered_json;

Json stringOrNull(const std::string& s) { return s.empty() ? Json(nullptr) : Json(s); }

// One entry per function at the return address: inlined calls first, each marked.
void appendFrames(Json& list, const Frame& f) {
  Json base = Json::object();
  base["address"] = common::hexNumber(f.address);
  if (f.mapped) {
    base["module"] = f.module;
    base["build_id"] = stringOrNull(common::hexBytes(f.buildId));
    base["offset"] = f.offset;
  } else {
    base["module"] = nullptr;
    base["build_id"] = nullptr;
    base["offset"] = nullptr;
  }
  const symbols::SymbolizedFrame& s = f.symbol;
  if (!f.symbolized || !s.resolved()) {
    base["function"] = nullptr;
    base["file"] = nullptr;
    base["line"] = nullptr;
    base["inlined"] = false;
    if (!f.mapped)
      base["unresolved"] = "no mapping";
    else if (f.symbolized)
      base["unresolved"] = s.whyUnresolved();
    else
      base["unresolved"] = nullptr;
    list.push_back(std::move(base));
    return;
  }
  for (std::size_t i = 0; i < s.frames.size(); ++i) {
    const symbols::SourceFrame& source = s.frames[i];
    Json entry = base;
    entry["function"] = stringOrNull(source.function);
    entry["file"] = stringOrNull(source.file);
    entry["line"] = source.line > 0 ? Json(source.line) : Json(nullptr);
    entry["inlined"] = s.isInlined(i);
    entry["unresolved"] = nullptr;
    list.push_back(std::move(entry));
  }
}

// The frames of a stack as an array (empty when no stack was recorded).
Json frameList(const StackReport& stack) {
  Json list = Json::array();
  for (const Frame& f : stack.frames) appendFrames(list, f);
  return list;
}

Json summaryJson(const LeakReport& report) {
  const ReportSummary& s = report.summary;
  Json j = Json::object();
  j["trace"] = s.trace;
  j["target_pid"] = s.targetPid != 0 ? Json(s.targetPid) : Json(nullptr);
  j["target_command"] = s.targetCommand;
  j["status"] = s.status;
  j["problem"] = stringOrNull(s.problem);
  j["at_ns"] = s.atNs ? Json(*s.atNs) : Json(nullptr);
  j["since_ns"] = s.sinceNs;
  j["min_bytes"] = s.minBytes;
  j["top"] = s.top;
  j["analysis_ns"] = s.analysisNs;
  j["events"] = s.events;
  j["allocations"] = s.allocations;
  j["frees"] = s.frees;
  j["bytes_allocated"] = s.bytesAllocated;
  j["peak_outstanding_bytes"] = s.peakBytes;
  j["peak_ns"] = s.peakNs;
  j["outstanding_bytes"] = s.outstandingBytes;
  j["outstanding_allocations"] = s.outstandingAllocations;
  j["matching_bytes"] = s.matchingBytes;
  j["matching_allocations"] = s.matchingAllocations;
  j["stack_groups"] = s.stackGroups;
  j["unknown_frees"] = s.unknownFrees;
  j["double_frees"] = s.doubleFrees;
  j["mismatched_frees"] = s.mismatches;
  j["pid"] = s.pid ? Json(*s.pid) : Json(nullptr);
  j["processes"] = s.processes;
  j["failed_reallocs"] = s.failedReallocs;
  j["allocator_internal_bytes"] = s.allocatorInternalBytes;
  j["allocator_internal_allocations"] = s.allocatorInternalAllocations;
  Json lost = Json::object();
  for (const auto& [kind, count] : s.lost) lost[kind] = count;
  j["lost_events"] = std::move(lost);
  j["lost_total"] = s.lostTotal;
  j["warnings"] = report.warnings;
  j["ranked_by"] = s.rankedBy;
  j["suppressed_groups"] = s.suppressedGroups;
  j["suppressed_bytes"] = s.suppressedBytes;
  j["suppressed_allocations"] = s.suppressedAllocations;
  Json used = Json::array();
  for (const auto& u : s.suppressionsUsed)
    used.push_back(Json{{"pattern", u.pattern}, {"origin", u.origin}, {"groups", u.groups}, {"bytes", u.bytes}});
  j["suppressions_used"] = std::move(used);
  return j;
}

}  // namespace

// nlohmann-json's conversions (found by argument-dependent lookup): the layout of each group.
void to_json(Json& j, const LeakGroup& leak) {
  j = Json{{"pid", leak.pid},
           {"bytes", leak.bytes},
           {"count", leak.count},
           {"oldest_ns", leak.oldestAgeNs},
           {"youngest_ns", leak.youngestAgeNs},
           {"stack_id", leak.stack.stackId},
           {"frames", frameList(leak.stack)}};
  // Present only where known: traces without thread names or kernel memory read as before.
  if (!leak.comm.empty()) j["comm"] = leak.comm;
  if (leak.stack.incomplete) j["stack_incomplete"] = true;
  if (leak.kernel) {
    j["kernel"] = true;
    j["family"] = leak.family;
  }
  j["allocated_bytes"] = leak.allocatedBytes;
  j["allocations"] = leak.allocations;
  j["growth"] = Json{{"bytes_per_second", leak.growth.bytesPerSecond},
                     {"grown_windows", leak.growth.grownWindows},
                     {"windows", leak.growth.windows},
                     {"window_ns", leak.growth.windowNs}};
}

void to_json(Json& j, const DoubleFreeGroup& d) {
  j = Json{{"count", d.count},
           {"bytes", d.bytes},
           {"first_ns", d.firstTimeNs},
           {"stack_id", d.stack.stackId},
           {"frames", frameList(d.stack)},
           {"free_frames", frameList(d.freeStack)}};
}

void to_json(Json& j, const MismatchGroup& m) {
  j = Json{{"pid", m.pid},
           {"count", m.count},
           {"bytes", m.bytes},
           {"allocated_with", m.allocFamily},
           {"released_with", m.releaseFamily},
           {"alloc_frames", frameList(m.allocStack)},
           {"release_frames", frameList(m.releaseStack)}};
}

void writeJson(std::ostream& out, const LeakReport& report) {
  const Json doc{{"summary", summaryJson(report)},
                 {"leaks", report.leaks},
                 {"double_frees", report.doubleFrees},
                 {"mismatched_frees", report.mismatches}};
  // Paths and names come from the traced machine and may be any bytes: invalid UTF-8
  // becomes U+FFFD so the output is always valid JSON.
  out << doc.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
}

}  // namespace heaptrail::analyzer
