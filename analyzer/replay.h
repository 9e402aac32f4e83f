// Replays a trace's events in file order and keeps the state the leak report needs:
// live allocations (malloc family and anonymous mmap), stacks, mapping history,
// counters. Pure logic: the only I/O is through the TraceReader.
#pragma once

#include <array>
#include <cstring>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "analyzer/flat_map.h"
#include "analyzer/heap_history.h"
#include "analyzer/kernel_heap.h"
#include "analyzer/map_history.h"
#include "analyzer/recording_end.h"
#include "schema/event_kinds.h"
#include "schema/records.h"
#include "schema/trace_reader.h"

namespace heaptrail::analyzer {

using schema::Family;

struct ReplayOptions {
  // Stop at this time (ns after Header.startTimeNs): later events are ignored.
  std::optional<uint64_t> atNs;
  // Called after each chunk with the bytes of the file read, its size and the events applied.
  std::function<void(uint64_t bytesRead, uint64_t fileSize, uint64_t events)> progress{};
  // Traces of at least this many bytes are read and decoded on a second thread, ahead of
  // the replay (same results). Below, the thread's start-up and hand-overs cost more CPU
  // than they save (a few ms; recordings of ordinary runs are a few hundred KB).
  // 0: always; UINT64_MAX: never.
  uint64_t readAheadFromBytes = uint64_t{1} << 20;
};

// One outstanding allocation at the analysis point.
struct Outstanding {
  uint32_t pid = 0;
  uint64_t address = 0;
  uint64_t size = 0;
  uint64_t timeNs = 0;
  uint32_t stackId = 0;
  Family family = Family::Malloc;  // kernel families for kernel allocations
  schema::EventKind kind = schema::EventKind::MALLOC;  // set for kernel allocations only
};

struct DoubleFree {
  uint32_t pid = 0;
  uint64_t address = 0;
  uint64_t size = 0;          // of the original allocation
  uint32_t stackId = 0;       // stack of the original allocation
  uint64_t allocTimeNs = 0;
  uint64_t timeNs = 0;        // of the offending free
  uint32_t freeStackId = 0;   // stack of the offending free (0: not recorded)
};

// A block released by the wrong family (new[] released with delete, ...).
struct Mismatch {
  uint32_t pid = 0;
  uint64_t address = 0;
  uint64_t size = 0;
  Family allocFamily = Family::Malloc;
  Family releaseFamily = Family::Malloc;
  uint32_t allocStackId = 0;
  uint32_t releaseStackId = 0;  // 0: not recorded
  uint64_t timeNs = 0;          // of the release
};

using ProcessInfo = schema::ProcessRecord;

struct ReplayStats {
  uint64_t chunks = 0;
  uint64_t missingChunks = 0;      // gaps in Chunk.sequence
  uint64_t events = 0;             // events applied (up to the analysis point)
  uint64_t eventsAfterAt = 0;      // events read but later than --at
  uint64_t unknownKindEvents = 0;  // kinds newer than this analyzer: ignored
  std::array<uint64_t, schema::kEventKindCount> eventsByKind{};
  uint64_t allocations = 0;        // successful allocation calls, realloc and mmap included
  uint64_t frees = 0;              // free(non-null) and munmap calls
  uint64_t bytesAllocated = 0;
  uint64_t peakBytes = 0;          // outstanding bytes at their highest
  uint64_t peakTimeNs = 0;         // absolute trace time of that peak
  uint64_t unknownFrees = 0;       // free/realloc of an address not known to be live
  uint64_t doubleFrees = 0;
  uint64_t libcInternalFrees = 0;  // the C library's frees of blocks not live: its own, not reported
  uint64_t mismatches = 0;         // releases by the wrong family
  uint64_t failedReallocs = 0;
  uint64_t reusedLiveAddresses = 0;  // allocation returned a still-live address: a free was lost
  uint64_t timeWentBackwards = 0;  // events more than a second older than one before them
  uint64_t implausibleEvents = 0;  // allocations of impossible sizes, ignored
  uint64_t stacksDefined = 0;
  uint64_t stacksIncomplete = 0;  // defined stacks the recorder marked incomplete
  std::array<uint64_t, schema::kEventKindCount> lostByKind{};  // summed over the chunks read
  uint64_t lostUnknownKind = 0;
  uint64_t lastTimeNs = 0;         // latest time seen in the part replayed
};

class Replay {
 public:
  explicit Replay(ReplayOptions options = {});

  // Reads the header and chunks up to the analysis point.
  void run(schema::TraceReader& reader);

