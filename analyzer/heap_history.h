// What the replay saw over time, for reports that show more than the analysis point:
// per process the outstanding bytes and the allocation rate in time windows (memory over
// time), per (process, stack) what was allocated in total (pprof's alloc_*) and the net
// change of its outstanding bytes per window (growth ranking).
//
// Windows start at the trace's start and double in width whenever the recording outgrows
// the window count, so memory stays bounded however long the trace is.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <utility>
#include <vector>

namespace heaptrail::analyzer {

// Per-window sums whose window width doubles (adjacent windows merged) to stay within a
// fixed count. A series is compacted lazily to the width of its family (`widthNs`).
struct WindowedDeltas {
  static constexpr uint32_t kNoWindow = UINT32_MAX;
  uint64_t widthNs = 0;  // width the entries are in
  // The latest window's sum is kept inline: most events of a stack fall in it, and then
  // touch no memory beyond the stack's own state.
  int64_t lastDelta = 0;
  uint32_t lastWindow = kNoWindow;
  std::vector<std::pair<uint32_t, int64_t>> earlier;  // (window, net change) before lastWindow, ascending

  void add(uint32_t window, int64_t delta) {
    if (window == lastWindow)
      lastDelta += delta;
    else
      insert(window, delta);
  }
  void rescale(uint64_t toWidthNs);
  // Every window's (window, net change), window ascending.
  std::vector<std::pair<uint32_t, int64_t>> windows() const;

 private:
  void insert(uint32_t window, int64_t delta);
};

struct ProcessWindow {
  int64_t delta = 0;            // net change of outstanding bytes during the window
  uint64_t peakBytes = 0;       // highest outstanding bytes during the window
  uint64_t endBytes = 0;        // outstanding at the end of the window (filled by series())
  uint64_t allocatedBytes = 0;  // allocated during the window
  uint64_t allocations = 0;
};

struct StackTotals {
  uint64_t allocations = 0;     // allocations from this stack up to the analysis point
  uint64_t bytes = 0;
};

class HeapHistory {
 public:
  static constexpr uint32_t kProcessWindows = 512;
  static constexpr uint32_t kStackWindows = 32;
  // Releases whose allocating stack is not known (kernel pages freed in pieces): they
  // count for the process only.
  static constexpr uint32_t kUnknownStack = UINT32_MAX;

  HeapHistory() = default;
  // Moves keep the cached process pointer valid (map nodes move along); copies would not.
  HeapHistory(const HeapHistory&) = delete;
  HeapHistory& operator=(const HeapHistory&) = delete;
  HeapHistory(HeapHistory&&) = default;
  HeapHistory& operator=(HeapHistory&&) = default;

  void begin(uint64_t startTimeNs) { startNs_ = startTimeNs; }
  // `t` is absolute trace time; events before the start count in the first window.
  // newAllocation=false: a block coming back (a failed realloc keeps its old block).
  // Returns true when this is the first allocation of (pid, stackId) seen.
  bool allocated(uint32_t pid, uint32_t stackId, uint64_t bytes, uint64_t t, bool newAllocation = true);
  void released(uint32_t pid, uint32_t stackId, uint64_t bytes, uint64_t t);

  const StackTotals* totals(uint32_t pid, uint32_t stackId) const;
  template <typename F>
  void forEachStack(F&& f) const {
    for (std::size_t i = 0; i < stacks_.size(); ++i) f(stackKeys_[i].first, stackKeys_[i].second, stacks_[i].totals);
  }

  // Outstanding bytes of (pid, stack) at the end of each window up to `endNs` (absolute),
  // oldest first, and the window width. Empty when the stack allocated nothing.
  std::vector<int64_t> stackSeries(uint32_t pid, uint32_t stackId, uint64_t endNs, uint64_t& widthNs) const;
  // Windows of one process up to `endNs`, with endBytes filled.
  std::vector<ProcessWindow> processSeries(uint32_t pid, uint64_t endNs, uint64_t& widthNs) const;
  std::vector<uint32_t> processes() const;

 private:
  // Aligned so that what every event of the stack touches is in one cache line.
  // One cache line: all an event of the stack touches, the vector of earlier windows too.
  struct alignas(64) StackState {
    StackTotals totals;
    WindowedDeltas series;
  };
  static_assert(sizeof(StackState) == 64);
  struct ProcessState {
    uint64_t widthNs = 0;
    uint64_t current = 0;
    std::vector<ProcessWindow> windows;
    // Index + 1 into stacks_ by stack id, for the ids a recorder hands out (1, 2, 3...).
    std::vector<uint32_t> denseStacks;
  };
  // The window of one width that the last event fell in: events come in time order, so
  // most need no division.
  struct WindowCursor {
    uint64_t begin = 1, end = 0;  // relative times [begin, end) of `index`; empty at first
    uint64_t widthNs = 0;
    uint32_t index = 0;
  };

  uint64_t relative(uint64_t t) const { return t > startNs_ ? t - startNs_ : 0; }
  uint32_t stackWindow(uint64_t t);
  ProcessWindow& processWindow(ProcessState& p, uint64_t t);
  // The common cases inline (the last process, a stack id the recorder handed out, the
  // window of the event before), the others out of line.
  ProcessState& process(uint32_t pid) {
    if (lastProcess_ != nullptr && pid == lastPid_) [[likely]] return *lastProcess_;
    return processSlow(pid);
  }
  [[gnu::noinline]] ProcessState& processSlow(uint32_t pid);
  // The state of (pid, stackId); nullptr when absent and !create.
  StackState* stack(ProcessState& p, uint32_t pid, uint32_t stackId, bool create) {
    if (stackId < p.denseStacks.size() && p.denseStacks[stackId] != 0) [[likely]]
      return &stacks_[p.denseStacks[stackId] - 1];
    return stackSlow(p, pid, stackId, create);
  }
  [[gnu::noinline]] StackState* stackSlow(ProcessState& p, uint32_t pid, uint32_t stackId, bool create);
  bool created_ = false;  // set when stackSlow() made a new state
  const StackState* findStack(uint32_t pid, uint32_t stackId) const;
  static uint32_t windowOf(uint64_t rel, uint64_t& widthNs, uint32_t windows, WindowCursor& cursor) {
    if (rel >= cursor.begin && rel < cursor.end && cursor.widthNs == widthNs) [[likely]] return cursor.index;
    return windowOfSlow(rel, widthNs, windows, cursor);
  }
  [[gnu::noinline]] static uint32_t windowOfSlow(uint64_t rel, uint64_t& widthNs, uint32_t windows, WindowCursor& cursor);
  static uint64_t key(uint32_t pid, uint32_t stackId) { return uint64_t{pid} << 32 | stackId; }

  uint64_t startNs_ = 0;
  uint64_t stackWidthNs_ = 1'000'000;    // grows by doubling
  uint64_t processWidthNs_ = 1'000'000;
  WindowCursor stackCursor_, processCursor_;
  std::vector<StackState> stacks_;
  std::vector<std::pair<uint32_t, uint32_t>> stackKeys_;  // (pid, stack id) of stacks_[i]
  std::unordered_map<uint64_t, uint32_t> sparseStacks_;  // index into stacks_ for other ids
  std::unordered_map<uint32_t, ProcessState> processes_;
  uint32_t lastPid_ = 0;
  ProcessState* lastProcess_ = nullptr;  // of lastPid_ (elements of processes_ do not move)
};

}  // namespace heaptrail::analyzer
