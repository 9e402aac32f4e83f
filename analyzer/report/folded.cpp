#include "analyzer/report/folded.h"

#include "analyzer/report/frame_names.h"

namespace heaptrail::analyzer::report {

std::string foldedFrame(const std::string& name) {
  std::string out;
  out.reserve(name.size());
  for (const char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (c == ';')
      out += ':';
    else if (u < 0x20 || u == 0x7f)
      out += '?';
    else
      out += c;
  }
  return out.empty() ? "?" : out;
}

std::string foldedStack(const LeakGroup& group, bool perProcess) {
  std::string line;
  if (perProcess) {
    line = "pid " + std::to_string(group.pid);
    if (!group.comm.empty()) line += " " + foldedFrame(group.comm);
  }
  for (const auto& f : rootFirst(group.stack)) {
    if (!line.empty()) line += ';';
    line += foldedFrame(f.name);
  }
  return line;
}

bool perProcessRoots(const LeakReport& report) { return report.summary.processes.size() > 1 && !report.summary.pid; }

std::map<std::string, uint64_t> foldedValues(const LeakReport& report, Metric metric, bool perProcess) {
  std::map<std::string, uint64_t> values;
  for (const auto& g : report.leaks) {
    const uint64_t v = valueOf(g, metric);
    if (v == 0) continue;
    values[foldedStack(g, perProcess)] += v;
  }
  return values;
}

void writeFolded(std::ostream& out, const LeakReport& report, Metric metric) {
  for (const auto& [stack, value] : foldedValues(report, metric, perProcessRoots(report))) out << stack << ' ' << value << '\n';
}

}  // namespace heaptrail::analyzer::report
