#include "analyzer/heap_history.h"

#include <algorithm>

namespace heaptrail::analyzer {
namespace {

uint32_t doublings(uint64_t from, uint64_t to) {
  uint32_t n = 0;
  while (from < to) {
    from *= 2;
    ++n;
  }
  return n;
}

// Window index `index` once windows are 2^shift times wider. A hostile trace's times can
// make the width grow by more doublings than the index has bits: every window is then 0.
uint64_t widened(uint64_t index, uint32_t shift) { return shift >= 64 ? 0 : index >> shift; }

void rescaleWindows(std::vector<ProcessWindow>& windows, uint64_t& widthNs, uint64_t toWidthNs) {
  const uint32_t shift = doublings(widthNs, toWidthNs);
  if (shift == 0) return;
  std::vector<ProcessWindow> merged;
  for (size_t i = 0; i < windows.size(); ++i) {
    const size_t target = widened(i, shift);
    if (target >= merged.size()) merged.resize(target + 1);
    ProcessWindow& m = merged[target];
    m.delta += windows[i].delta;
    m.peakBytes = std::max(m.peakBytes, windows[i].peakBytes);
    m.allocatedBytes += windows[i].allocatedBytes;
    m.allocations += windows[i].allocations;
  }
  windows = std::move(merged);
  widthNs = toWidthNs;
}

}  // namespace

void WindowedDeltas::insert(uint32_t window, int64_t delta) {
  if (lastWindow == kNoWindow || window > lastWindow) {
    if (lastWindow != kNoWindow) earlier.emplace_back(lastWindow, lastDelta);
    lastWindow = window;
    lastDelta = delta;
    return;
  }
  // An earlier window (cross-thread skew): into its place among the others.
  auto it = earlier.end();
  while (it != earlier.begin() && std::prev(it)->first > window) --it;
  if (it != earlier.begin() && std::prev(it)->first == window)
    std::prev(it)->second += delta;
  else
    earlier.insert(it, {window, delta});
}

std::vector<std::pair<uint32_t, int64_t>> WindowedDeltas::windows() const {
  std::vector<std::pair<uint32_t, int64_t>> all = earlier;
  if (lastWindow != kNoWindow) all.emplace_back(lastWindow, lastDelta);
  return all;
}

void WindowedDeltas::rescale(uint64_t toWidthNs) {
  const uint32_t shift = doublings(widthNs, toWidthNs);
  widthNs = toWidthNs;
  if (shift == 0 || lastWindow == kNoWindow) return;
  std::vector<std::pair<uint32_t, int64_t>> merged;
  for (const auto& [w, d] : windows()) {
    const auto target = static_cast<uint32_t>(widened(w, shift));
    if (!merged.empty() && merged.back().first == target)
      merged.back().second += d;
    else
      merged.emplace_back(target, d);
  }
  lastWindow = merged.back().first;
  lastDelta = merged.back().second;
  merged.pop_back();
  earlier = std::move(merged);
}

uint32_t HeapHistory::windowOfSlow(uint64_t rel, uint64_t& widthNs, uint32_t windows, WindowCursor& cursor) {
  while (rel / widthNs >= windows) widthNs *= 2;
  cursor.widthNs = widthNs;
  cursor.index = static_cast<uint32_t>(rel / widthNs);
  cursor.begin = uint64_t{cursor.index} * widthNs;
  cursor.end = cursor.begin + widthNs;
  return cursor.index;
}

uint32_t HeapHistory::stackWindow(uint64_t t) {
  return windowOf(relative(t), stackWidthNs_, kStackWindows, stackCursor_);
}

ProcessWindow& HeapHistory::processWindow(ProcessState& p, uint64_t t) {
  const size_t index = windowOf(relative(t), processWidthNs_, kProcessWindows, processCursor_);
  if (p.widthNs != processWidthNs_) {
    if (p.widthNs == 0) p.widthNs = processWidthNs_;
    rescaleWindows(p.windows, p.widthNs, processWidthNs_);
  }
  if (index >= p.windows.size()) p.windows.resize(index + 1);
  return p.windows[index];
}

HeapHistory::ProcessState& HeapHistory::processSlow(uint32_t pid) {
  lastProcess_ = &processes_[pid];
  lastPid_ = pid;
  return *lastProcess_;
}

HeapHistory::StackState* HeapHistory::stackSlow(ProcessState& p, uint32_t pid, uint32_t stackId, bool create) {
  if (!sparseStacks_.empty())
    if (const auto it = sparseStacks_.find(key(pid, stackId)); it != sparseStacks_.end()) return &stacks_[it->second];
  if (!create) return nullptr;
  const auto index = static_cast<uint32_t>(stacks_.size());
  stacks_.push_back(StackState{});
  stackKeys_.emplace_back(pid, stackId);
  created_ = true;
  // Recorders hand out ids 1, 2, 3...: those are found by index. An id far beyond the ones
  // seen (a damaged or hostile file) goes to the map instead of growing the vector.
  constexpr uint32_t kDenseStackLimit = 1u << 24;
  if (stackId < kDenseStackLimit && stackId <= 2 * p.denseStacks.size() + 4096) {
    if (stackId >= p.denseStacks.size()) p.denseStacks.resize(std::max<size_t>(stackId + 1, p.denseStacks.size() * 2));
    p.denseStacks[stackId] = index + 1;
  } else {
    sparseStacks_.emplace(key(pid, stackId), index);
  }
  return &stacks_.back();
}

const HeapHistory::StackState* HeapHistory::findStack(uint32_t pid, uint32_t stackId) const {
  const auto p = processes_.find(pid);
  if (p != processes_.end() && stackId < p->second.denseStacks.size() && p->second.denseStacks[stackId] != 0)
    return &stacks_[p->second.denseStacks[stackId] - 1];
  const auto it = sparseStacks_.find(key(pid, stackId));
  return it == sparseStacks_.end() ? nullptr : &stacks_[it->second];
}

bool HeapHistory::allocated(uint32_t pid, uint32_t stackId, uint64_t bytes, uint64_t t, bool newAllocation) {
  ProcessState& p = process(pid);
  created_ = false;
  StackState& s = *stack(p, pid, stackId, true);
  const bool created = created_;
  if (newAllocation) {
    ++s.totals.allocations;
    s.totals.bytes += bytes;
  }
  const uint32_t w = stackWindow(t);
  if (s.series.widthNs != stackWidthNs_) {
    if (s.series.widthNs == 0) s.series.widthNs = stackWidthNs_;
    s.series.rescale(stackWidthNs_);
  }
  s.series.add(w, static_cast<int64_t>(bytes));

  ProcessWindow& pw = processWindow(p, t);
  p.current += bytes;
  pw.delta += static_cast<int64_t>(bytes);
  if (newAllocation) {
    pw.allocatedBytes += bytes;
    ++pw.allocations;
  }
  pw.peakBytes = std::max(pw.peakBytes, p.current);
  return created;
}

void HeapHistory::released(uint32_t pid, uint32_t stackId, uint64_t bytes, uint64_t t) {
  ProcessState& p = process(pid);
  if (StackState* s = stack(p, pid, stackId, false)) {
    const uint32_t w = stackWindow(t);
    if (s->series.widthNs != stackWidthNs_) s->series.rescale(stackWidthNs_);
    s->series.add(w, -static_cast<int64_t>(bytes));
  }
  ProcessWindow& pw = processWindow(p, t);
  const uint64_t removed = std::min(bytes, p.current);
  p.current -= removed;
  pw.delta -= static_cast<int64_t>(removed);
  pw.peakBytes = std::max(pw.peakBytes, p.current);
}

const StackTotals* HeapHistory::totals(uint32_t pid, uint32_t stackId) const {
  const StackState* s = findStack(pid, stackId);
  return s == nullptr ? nullptr : &s->totals;
}

std::vector<int64_t> HeapHistory::stackSeries(uint32_t pid, uint32_t stackId, uint64_t endNs, uint64_t& widthNs) const {
  widthNs = stackWidthNs_;
  const StackState* s = findStack(pid, stackId);
  if (s == nullptr) return {};
  WindowedDeltas series = s->series;
  series.rescale(stackWidthNs_);
  const size_t count = std::max<uint64_t>(1, (relative(endNs) + stackWidthNs_ - 1) / stackWidthNs_);
  const auto deltas = series.windows();
  std::vector<int64_t> out(std::max<size_t>(count, deltas.empty() ? 0 : deltas.back().first + 1), 0);
  for (const auto& [w, d] : deltas) out[w] += d;
  int64_t running = 0;
  for (auto& v : out) v = running += v;
  return out;
}

std::vector<ProcessWindow> HeapHistory::processSeries(uint32_t pid, uint64_t endNs, uint64_t& widthNs) const {
  widthNs = processWidthNs_;
  const auto it = processes_.find(pid);
  if (it == processes_.end()) return {};
  std::vector<ProcessWindow> windows = it->second.windows;
  uint64_t width = it->second.widthNs;
  rescaleWindows(windows, width, processWidthNs_);
  const size_t count = std::max<uint64_t>(1, (relative(endNs) + processWidthNs_ - 1) / processWidthNs_);
  if (windows.size() < count) windows.resize(count);
  int64_t running = 0;
  for (auto& w : windows) {
    // A window starts with what the one before ended with.
    w.peakBytes = std::max(w.peakBytes, static_cast<uint64_t>(std::max<int64_t>(0, running)));
    running += w.delta;
    w.endBytes = static_cast<uint64_t>(std::max<int64_t>(0, running));
    w.peakBytes = std::max(w.peakBytes, w.endBytes);
  }
  return windows;
}

std::vector<uint32_t> HeapHistory::processes() const {
  std::vector<uint32_t> out;
  for (const auto& [pid, p] : processes_) out.push_back(pid);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace heaptrail::analyzer
