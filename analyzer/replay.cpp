#include "analyzer/replay.h"

#include "common/saturating.h"
#include "schema/record_readers.h"

#include <algorithm>

#include <kj/exception.h>

namespace heaptrail::analyzer {
namespace {

constexpr uint32_t kDenseStackLimit = 1u << 24;
constexpr size_t kMaxDoubleFreeRecords = 100000;
// Threads' timestamps can be a little out of order; more than this is damage.
constexpr uint64_t kTimeSkewNs = 1'000'000'000;
// Larger than any address space: an allocation this size cannot have succeeded.
constexpr uint64_t kMaxPlausibleSize = 1ull << 56;

// Freed blocks are kept to recognise double frees; beyond this many (and twice
// the live ones) they are dropped so memory follows live allocations, not history.
constexpr uint64_t kMinFreedToPurge = 1u << 18;

}  // namespace

Replay::Replay(ReplayOptions options) : options_(options) {}

void Replay::beginTrace(uint64_t startTimeNs) {
  history_.begin(startTimeNs);
  startTimeNs_ = startTimeNs;
  if (options_.atNs) cutoffNs_ = startTimeNs + *options_.atNs;
  stats_.lastTimeNs = startTimeNs;
}

void Replay::run(schema::TraceReader& reader) {
  const auto header = reader.header();
  beginTrace(header.getStartTimeNs());
  reader.streamEvents(reader.fileSize() >= options_.readAheadFromBytes);
  if (header.hasKernel()) configureKernel(header.getPageSize(), header.getKernel().getPageStructBytes());
  while (auto chunk = reader.nextChunk()) {
    try {
      if (!applyChunk(*chunk, reader)) {
        stoppedEarly_ = true;
        break;
      }
    } catch (const kj::Exception& e) {
      // A record that decoded but does not hold together: skip the rest of it.
      damage_.push_back("chunk " + std::to_string(reader.chunksRead()) + ": " + e.getDescription().cStr());
    }
    if (options_.progress) options_.progress(reader.bytesRead(), reader.fileSize(), stats_.events);
  }
  reader.finishReading();
  damage_.insert(damage_.begin(), reader.damage().begin(), reader.damage().end());
  uncountedDamage_ = reader.damageCount() - reader.damage().size();
  finish(reader);
}

void Replay::finish(schema::TraceReader& reader) {
  if (!stoppedEarly_) {
    end_ = reader.end();
    if (problem_.empty()) problem_ = reader.problem();
  }
  recordingEnd_ = readRecordingEnd(reader);
  if (options_.atNs)
    analysisTimeNs_ = cutoffNs_;
  else if (recordingEnd_)
    analysisTimeNs_ = std::max(recordingEnd_->endTimeNs, stats_.lastTimeNs);
  else
    analysisTimeNs_ = stats_.lastTimeNs;
}

bool Replay::applyChunk(schema::Chunk::Reader chunk, schema::TraceReader& reader) {
  ++stats_.chunks;
  const uint64_t sequence = chunk.getSequence();
  if (sequence > expectedSequence_) stats_.missingChunks += sequence - expectedSequence_;
  expectedSequence_ = std::max(expectedSequence_, sequence + 1);

  for (auto s : chunk.getStacks()) {
    const uint32_t id = s.getId();
    if (id == 0) continue;
    StackInfo& info = stackInfo(id);
    if (info.defined) continue;
    const auto frames = s.getFrames();
    info.defined = true;
    info.offset = frames_.size();
    info.count = frames.size();
    info.incomplete = s.getIncomplete();
    for (uint64_t f : frames) frames_.push_back(f);
    ++stats_.stacksDefined;
    stats_.stacksIncomplete += info.incomplete;
  }
  for (auto m : chunk.getMappings()) maps_.add(m);
  for (auto f : chunk.getFunctions()) functions_.try_emplace(f.getId(), schema::readFunction(f));
  for (auto p : chunk.getProcesses()) {
    processes_.push_back(schema::readProcess(p));
    if (p.getKind() == schema::ProcessEventKind::FORK) maps_.addFork(p.getPid(), p.getParentPid());
  }
  for (auto n : chunk.getThreadNames()) addThreadName(n.getPid(), n.getTid(), schema::boundedText(n.getName()));
  for (auto lost : chunk.getLost()) {
    const auto kind = static_cast<size_t>(lost.getKind());
    if (kind < schema::kEventKindCount)
      stats_.lostByKind[kind] = common::saturatingAdd(stats_.lostByKind[kind], lost.getCount());
    else
      stats_.lostUnknownKind = common::saturatingAdd(stats_.lostUnknownKind, lost.getCount());
  }

  const uint64_t base = chunk.getBaseTimeNs();
  bool anyInTime = false;
  size_t n = 0;
  const schema::DecodedEvents* batch = nullptr;
  while (const size_t count = reader.nextEvents(batch)) {
    n += count;
    if (applyEvents(*batch, count)) anyInTime = true;
  }
  if (!anyInTime && base <= cutoffNs_ && base > stats_.lastTimeNs) stats_.lastTimeNs = base;
  if (!options_.atNs) return true;
  // Chunks are in time order up to small cross-thread skew: once a whole chunk lies
  // after the analysis point, nothing later can be before it.
  return n > 0 ? anyInTime : base <= cutoffNs_;
}

bool Replay::applyEvents(const schema::DecodedEvents& events, size_t n) {
  const auto* kinds = events.kind.data();
  const auto* times = events.timeNs.data();
  const auto* pids = events.pid.data();
  const auto* tids = events.tid.data();
  const auto* addresses = events.address.data();
  const auto* sizes = events.size.data();
  const auto* stackIds = events.stackId.data();

  bool anyInTime = false;
  constexpr size_t kPrefetchAhead = 16;
  for (size_t i = 0; i < std::min(n, kPrefetchAhead); ++i) blocks_.prefetch(pids[i], addresses[i]);
  for (size_t i = 0; i < n; ++i) {
    if (i + kPrefetchAhead < n) blocks_.prefetch(pids[i + kPrefetchAhead], addresses[i + kPrefetchAhead]);
    const uint64_t t = times[i];
    if (t > cutoffNs_) {
      ++stats_.eventsAfterAt;
      continue;
    }
    anyInTime = true;
    if (t + kTimeSkewNs < stats_.lastTimeNs) ++stats_.timeWentBackwards;
    if (t > stats_.lastTimeNs) stats_.lastTimeNs = t;
    ++stats_.events;
    const schema::EventKindInfo* info = schema::eventKindInfo(kinds[i]);
    if (!info) {
      ++stats_.unknownKindEvents;
      continue;
    }
    ++stats_.eventsByKind[static_cast<size_t>(info->kind)];
    const uint32_t pid = pids[i];
    const uint64_t address = addresses[i];
    if (schema::isKernelFamily(info->family)) {
      applyKernel(*info, pid, address, sizes[i], t, stackIds[i]);
      continue;
    }
    switch (info->role) {
      case schema::EventRole::Allocate:
        allocate(pid, address, sizes[i], t, stackIds[i], info->family);
        break;
      case schema::EventRole::Release:
        if (address != 0) {
          ++stats_.frees;
          release(pid, address, t, nullptr, info->family, stackIds[i]);
        }
        break;
      case schema::EventRole::ReleaseIfLive:
        // The C library's own free: a live block is the program's (fclose); anything
        // else is the allocator's bookkeeping (glibc's thread-exit cache flush).
        if (address == 0) break;
        if (Block* b = blocks_.find(pid, address); b && b->live()) {
          ++stats_.frees;
          release(pid, address, t, nullptr, info->family, stackIds[i]);
        } else {
          ++stats_.libcInternalFrees;
        }
        break;
      case schema::EventRole::ReallocRelease:
        reallocRelease(pid, tids[i], address, t);
        break;
      case schema::EventRole::Reallocate:
        reallocReturn(pid, tids[i], address, sizes[i], t, stackIds[i]);
        break;
      case schema::EventRole::Map:
        mapAnonymous(pid, address, sizes[i], t, stackIds[i]);
        break;
      case schema::EventRole::Unmap:
        ++stats_.frees;
        if (sizes[i] != 0) unmap(pid, address, address + std::min(sizes[i], UINT64_MAX - address), t);
        break;
    }
  }
  return anyInTime;
}

void Replay::added(uint64_t bytes, uint64_t t) {
  currentBytes_ += bytes;
  if (currentBytes_ > stats_.peakBytes) {
    stats_.peakBytes = currentBytes_;
    stats_.peakTimeNs = t;
  }
}

void Replay::applyKernel(const schema::EventKindInfo& info, uint32_t pid, uint64_t address, uint64_t size,
                         uint64_t t, uint32_t stackId) {
  if (size > kMaxPlausibleSize) {
    ++stats_.implausibleEvents;
    return;
  }
  const KernelHeap::Effect e = kernel_.apply(info, pid, address, size, t, stackId);
  currentBytes_ -= std::min(currentBytes_, e.removed);
  if (e.removed > 0) history_.released(pid, HeapHistory::kUnknownStack, e.removed, t);
  if (e.allocation) {
    ++stats_.allocations;
    stats_.bytesAllocated += e.added;
    history_.allocated(pid, stackId, e.added, t);
    added(e.added, t);
    noteStackUse(stackId, pid, t);
  }
  if (e.release) ++stats_.frees;
  if (e.unknownRelease) ++stats_.unknownFrees;
  if (e.replacedLive) ++stats_.reusedLiveAddresses;
}

void Replay::addThreadName(uint32_t pid, uint32_t tid, std::string name) {
  auto& names = names_[pid];
  if (std::find(names.begin(), names.end(), name) != names.end()) return;
  // The main thread's name first: it is the process's.
  if (tid == pid)
    names.insert(names.begin(), std::move(name));
  else
    names.push_back(std::move(name));
}

const std::vector<std::string>& Replay::processNames(uint32_t pid) const {
  static const std::vector<std::string> none;
  const auto it = names_.find(pid);
  return it == names_.end() ? none : it->second;
}

void Replay::allocate(uint32_t pid, uint64_t address, uint64_t size, uint64_t t, uint32_t stackId,
                      Family family) {
  if (address == 0) return;  // the call failed
  if (size > kMaxPlausibleSize) {
    ++stats_.implausibleEvents;  // no allocator succeeds at this size: damage
    return;
  }
  ++stats_.allocations;
  stats_.bytesAllocated += size;
  bool inserted = false;
  Block& b = blocks_.insert(pid, address, inserted);
  if (!inserted) {
    if (b.live()) {
      ++stats_.reusedLiveAddresses;
      history_.released(pid, b.stackId, b.size(), t);
      currentBytes_ -= b.size();
      --liveCount_;
    } else {
      --freedCount_;
    }
  }
  b = Block{size, t, stackId, true, family};
  ++liveCount_;
  // A stack that already has a state in the history was noted when that state was made.
  const bool firstInProcess = history_.allocated(pid, stackId, size, t);
  added(size, t);
  if (firstInProcess) noteStackUse(stackId, pid, t);
}

bool Replay::release(uint32_t pid, uint64_t address, uint64_t t, Block* released, Family family,
                     uint32_t stackId) {
  Block* b = blocks_.find(pid, address);
  if (!b) {
    ++stats_.unknownFrees;
    return false;
  }
  if (!b->live()) {
    ++stats_.doubleFrees;
    if (doubleFreeList_.size() < kMaxDoubleFreeRecords)
      doubleFreeList_.push_back({pid, address, b->size(), b->stackId, b->timeNs(), t, stackId});
    noteStackUse(stackId, pid, t);  // so that its frames resolve in this process's mappings
    return false;
  }
  if (b->family() != family) {
    ++stats_.mismatches;
    if (mismatchList_.size() < kMaxDoubleFreeRecords)
      mismatchList_.push_back({pid, address, b->size(), b->family(), family, b->stackId, stackId, t});
    noteStackUse(stackId, pid, t);
  }
  if (released) *released = *b;
  b->setLive(false);
  --liveCount_;
  ++freedCount_;
  history_.released(pid, b->stackId, b->size(), t);
  currentBytes_ -= b->size();
  purgeFreedIfLarge();
  return true;
}

void Replay::purgeFreedIfLarge() {
  if (freedCount_ < kMinFreedToPurge || freedCount_ < 2 * liveCount_) return;
  blocks_.retainIf([](uint32_t, uint64_t, const Block& b) { return b.live(); });
  freedCount_ = 0;
}

void Replay::reallocRelease(uint32_t pid, uint32_t tid, uint64_t address, uint64_t t) {
  bool inserted = false;
  // A stash left from before means that realloc's return was lost: drop it.
  ReallocStash& stash = stashes_.insert(pid, uint64_t{tid} + 1, inserted);
  stash = ReallocStash{};
  if (address == 0) return;
  Block block;
  if (release(pid, address, t, &block)) {
    stash.address = address;
    stash.block = block;
  }
}

void Replay::reallocReturn(uint32_t pid, uint32_t tid, uint64_t address, uint64_t size, uint64_t t,
                           uint32_t stackId) {
  ReallocStash stash;
  const bool hadStash = stashes_.erase(pid, uint64_t{tid} + 1, stash);
  if (address != 0) {
    allocate(pid, address, size, t, stackId);
    return;
  }
  if (size == 0) return;  // realloc(p, 0): freed, nothing new
  ++stats_.failedReallocs;
  if (!hadStash || stash.address == 0) return;
  // The old block was never released: bring it back as it was.
  bool inserted = false;
  Block& b = blocks_.insert(pid, stash.address, inserted);
  if (!inserted) {
    if (b.live()) {
      history_.released(pid, b.stackId, b.size(), t);
      currentBytes_ -= b.size();
      --liveCount_;
    } else {
      --freedCount_;
    }
  }
  b = stash.block;
  b.setLive(true);
  ++liveCount_;
  history_.allocated(pid, b.stackId, b.size(), t, /*newAllocation=*/false);
  added(b.size(), t);
}

void Replay::mapAnonymous(uint32_t pid, uint64_t address, uint64_t size, uint64_t t, uint32_t stackId) {
  if (address == 0 || size == 0 || address == UINT64_MAX) return;
  const uint64_t end = address + std::min(size, UINT64_MAX - address);
  unmap(pid, address, end, t);  // a new mapping replaces whatever was mapped there
  const uint64_t id = nextMmapId_++;
  mmapRecords_.emplace(id, MmapRecord{pid, address, end - address, t, stackId, 1});
  mmapPieces_.emplace(std::make_pair(pid, address), MmapPiece{end, id});
  ++stats_.allocations;
  stats_.bytesAllocated += end - address;
  history_.allocated(pid, stackId, end - address, t);
  added(end - address, t);
  noteStackUse(stackId, pid, t);
}

void Replay::unmap(uint32_t pid, uint64_t start, uint64_t end, uint64_t unmapTimeNs) {
  auto it = mmapPieces_.lower_bound({pid, start});
  if (it != mmapPieces_.begin()) {
    const auto prev = std::prev(it);
    if (prev->first.first == pid && prev->second.end > start) it = prev;
  }
  while (it != mmapPieces_.end() && it->first.first == pid && it->first.second < end) {
    const uint64_t pieceStart = it->first.second;
    const MmapPiece piece = it->second;
    MmapRecord& record = mmapRecords_.at(piece.recordId);
    const uint64_t removed = std::min(piece.end, end) - std::max(pieceStart, start);
    record.bytes -= removed;
    history_.released(pid, record.stackId, removed, unmapTimeNs);
    currentBytes_ -= removed;
    it = mmapPieces_.erase(it);
    --record.pieces;
    if (pieceStart < start) {
      mmapPieces_.emplace(std::make_pair(pid, pieceStart), MmapPiece{start, piece.recordId});
      ++record.pieces;
    }
    bool last = false;
    if (end < piece.end) {
      mmapPieces_.emplace(std::make_pair(pid, end), MmapPiece{piece.end, piece.recordId});
      ++record.pieces;
      last = true;  // nothing further can overlap
    }
    if (record.pieces == 0) mmapRecords_.erase(piece.recordId);
    if (last) break;
  }
}

Replay::StackInfo& Replay::stackInfo(uint32_t id) {
  // Recorders hand out ids 1, 2, 3, ...: those live in a vector. An id far beyond the
  // ones seen (a damaged or hostile file) goes to the map instead of growing the vector.
  if (id < kDenseStackLimit && id <= 2 * denseStacks_.size() + 4096) {
    if (id >= denseStacks_.size()) denseStacks_.resize(std::max<size_t>(id + 1, denseStacks_.size() * 2));
    return denseStacks_[id];
  }
  return sparseStacks_[id];
}

const Replay::StackInfo* Replay::findStack(uint32_t id) const {
  if (id < denseStacks_.size()) return &denseStacks_[id];
  const auto it = sparseStacks_.find(id);
  return it == sparseStacks_.end() ? nullptr : &it->second;
}

void Replay::noteStackUse(uint32_t stackId, uint32_t pid, uint64_t t) {
  if (stackId == 0) return;
  StackInfo& s = stackId < denseStacks_.size() ? denseStacks_[stackId] : stackInfo(stackId);
  if (!s.used) {
    s.used = true;
    s.firstPid = pid;
    s.firstUseNs = t;
  }
}

Replay::StackView Replay::stack(uint32_t id) const {
  const StackInfo* s = id == 0 ? nullptr : findStack(id);
  if (!s || !s->defined) return {};
  return {true, s->incomplete, std::span<const uint64_t>(frames_.data() + s->offset, s->count), s->firstPid, s->firstUseNs};
}

}  // namespace heaptrail::analyzer
