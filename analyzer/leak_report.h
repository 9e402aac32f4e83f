// The analysis result: outstanding allocations at the analysis point grouped by stack,
// double frees, a summary and warnings, with frames mapped to modules and symbolized.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "analyzer/replay.h"
#include "analyzer/symbols/symbolized_frame.h"
#include "analyzer/symbols/symbolizer.h"

namespace heaptrail::analyzer {

class Suppressions;

// What orders the groups (and what --top and --min-bytes select by).
enum class RankBy {
  Outstanding,  // bytes outstanding at the analysis point (default)
  Allocated,    // bytes allocated up to the analysis point (freed ones included)
  Growth,       // steadiness of growth over the recording (--growth)
};

struct ReportOptions {
  std::optional<uint64_t> atNs;  // only recorded in the summary; Replay applies it
  uint64_t sinceNs = 0;          // keep allocations at least this old at the analysis point
  size_t top = 10;               // groups shown; 0 = all
  uint64_t minBytes = 0;         // groups with fewer bytes are not shown
  std::optional<uint32_t> pid;   // only this process (--pid)
  std::optional<std::string> comm;  // only processes whose threads had this name (--comm)
  RankBy rankBy = RankBy::Outstanding;
  bool includeFreedStacks = false;   // also groups whose allocations were all freed (alloc_* metrics)
  bool timeline = false;             // fill LeakReport::timelines (memory over time)
  const Suppressions* suppressions = nullptr;  // groups whose stack matches are left out and counted
};

// How steadily a group's outstanding bytes grew (HeapHistory's windows up to the analysis
// point): the least-squares slope of outstanding bytes over time and the windows in which
// they grew. score = slope x grownWindows / windows ranks with --growth.
struct Growth {
  double bytesPerSecond = 0;
  uint32_t grownWindows = 0;
  uint32_t windows = 0;
  uint64_t windowNs = 0;
  double score = 0;
};

// One return address of a recorded stack, with the functions at it (inlined calls first).
struct Frame {
  uint64_t address = 0;          // return address as recorded
  bool mapped = false;           // a mapping was found for it
  std::string module;            // path of the mapped file
  std::string buildId;           // raw bytes, empty if unknown
  uint64_t offset = 0;           // file offset of `address` in `module`
  bool symbolized = false;       // symbolization was attempted
  symbols::SymbolizedFrame symbol;
};

// Symbolizes the instruction at `fileOffset` of `module` (symbols::Symbolizer::resolve; tests
// pass their own).
using FrameResolver = std::function<symbols::SymbolizedFrame(const symbols::ModuleRef& module, uint64_t fileOffset)>;

struct StackReport {
  uint32_t stackId = 0;          // 0: no stack captured
  bool known = false;            // the stack's frames are in the trace
  bool incomplete = false;       // the recorder's walk stopped before the outermost frame
  std::vector<Frame> frames;
};

struct LeakGroup {
  uint32_t pid = 0;
  uint64_t bytes = 0;
  uint64_t count = 0;
  uint64_t oldestAgeNs = 0;      // age at the analysis point of the oldest allocation
  uint64_t youngestAgeNs = 0;
  StackReport stack;
  std::string comm{};            // the process's name when the trace has it (kernel recordings)
  std::string family{};          // "malloc", "new", "new[]"; for kernel memory the allocating event:
                                 // "kmalloc", "kmem_cache_alloc", "mm_page_alloc", "percpu_alloc"
  bool kernel = false;           // kernel memory (--kernel)
  uint64_t allocatedBytes = 0;   // allocated from this stack up to the analysis point (freed or not)
  uint64_t allocations = 0;
  Growth growth{};
};

struct DoubleFreeGroup {
  uint64_t count = 0;
  uint64_t firstTimeNs = 0;      // of the first offending free, relative to the start
  uint64_t bytes = 0;            // size of the (first) block freed twice
  StackReport stack;             // where the block was allocated
  StackReport freeStack;         // where it was freed again (first occurrence)
};

struct MismatchGroup {
  uint64_t count = 0;
  uint64_t bytes = 0;            // of the first block
  uint32_t pid = 0;
  std::string allocFamily;       // "malloc", "new", "new[]"
  std::string releaseFamily;     // "free", "delete", "delete[]"
  StackReport allocStack;
  StackReport releaseStack;      // stackId 0 when the recorder took no release stacks
};

// Memory of one process over time, in equal windows from the start to the analysis point.
struct ProcessTimeline {
  uint32_t pid = 0;
  uint64_t windowNs = 0;
  std::vector<ProcessWindow> windows;
};

struct SuppressionUse {
  std::string pattern;           // as written, e.g. "leak:__nss_*"
  std::string origin;            // "default" or the file it came from
  uint64_t groups = 0;
  uint64_t bytes = 0;
};

struct ReportSummary {
  std::string trace;
  uint32_t targetPid = 0;
  std::vector<std::string> targetCommand;
  std::optional<uint64_t> atNs;
  uint64_t sinceNs = 0;
  uint64_t minBytes = 0;
  size_t top = 0;
  uint64_t analysisNs = 0;       // analysis point relative to the start
  uint64_t events = 0;
  uint64_t allocations = 0;
  uint64_t frees = 0;
  uint64_t bytesAllocated = 0;
  uint64_t peakBytes = 0;
  uint64_t peakNs = 0;           // relative to the start
  uint64_t outstandingBytes = 0;
  uint64_t outstandingAllocations = 0;
  uint64_t matchingBytes = 0;    // after --since
  uint64_t matchingAllocations = 0;
  uint64_t stackGroups = 0;      // groups after --since and --min-bytes (before --top)
  uint64_t unknownFrees = 0;
  uint64_t doubleFrees = 0;
  uint64_t mismatches = 0;
  uint64_t unknownStacks = 0;    // shown groups whose stack id is not defined in the trace
  uint64_t failedReallocs = 0;
  // Outstanding blocks an allocator library (jemalloc, tcmalloc...) allocated for itself:
  // frame #0 in it. Not listed as leaks (among the matching ones, not the stack groups).
  uint64_t allocatorInternalBytes = 0;
  uint64_t allocatorInternalAllocations = 0;
  std::optional<uint32_t> pid;   // --pid
  std::vector<uint32_t> processes;  // pids with outstanding allocations (before --pid)
  std::vector<std::pair<std::string, uint64_t>> lost;  // kind name, count (non-zero only)
  uint64_t lostTotal = 0;
  std::string status;            // "complete", "truncated", "corrupt", "partial" (--at stopped early)
  std::string problem;
  bool suppressing = false;      // suppressions were applied
  uint64_t suppressedGroups = 0;
  uint64_t suppressedBytes = 0;  // outstanding bytes of the suppressed groups
  uint64_t suppressedAllocations = 0;
  std::vector<SuppressionUse> suppressionsUsed;
  std::string rankedBy = "bytes";  // "bytes", "allocated", "growth"
};

struct LeakReport {
  ReportSummary summary;
  std::vector<LeakGroup> leaks;
  std::vector<DoubleFreeGroup> doubleFrees;
  std::vector<MismatchGroup> mismatches;
  std::vector<std::string> warnings;
  std::vector<ProcessTimeline> timelines;  // when ReportOptions::timeline
};

class KernelFrames;

// With an empty `resolver` frames are mapped to modules but not symbolized.
// `kernel`, for traces with kernel allocations, resolves kernel frames.
LeakReport buildReport(const Replay& replay, const ReportOptions& options, const FrameResolver& resolver,
                       const KernelFrames* kernel = nullptr);

}  // namespace heaptrail::analyzer
