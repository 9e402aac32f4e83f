#include "analyzer/text_output.h"

#include <cstdio>
#include <filesystem>
#include <sstream>
#include <vector>

#include "common/hex.h"
#include "common/safe_text.h"
#include "common/units.h"

namespace heaptrail::analyzer {
namespace {

std::string moduleOffset(const Frame& f) {
  return std::filesystem::path(f.module).filename().string() + "+" + common::hexNumber(f.offset);
}

// Source paths as written in the DWARF ("./pwd/../nss/x.c") are shown normalized, and
// relative to the working directory when under it, as a user typed them.
std::string displayFile(const std::string& file) {
  const std::string normal = std::filesystem::path(file).lexically_normal().string();
  std::error_code ec;
  const auto cwd = std::filesystem::current_path(ec);
  if (ec || normal.empty() || normal[0] != '/') return normal;
  const std::string prefix = cwd.string() + "/";
  return normal.compare(0, prefix.size(), prefix) == 0 ? normal.substr(prefix.size()) : normal;
}

std::string location(const symbols::SourceFrame& s) {
  return displayFile(s.file) + (s.line > 0 ? ":" + std::to_string(s.line) : std::string());
}

// One line per function at the frame's address, inlined calls first.
std::vector<std::string> frameLines(const Frame& f) {
  if (!f.mapped) return {common::hexNumber(f.address) + " (no mapping)"};
  if (!f.symbolized) return {moduleOffset(f)};
  const symbols::SymbolizedFrame& s = f.symbol;
  if (!s.resolved()) return {moduleOffset(f) + " (" + s.whyUnresolved() + ")"};
  std::vector<std::string> lines;
  for (std::size_t i = 0; i < s.frames.size(); ++i) {
    const symbols::SourceFrame& source = s.frames[i];
    std::string text;
    if (!source.function.empty() && !source.file.empty())
      text = source.function + " " + location(source);
    else if (!source.function.empty())
      text = source.function + " " + moduleOffset(f);
    else if (!source.file.empty())
      text = moduleOffset(f) + " " + location(source);
    else
      text = moduleOffset(f);
    if (s.isInlined(i)) text += " (inlined)";
    lines.push_back(std::move(text));
  }
  return lines;
}

std::string plural(uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace

void writeStackText(std::ostream& out, const StackReport& stack) {
  if (stack.stackId == 0) {
    out << "    (no stack captured)\n";
    return;
  }
  if (!stack.known) {
    out << "    (stack " << stack.stackId << " is not in the trace)\n";
    return;
  }
  size_t index = 0;
  for (const Frame& frame : stack.frames)
    for (const std::string& line : frameLines(frame))
      out << "    #" << index++ << " " << common::printable(line) << "\n";
  if (stack.incomplete) out << "    ... (incomplete: the recorder could not unwind further)\n";
}

void writeText(std::ostream& out, const LeakReport& report) {
  const ReportSummary& s = report.summary;
  // Paths, argv and messages come from the trace (a stranger's): escaped, never driving the terminal.
  for (const auto& w : report.warnings) out << "WARNING: " << common::printable(w) << "\n";
  if (!report.warnings.empty()) out << "\n";

  out << "Trace " << common::printable(s.trace);
  if (s.targetPid != 0) {
    out << " (pid " << s.targetPid;
    if (!s.targetCommand.empty()) {
      out << ":";
      for (const auto& a : s.targetCommand) out << " " << common::printable(a);
    }
    out << ")";
  }
  out << "\n";
  if (s.atNs)
    out << "  analysis point:       " << common::formatDuration(*s.atNs) << " after the start (--at)\n";
  else
    out << "  analysis point:       end of the recording, " << common::formatDuration(s.analysisNs) << " after the start\n";
  out << "  events:               " << s.events << "\n";
  out << "  allocations:          " << s.allocations << " (" << s.bytesAllocated << " bytes, "
      << common::formatBytes(s.bytesAllocated) << ")\n";
  out << "  frees:                " << s.frees << "\n";
  out << "  peak outstanding:     " << s.peakBytes << " bytes (" << common::formatBytes(s.peakBytes) << ") at "
      << common::formatDuration(s.peakNs) << "\n";
  out << "  outstanding:          " << s.outstandingBytes << " bytes (" << common::formatBytes(s.outstandingBytes) << ") in "
      << plural(s.outstandingAllocations, "allocation", "allocations") << "\n";
  out << "  frees of unknown addresses: " << s.unknownFrees << "\n";
  out << "  double frees:         " << s.doubleFrees << "\n";
  out << "  mismatched frees:     " << s.mismatches << "\n";
  if (s.processes.size() > 1 || s.pid) {
    out << "  processes:           ";
    for (uint32_t pid : s.processes) out << " " << pid;
    if (s.pid) out << " (showing pid " << *s.pid << ")";
    out << "\n";
  }
  if (s.failedReallocs > 0) out << "  failed reallocs:      " << s.failedReallocs << "\n";
  if (s.allocatorInternalAllocations > 0)
    out << "  allocator-internal:   " << s.allocatorInternalBytes << " bytes in "
        << plural(s.allocatorInternalAllocations, "allocation", "allocations")
        << " the allocator library made for itself (not listed)\n";
  out << "  lost events:          " << (s.lostTotal == 0 ? std::string("none") : std::to_string(s.lostTotal)) << "\n";
  if (s.suppressing) {
    out << "  suppressed:           " << s.suppressedBytes << " bytes in " << plural(s.suppressedGroups, "stack", "stacks");
    if (!s.suppressionsUsed.empty()) {
      out << " (";
      for (size_t i = 0; i < s.suppressionsUsed.size(); ++i)
        out << (i ? ", " : "") << common::printable(s.suppressionsUsed[i].pattern) << " " << s.suppressionsUsed[i].groups;
      out << ")";
    }
    out << "\n";
  }
  out << "\n";

  std::string filters;
  if (s.sinceNs > 0) filters += "outstanding for at least " + common::formatDuration(s.sinceNs);
  if (s.minBytes > 0) filters += std::string(filters.empty() ? "" : ", ") + "at least " + std::to_string(s.minBytes) + " bytes per stack";
  out << plural(s.stackGroups, "stack", "stacks") << " with outstanding allocations";
  if (!filters.empty()) out << " (" << filters << ")";
  if (s.rankedBy == "growth") out << ", by steadiness of growth";
  if (s.top > 0 && s.stackGroups > s.top) out << ", showing the top " << s.top;
  out << (report.leaks.empty() ? "\n" : ":\n");
  for (const auto& leak : report.leaks) {
    out << "\n" << leak.bytes << " bytes in " << plural(leak.count, "allocation", "allocations");
    if (leak.kernel) out << " of kernel memory (" << leak.family << ")";
    out << " from stack (";
    if (s.processes.size() > 1 || leak.kernel) {
      out << "pid " << leak.pid;
      if (!leak.comm.empty()) out << " " << common::printable(leak.comm);
      else if (leak.kernel && leak.pid == 0) out << " interrupt or idle";
      out << ", ";
    }
    out << "oldest " << common::formatDuration(leak.oldestAgeNs) << ", youngest " << common::formatDuration(leak.youngestAgeNs) << ")\n";
    if (s.rankedBy == "growth") {
      char rate[64];
      std::snprintf(rate, sizeof rate, "%+.0f", leak.growth.bytesPerSecond);
      out << "  grew in " << leak.growth.grownWindows << " of " << leak.growth.windows << " windows of "
          << common::formatDuration(leak.growth.windowNs) << ", " << rate << " bytes/s\n";
    }
    writeStackText(out, leak.stack);
  }

  if (!report.doubleFrees.empty()) {
    out << "\n" << plural(s.doubleFrees, "double free", "double frees") << ", by where the block was allocated:\n";
    for (const auto& d : report.doubleFrees) {
      out << "\n" << plural(d.count, "double free", "double frees") << " of a " << d.bytes
          << "-byte block (first at " << common::formatDuration(d.firstTimeNs) << ") allocated at\n";
      writeStackText(out, d.stack);
      if (d.freeStack.stackId != 0) {
        out << "  freed again at\n";
        writeStackText(out, d.freeStack);
      }
    }
  }

  if (!report.mismatches.empty()) {
    out << "\n" << plural(s.mismatches, "free", "frees") << " by the wrong allocator family:\n";
    for (const auto& m : report.mismatches) {
      out << "\n" << plural(m.count, "block", "blocks") << " (" << m.bytes << " bytes";
      if (s.processes.size() > 1) out << ", pid " << m.pid;
      out << ") allocated with " << m.allocFamily << " but released with " << m.releaseFamily << "\n";
      out << "  allocated at\n";
      writeStackText(out, m.allocStack);
      out << "  released at\n";
      if (m.releaseStack.stackId == 0)
        out << "    (not recorded: record with --release-stacks to see where)\n";
      else
        writeStackText(out, m.releaseStack);
    }
  }
}

}  // namespace heaptrail::analyzer