  // Called by run(); public so the state can be built without a file.
  void beginTrace(uint64_t startTimeNs);
  // Page events: page size and sizeof(struct page) of the recorded machine.
  void configureKernel(uint64_t pageSize, uint64_t pageStructBytes) { kernel_.configure(pageSize, pageStructBytes); }
  // Returns false once every later chunk can only hold events after --at.
  bool applyChunk(schema::Chunk::Reader chunk, schema::TraceReader& reader);
  void finish(schema::TraceReader& reader);

  template <typename F>
  void forEachOutstanding(F&& f) const;

  struct StackView {
    bool defined = false;
    bool incomplete = false;  // the recorder's walk stopped before the outermost frame
    std::span<const uint64_t> frames;
    uint32_t firstPid = 0;
    uint64_t firstUseNs = 0;
  };
  StackView stack(uint32_t id) const;

  const ReplayStats& stats() const { return stats_; }
  const MapHistory& maps() const { return maps_; }
  // Totals per stack and memory over time (for pprof, html and growth ranking).
  const HeapHistory& history() const { return history_; }
  const std::vector<DoubleFree>& doubleFrees() const { return doubleFreeList_; }
  const std::vector<Mismatch>& mismatches() const { return mismatchList_; }
  const std::vector<ProcessInfo>& processes() const { return processes_; }
  // The allocator functions the recorder hooked, by id (first definition of each id).
  const std::map<uint16_t, schema::FunctionRecord>& functions() const { return functions_; }
  // Names (comm) the threads of `pid` had (Chunk.threadNames), the main thread's first;
  // empty when the trace names none.
  const std::vector<std::string>& processNames(uint32_t pid) const;

  uint64_t startTimeNs() const { return startTimeNs_; }
  // Absolute time of the analysis point: start + --at, or the end of the recording.
  uint64_t analysisTimeNs() const { return analysisTimeNs_; }
  // How reading ended; Reading when --at stopped before the end of the file.
  schema::TraceEnd end() const { return end_; }
  const std::string& problem() const { return problem_; }
  // Damaged parts that were skipped (reading went on after each).
  // (the first descriptions; damageCount() counts them all).
  const std::vector<std::string>& damage() const { return damage_; }
  uint64_t damageCount() const { return damage_.size() + uncountedDamage_; }
  // What the footer says, when the trace has one.
  const std::optional<RecordingEnd>& recordingEnd() const { return recordingEnd_; }

 private:
  // 20 bytes aligned to 4, so that a slot of the block table (address, pid, block) is 32
  // bytes, two to a cache line. A plausible size (at most 2^56) leaves the top bits of
  // its word to the family and the live flag.
  class Block {
   public:
    Block() = default;
    Block(uint64_t size, uint64_t timeNs, uint32_t stackId, bool live, Family family)
        : stackId(stackId),
          sizeWord_(size | uint64_t{static_cast<uint8_t>(family)} << kFamilyShift | uint64_t{live} << kLiveShift),
          timeNs_(timeNs) {}
    uint64_t size() const { return sizeWord_.get() & ((uint64_t{1} << kFamilyShift) - 1); }
    uint64_t timeNs() const { return timeNs_.get(); }
    // false: freed and not reused since (kept to spot double frees)
    bool live() const { return sizeWord_.get() >> kLiveShift; }
    void setLive(bool live) {
      sizeWord_ = (sizeWord_.get() & ~(uint64_t{1} << kLiveShift)) | uint64_t{live} << kLiveShift;
    }
    Family family() const { return static_cast<Family>(sizeWord_.get() >> kFamilyShift & 0x3f); }

    uint32_t stackId = 0;

   private:
    static constexpr unsigned kFamilyShift = 57, kLiveShift = 63;
    // A 64-bit value stored 4-aligned.
    class Word {
     public:
      Word(uint64_t v = 0) { std::memcpy(half_, &v, sizeof v); }
      uint64_t get() const {
        uint64_t v;
        std::memcpy(&v, half_, sizeof v);
        return v;
      }

     private:
      uint32_t half_[2];
    };
    Word sizeWord_, timeNs_;
  };
  static_assert(sizeof(Block) == 20 && alignof(Block) == 4);
  struct ReallocStash {
    uint64_t address = 0;     // 0: the old pointer was null or unknown
    Block block;
  };
  struct MmapPiece {
    uint64_t end = 0;
    uint64_t recordId = 0;
  };
  struct MmapRecord {
    uint32_t pid = 0;
    uint64_t start = 0;
    uint64_t bytes = 0;       // still mapped
    uint64_t timeNs = 0;
    uint32_t stackId = 0;
    uint32_t pieces = 0;
  };
  struct StackInfo {
    uint64_t offset = 0;      // into frames_
    uint32_t count = 0;
    uint32_t firstPid = 0;
    uint64_t firstUseNs = 0;
    bool defined = false;
    bool used = false;
    bool incomplete = false;
  };

