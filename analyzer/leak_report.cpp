#include "analyzer/leak_report.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>
#include <unordered_map>

#include "analyzer/kernel_frames.h"
#include "analyzer/suppressions.h"
#include "common/saturating.h"
#include "common/units.h"

namespace heaptrail::analyzer {
namespace {

// Maps and symbolizes stacks, each distinct (mapping, address) once.
class StackResolver {
 public:
  StackResolver(const Replay& replay, const FrameResolver& resolver, const KernelFrames* kernel)
      : replay_(replay), resolver_(resolver), kernel_(kernel) {}

  StackReport resolve(uint32_t stackId) {
    StackReport out;
    out.stackId = stackId;
    const auto view = replay_.stack(stackId);
    out.known = view.defined;
    out.incomplete = view.incomplete;
    const size_t skip = kernel_ ? kernel_->machineryFrames(view.frames) : 0;
    for (const uint64_t address : view.frames.subspan(skip)) out.frames.push_back(frame(address, view.firstPid, view.firstUseNs));
    return out;
  }

 private:
  Frame frame(uint64_t address, uint32_t pid, uint64_t timeNs) {
    if (kernel_ && kernel_->isKernelAddress(address)) {
      auto it = kernelCache_.find(address);
      if (it == kernelCache_.end()) it = kernelCache_.emplace(address, kernel_->resolve(address, resolver_)).first;
      return it->second;
    }
    Frame f;
    f.address = address;
    // A return address points after the call: look up the call instruction itself.
    const uint64_t lookup = address == 0 ? 0 : address - 1;
    const MappingEntry* m = replay_.maps().find(pid, lookup, timeNs);
    if (!m) return f;
    f.mapped = true;
    f.module = m->path;
    f.buildId = m->buildId;
    const uint64_t lookupOffset = m->fileOffset + (lookup - m->start);
    f.offset = lookupOffset + (address - lookup);
    if (!resolver_) return f;
    f.symbolized = true;
    const auto key = std::make_pair(m, lookupOffset);
    auto it = cache_.find(key);
    if (it == cache_.end()) it = cache_.emplace(key, resolver_(symbols::ModuleRef{m->path, m->buildId}, lookupOffset)).first;
    f.symbol = it->second;
    return f;
  }

  const Replay& replay_;
  const FrameResolver& resolver_;
  const KernelFrames* kernel_;
  std::map<std::pair<const MappingEntry*, uint64_t>, symbols::SymbolizedFrame> cache_;
  std::map<uint64_t, Frame> kernelCache_;
};

// The allocator libraries of the trace (jemalloc, tcmalloc...: AllocatorFunction's
// allocatorLibrary), and whether a stack starts in one: what such a library allocates
// for itself (its arenas' mmaps, its own C++ objects) is not the program's leak.
class AllocatorLibraries {
 public:
  explicit AllocatorLibraries(const Replay& replay) : replay_(replay) {
    for (const auto& [id, f] : replay.functions())
      if (f.allocatorLibrary) paths_.insert(f.object);
  }
  bool allocatedBy(uint32_t pid, uint32_t stackId) const {
    if (paths_.empty() || stackId == 0) return false;
    const auto view = replay_.stack(stackId);
    if (view.frames.empty() || view.frames[0] == 0) return false;
    const MappingEntry* m = replay_.maps().find(pid, view.frames[0] - 1, view.firstUseNs);
    return m && paths_.count(m->path);
  }

 private:
  const Replay& replay_;
  std::set<std::string> paths_;
};

std::string statusName(schema::TraceEnd end) {
  switch (end) {
    case schema::TraceEnd::Complete: return "complete";
    case schema::TraceEnd::Truncated: return "truncated";
    case schema::TraceEnd::Corrupt: return "corrupt";
    case schema::TraceEnd::Reading: break;
  }
  return "partial";
}

std::vector<std::string> warningsFor(const Replay& replay, const ReportSummary& s) {
  std::vector<std::string> w;
  const auto& stats = replay.stats();
  if (s.lostTotal > 0) {
    std::string kinds;
    for (const auto& [name, count] : s.lost) kinds += (kinds.empty() ? "" : ", ") + name + ": " + std::to_string(count);
    w.push_back("the recorder lost " + std::to_string(s.lostTotal) + " events (" + kinds +
                "): a lost free makes its allocation look leaked, a lost allocation hides one");
  }
  if (replay.end() == schema::TraceEnd::Truncated)
    w.push_back("the trace is truncated (" + replay.problem() + "): analyzed up to its last complete chunk (" +
                std::to_string(stats.chunks) + " chunks, " + common::formatDuration(stats.lastTimeNs - replay.startTimeNs()) +
                " of recording)");
  if (replay.end() == schema::TraceEnd::Corrupt)
    w.push_back("the trace is corrupt (" + replay.problem() + "): analyzed up to its last intact chunk (" +
                std::to_string(stats.chunks) + " chunks, " + common::formatDuration(stats.lastTimeNs - replay.startTimeNs()) +
                " of recording)");
  if (replay.end() == schema::TraceEnd::Complete && !replay.problem().empty())
    w.push_back("the trace is complete, but " + replay.problem());
  if (!replay.damage().empty())
    w.push_back(std::to_string(replay.damageCount()) + " damaged part(s) of the trace were skipped (first: " +
                replay.damage().front() + "): their events are missing from the analysis");
  if (stats.timeWentBackwards > 0)
    w.push_back(std::to_string(stats.timeWentBackwards) +
                " events are more than a second older than events before them: the trace may be damaged");
  if (stats.implausibleEvents > 0)
    w.push_back(std::to_string(stats.implausibleEvents) + " allocations of impossible sizes were ignored: the trace may be damaged");
  if (s.unknownStacks > 0)
    w.push_back(std::to_string(s.unknownStacks) + " stacks referenced by events are not in the trace: shown without frames");
  if (stats.missingChunks > 0)
    w.push_back(std::to_string(stats.missingChunks) + " chunks are missing from the trace (sequence gaps): their events are not counted");
  if (stats.reusedLiveAddresses > 0)
    w.push_back(std::to_string(stats.reusedLiveAddresses) +
                " allocations returned an address that was still allocated: the frees in between were not recorded");
  if (stats.unknownKindEvents > 0)
    w.push_back(std::to_string(stats.unknownKindEvents) + " events of kinds this heaptrail does not know were ignored");
  if (replay.recordingEnd() && replay.recordingEnd()->reason == schema::EndReason::ERROR)
    w.push_back("the recording ended with an error: " + replay.recordingEnd()->error);
  if (s.atNs && replay.end() != schema::TraceEnd::Reading && replay.startTimeNs() + *s.atNs > stats.lastTimeNs)
    w.push_back("--at " + common::formatDuration(*s.atNs) + " is after the last event of the trace (" +
                common::formatDuration(stats.lastTimeNs - replay.startTimeNs()) + ")");
  return w;
}

// Least-squares slope of the outstanding bytes at the end of each window over time, and in
// how many windows they grew. A leak grows in most windows; a cache that fills once grows
// in the few windows of its warm-up and then stays flat.
Growth growthOf(const std::vector<int64_t>& series, uint64_t windowNs) {
  Growth g;
  g.windows = static_cast<uint32_t>(series.size());
  g.windowNs = windowNs;
  if (series.empty() || windowNs == 0) return g;
  int64_t previous = 0;
  for (const int64_t v : series) {
    g.grownWindows += v > previous;
    previous = v;
  }
  if (series.size() < 2) return g;
  const double n = static_cast<double>(series.size());
  const double seconds = static_cast<double>(windowNs) / 1e9;
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (size_t i = 0; i < series.size(); ++i) {
    const double x = static_cast<double>(i + 1) * seconds;
    const double y = static_cast<double>(series[i]);
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
  }
  const double denominator = n * sxx - sx * sx;
  if (denominator <= 0) return g;
  g.bytesPerSecond = (n * sxy - sx * sy) / denominator;
  g.score = g.bytesPerSecond * g.grownWindows / n;
  return g;
}

}  // namespace

LeakReport buildReport(const Replay& replay, const ReportOptions& options, const FrameResolver& resolver,
                       const KernelFrames* kernel) {
  LeakReport report;
  ReportSummary& s = report.summary;
  const auto& stats = replay.stats();
  const uint64_t now = replay.analysisTimeNs();
  const uint64_t start = replay.startTimeNs();

  s.atNs = options.atNs;
  s.sinceNs = options.sinceNs;
  s.minBytes = options.minBytes;
  s.top = options.top;
  s.analysisNs = now - std::min(now, start);
  s.events = stats.events;
  s.allocations = stats.allocations;
  s.frees = stats.frees;
  s.bytesAllocated = stats.bytesAllocated;
  s.peakBytes = stats.peakBytes;
  s.peakNs = stats.peakTimeNs - std::min(stats.peakTimeNs, start);
  s.unknownFrees = stats.unknownFrees;
  s.doubleFrees = stats.doubleFrees;
  s.mismatches = stats.mismatches;
  s.pid = options.pid;
  s.failedReallocs = stats.failedReallocs;
  // Footer totals cover the whole trace; chunk sums only what was read.
  const bool whole = replay.end() == schema::TraceEnd::Complete;
  for (const auto& kind : schema::kEventKinds) {
    const auto k = static_cast<size_t>(kind.kind);
    const uint64_t n =
        whole && replay.recordingEnd() ? std::max(stats.lostByKind[k], replay.recordingEnd()->lostByKind[k]) : stats.lostByKind[k];
    if (n == 0) continue;
    s.lost.emplace_back(std::string(kind.name), n);
    s.lostTotal = common::saturatingAdd(s.lostTotal, n);
  }
  if (stats.lostUnknownKind > 0) {
    s.lost.emplace_back("unknown", stats.lostUnknownKind);
    s.lostTotal = common::saturatingAdd(s.lostTotal, stats.lostUnknownKind);
  }
  s.status = statusName(replay.end());
  s.problem = replay.problem();

  struct Agg {
    uint64_t bytes = 0, count = 0, oldest = UINT64_MAX, youngest = 0;
    Family family = Family::Malloc;
    schema::EventKind kind = schema::EventKind::MALLOC;
  };
  const auto commMatches = [&](uint32_t pid) {
    const auto& names = replay.processNames(pid);
    return std::find(names.begin(), names.end(), *options.comm) != names.end();
  };
  // Grouped per process and stack: the same code in a forked child is its own group.
  std::map<std::pair<uint32_t, uint32_t>, Agg> groups;
  const AllocatorLibraries allocatorLibraries(replay);
  std::set<uint32_t> processes;
  replay.forEachOutstanding([&](const Outstanding& o) {
    processes.insert(o.pid);
    if (options.pid && o.pid != *options.pid) return;
    if (options.comm && !commMatches(o.pid)) return;
    ++s.outstandingAllocations;
    s.outstandingBytes += o.size;
    const uint64_t age = now > o.timeNs ? now - o.timeNs : 0;
    if (age < options.sinceNs) return;
    ++s.matchingAllocations;
    s.matchingBytes += o.size;
    Agg& g = groups[{o.pid, o.stackId}];
    g.family = o.family;
    g.kind = o.kind;
    g.bytes += o.size;
    ++g.count;
    g.oldest = std::min(g.oldest, o.timeNs);
    g.youngest = std::max(g.youngest, o.timeNs);
  });

  s.processes.assign(processes.begin(), processes.end());
  const HeapHistory& history = replay.history();
  if (options.includeFreedStacks) {
    history.forEachStack([&](uint32_t pid, uint32_t stackId, const StackTotals&) {
      if (stackId == HeapHistory::kUnknownStack) return;
      if (options.pid && pid != *options.pid) return;
      if (options.comm && !commMatches(pid)) return;
      if (groups.count({pid, stackId})) return;
      groups[{pid, stackId}].oldest = 0;  // nothing outstanding: no age
    });
  }
  struct Ranked {
    uint32_t pid;
    uint32_t stackId;
    Agg agg;
    StackTotals totals;
    Growth growth;
  };
  std::vector<Ranked> ranked;
  for (const auto& [key, g] : groups) {
    if (allocatorLibraries.allocatedBy(key.first, key.second)) {
      s.allocatorInternalBytes += g.bytes;
      s.allocatorInternalAllocations += g.count;
      continue;
    }
    Ranked r{key.first, key.second, g, {}, {}};
    if (const StackTotals* t = history.totals(key.first, key.second)) r.totals = *t;
    const uint64_t selected = options.rankBy == RankBy::Allocated ? r.totals.bytes : g.bytes;
    if (selected < options.minBytes) continue;
    uint64_t windowNs = 0;
    const auto series = history.stackSeries(key.first, key.second, now, windowNs);
    r.growth = growthOf(series, windowNs);
    ranked.push_back(r);
  }
  const auto key = [&](const Ranked& r) -> double {
    switch (options.rankBy) {
      case RankBy::Allocated: return static_cast<double>(r.totals.bytes);
      case RankBy::Growth: return r.growth.score;
      case RankBy::Outstanding: break;
    }
    return static_cast<double>(r.agg.bytes);
  };
  s.rankedBy = options.rankBy == RankBy::Allocated ? "allocated" : options.rankBy == RankBy::Growth ? "growth" : "bytes";
  std::sort(ranked.begin(), ranked.end(), [&](const Ranked& a, const Ranked& b) {
    const double ka = key(a), kb = key(b);
    if (ka != kb) return ka > kb;
    if (a.agg.bytes != b.agg.bytes) return a.agg.bytes > b.agg.bytes;
    if (a.agg.count != b.agg.count) return a.agg.count > b.agg.count;
    if (a.stackId != b.stackId) return a.stackId < b.stackId;
    return a.pid < b.pid;
  });

  StackResolver stacks(replay, resolver, kernel);
  // Suppressed groups are found before --top, so every stack is resolved: the report says
  // how much was suppressed, and --top counts what is shown.
  std::vector<StackReport> resolved;
  if (options.suppressions && !options.suppressions->empty()) {
    s.suppressing = true;
    std::vector<uint64_t> useGroups(options.suppressions->rules().size()), useBytes(useGroups.size());
    std::vector<Ranked> kept;
    SuppressionMatcher matcher(*options.suppressions);
    for (const auto& r : ranked) {
      StackReport stack = stacks.resolve(r.stackId);
      if (const auto rule = matcher.match(stack)) {
        ++s.suppressedGroups;
        s.suppressedBytes += r.agg.bytes;
        s.suppressedAllocations += r.agg.count;
        ++useGroups[*rule];
        useBytes[*rule] += r.agg.bytes;
        continue;
      }
      kept.push_back(r);
      resolved.push_back(std::move(stack));
    }
    ranked = std::move(kept);
    for (size_t i = 0; i < useGroups.size(); ++i) {
      if (useGroups[i] == 0) continue;
      const auto& rule = options.suppressions->rules()[i];
      s.suppressionsUsed.push_back({rule.text(), rule.origin, useGroups[i], useBytes[i]});
    }
  }
  // Stacks whose blocks were all freed (there for the alloc_* metrics) are not counted.
  s.stackGroups = std::count_if(ranked.begin(), ranked.end(), [](const Ranked& r) { return r.agg.count > 0; });
  if (options.top > 0 && ranked.size() > options.top) {
    ranked.resize(options.top);
    if (!resolved.empty()) resolved.resize(options.top);
  }

  const auto ageOf = [now](uint64_t t) { return now > t ? now - t : 0; };
  for (size_t i = 0; i < ranked.size(); ++i) {
    const Ranked& r = ranked[i];
    LeakGroup g;
    g.pid = r.pid;
    const auto& names = replay.processNames(r.pid);
    if (!names.empty()) g.comm = names.front();
    g.kernel = schema::isKernelFamily(r.agg.family);
    g.family = std::string(g.kernel ? schema::eventKindName(r.agg.kind) : schema::familyAllocName(r.agg.family));
    g.bytes = r.agg.bytes;
    g.count = r.agg.count;
    g.oldestAgeNs = r.agg.count == 0 ? 0 : ageOf(r.agg.oldest);
    g.youngestAgeNs = r.agg.count == 0 ? 0 : ageOf(r.agg.youngest);
    g.allocatedBytes = r.totals.bytes;
    g.allocations = r.totals.allocations;
    g.growth = r.growth;
    g.stack = i < resolved.size() ? std::move(resolved[i]) : stacks.resolve(r.stackId);
    report.leaks.push_back(std::move(g));
  }

  std::map<uint32_t, DoubleFreeGroup> doubles;
  std::map<uint32_t, uint32_t> firstFreeStack;
  for (const auto& d : replay.doubleFrees()) {
    if (options.pid && d.pid != *options.pid) continue;
    if (options.comm && !commMatches(d.pid)) continue;
    auto [it, inserted] = doubles.try_emplace(d.stackId);
    if (inserted) {
      it->second.firstTimeNs = d.timeNs - std::min(d.timeNs, start);
      it->second.bytes = d.size;
      firstFreeStack[d.stackId] = d.freeStackId;
    }
    ++it->second.count;
  }
  for (auto& [id, g] : doubles) {
    g.stack = stacks.resolve(id);
    g.freeStack = stacks.resolve(firstFreeStack[id]);
    report.doubleFrees.push_back(std::move(g));
  }

  // Mismatched releases, grouped by both stacks and the two families.
  std::map<std::tuple<uint32_t, uint32_t, uint32_t, Family, Family>, MismatchGroup> mismatches;
  for (const auto& m : replay.mismatches()) {
    if (options.pid && m.pid != *options.pid) continue;
    if (options.comm && !commMatches(m.pid)) continue;
    auto [it, inserted] =
        mismatches.try_emplace({m.pid, m.allocStackId, m.releaseStackId, m.allocFamily, m.releaseFamily});
    if (inserted) {
      it->second.pid = m.pid;
      it->second.bytes = m.size;
      it->second.allocFamily = schema::familyAllocName(m.allocFamily);
      it->second.releaseFamily = schema::familyReleaseName(m.releaseFamily);
      it->second.allocStack = stacks.resolve(m.allocStackId);
      it->second.releaseStack = stacks.resolve(m.releaseStackId);
    }
    ++it->second.count;
  }
  for (auto& [key, g] : mismatches) report.mismatches.push_back(std::move(g));
  std::stable_sort(report.mismatches.begin(), report.mismatches.end(),
                   [](const MismatchGroup& a, const MismatchGroup& b) { return a.count > b.count; });
  std::stable_sort(report.doubleFrees.begin(), report.doubleFrees.end(),
                   [](const DoubleFreeGroup& a, const DoubleFreeGroup& b) { return a.count > b.count; });

  for (const auto& leak : report.leaks) s.unknownStacks += leak.stack.stackId != 0 && !leak.stack.known;
  if (options.timeline) {
    for (const uint32_t pid : history.processes()) {
      if (options.pid && pid != *options.pid) continue;
      if (options.comm && !commMatches(pid)) continue;
      ProcessTimeline t;
      t.pid = pid;
      t.windows = history.processSeries(pid, now, t.windowNs);
      report.timelines.push_back(std::move(t));
    }
  }
  report.warnings = warningsFor(replay, s);
  return report;
}

}  // namespace heaptrail::analyzer