  // Applies events [0, n) of a decoded batch; true if any was before the analysis point.
  bool applyEvents(const schema::DecodedEvents& events, size_t n);
  void allocate(uint32_t pid, uint64_t address, uint64_t size, uint64_t t, uint32_t stackId,
                Family family = Family::Malloc);
  // Marks (pid, address) freed; the block is copied to `released` when it was live.
  bool release(uint32_t pid, uint64_t address, uint64_t t, Block* released, Family family = Family::Malloc,
               uint32_t stackId = 0);
  void reallocRelease(uint32_t pid, uint32_t tid, uint64_t address, uint64_t t);
  void reallocReturn(uint32_t pid, uint32_t tid, uint64_t address, uint64_t size, uint64_t t,
                     uint32_t stackId);
  void mapAnonymous(uint32_t pid, uint64_t address, uint64_t size, uint64_t t, uint32_t stackId);
  void unmap(uint32_t pid, uint64_t start, uint64_t end, uint64_t unmapTimeNs);
  void noteStackUse(uint32_t stackId, uint32_t pid, uint64_t t);
  StackInfo& stackInfo(uint32_t id);
  const StackInfo* findStack(uint32_t id) const;
  void added(uint64_t bytes, uint64_t t);
  void applyKernel(const schema::EventKindInfo& info, uint32_t pid, uint64_t address, uint64_t size, uint64_t t,
                   uint32_t stackId);
  void addThreadName(uint32_t pid, uint32_t tid, std::string name);
  void purgeFreedIfLarge();

  ReplayOptions options_;
  uint64_t startTimeNs_ = 0;
  uint64_t cutoffNs_ = UINT64_MAX;
  uint64_t analysisTimeNs_ = 0;
  uint64_t expectedSequence_ = 0;
  bool stoppedEarly_ = false;

  FlatMap<Block> blocks_;  // (pid, address): live and freed-not-reused blocks
  static_assert(sizeof(FlatMap<Block>::Slot) == 32);
  uint64_t liveCount_ = 0;
  uint64_t freedCount_ = 0;
  FlatMap<ReallocStash> stashes_;  // (pid, tid + 1): realloc calls in progress
  std::map<std::pair<uint32_t, uint64_t>, MmapPiece> mmapPieces_;  // (pid, start)
  std::unordered_map<uint64_t, MmapRecord> mmapRecords_;
  uint64_t nextMmapId_ = 1;
  uint64_t currentBytes_ = 0;
  KernelHeap kernel_;
  std::unordered_map<uint32_t, std::vector<std::string>> names_;

  std::vector<uint64_t> frames_;
  std::vector<StackInfo> denseStacks_;  // by id, for the ids a recorder hands out
  std::unordered_map<uint32_t, StackInfo> sparseStacks_;

  MapHistory maps_;
  HeapHistory history_;
  std::vector<ProcessInfo> processes_;
  std::map<uint16_t, schema::FunctionRecord> functions_;
  std::vector<DoubleFree> doubleFreeList_;
  std::vector<Mismatch> mismatchList_;
  std::vector<std::string> damage_;
  uint64_t uncountedDamage_ = 0;  // damaged records the reader counted but did not describe
  ReplayStats stats_;

  schema::TraceEnd end_ = schema::TraceEnd::Reading;
  std::string problem_;
  std::optional<RecordingEnd> recordingEnd_;
};

template <typename F>
void Replay::forEachOutstanding(F&& f) const {
  blocks_.forEach([&](uint32_t pid, uint64_t address, const Block& b) {
    if (b.live()) f(Outstanding{pid, address, b.size(), b.timeNs(), b.stackId, b.family()});
  });
  // A realloc still in progress at the analysis point has not released its block yet.
  stashes_.forEach([&](uint32_t pid, uint64_t, const ReallocStash& s) {
    if (s.address != 0) f(Outstanding{pid, s.address, s.block.size(), s.block.timeNs(), s.block.stackId, s.block.family()});
  });
  for (const auto& [id, r] : mmapRecords_) f(Outstanding{r.pid, r.start, r.bytes, r.timeNs, r.stackId});
  kernel_.forEachLive([&](uint32_t pid, uint64_t address, uint64_t bytes, uint64_t t, uint32_t stackId,
                          schema::EventKind kind) {
    f(Outstanding{pid, address, bytes, t, stackId, schema::eventKindInfo(kind)->family, kind});
  });
}

}  // namespace heaptrail::analyzer
