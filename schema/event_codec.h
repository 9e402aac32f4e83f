// Schema version 2's event encoding (PackedEvents in trace.capnp): the writer's side keeps
// a bounded memory of recent allocations and of (kind, size, stack, function) infos, so
// that an event costs a few predictable bytes before compression; the reader's side
// mirrors it and gives back every event exactly (times rounded down to the resolution).
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "schema/records.h"
#include "schema/trace.capnp.h"

namespace heaptrail::schema {

// heaptrail-record's --time-resolution default. (TraceWriter's own default is 1 ns: exact.)
inline constexpr uint64_t kDefaultTimeResolutionNs = 1'000'000;
// Info ids a reader accepts (its table is indexed by id).
inline constexpr uint32_t kMaxInfoId = 1u << 18;
// Events a reader accepts in one chunk (16x what heaptrail-record writes): decoded events
// take ~45 bytes each, so a crafted chunk of one-byte varints cannot make the reader
// allocate more than ~45 MiB for them.
inline constexpr uint32_t kMaxChunkEvents = 1u << 20;

// PackedEvents.coding: 0 (schema version 2), 1 (version 3, what writers write).
inline constexpr uint32_t kCurrentCoding = 1;
// PackedEvents.releaseRanks a reader accepts (a release by rank moves up to this many
// recent blocks: a crafted chunk stays cheap to decode).
inline constexpr uint32_t kMaxReleaseRanks = 256;

struct EncodingOptions {
  uint64_t timeResolutionNs = 1;
  // PackedEvents.coding to write (0: version 2's, for measurements and tests).
  uint32_t coding = kCurrentCoding;
  // Coding 1: releases name one of the thread's this many newest blocks by rank (0: never).
  // Per chunk the encoder keeps the ranks only where they make the chunk's address
  // stream shorter.
  uint32_t releaseRanks = 127;
  // Times are rounded down to a multiple of the resolution counted from here (the
  // trace's start: no event is moved before it). TraceWriter::encoding() has it.
  uint64_t timeOriginNs = 0;
  // Releases can name an allocation at most this many allocations back (power of 2).
  uint32_t allocationWindow = 1u << 14;
  // Distinct infos per chunk (ids 1..maxInfos, reused oldest first when full).
  uint32_t maxInfos = 1u << 13;
  // For measurements of what each idea earns (tools/bench/recode): off = every address
  // coded as a delta from the previous one (still readable).
  bool releaseReferences = true;
  bool allocationPrediction = true;
};

// The events of one chunk, decoded: element i of every vector describes event i.
struct DecodedEvents {
  std::vector<EventKind> kind;
  std::vector<uint64_t> timeNs;
  std::vector<uint32_t> pid;
  std::vector<uint32_t> tid;
  std::vector<uint64_t> address;
  std::vector<uint64_t> size;
  std::vector<uint32_t> stackId;
  std::vector<uint16_t> function;
  size_t count() const { return kind.size(); }
  void resize(size_t n);
};

// An address a release referred to that is no longer known (its chunk was damaged):
// never a real block, so the replay counts a free of an unknown address.
inline constexpr uint64_t kUnresolvedAddress = ~uint64_t{0};

// The newest `capacity` of a sequence of values, oldest dropped first, where any value can
// also be taken out by its rank (0 = newest). The values lie in order in one buffer of
// twice the capacity, so that adding is amortized O(1) and taking out a rank is one
// memmove of the shorter side (the newer values down or the older ones up).
template <typename T>
class RecentList {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  size_t size() const { return end_ - begin_; }
  void clear() { begin_ = end_ = 0; }
  void add(const T& v, size_t capacity) {
    if (capacity == 0) return;
    if (size() >= capacity) begin_ += size() - capacity + 1;
    if (end_ == values_.size()) {
      if (begin_ > 0 && begin_ * 2 >= values_.size()) {
        // At least half the buffer is behind the values: slide them to its front. (Always
        // so once the buffer is 2 x capacity, since the values are at most capacity.)
        std::memmove(values_.data(), values_.data() + begin_, size() * sizeof(T));
        end_ -= begin_;
        begin_ = 0;
      } else {
        // Grown as needed, not at once: a list that holds a few values (most of a
        // chunk's size classes) stays small, and the recorder's memory with it.
        values_.resize(std::min(2 * capacity, std::max<size_t>(8, values_.size() * 2)));
      }
    }
    values_[end_++] = v;
  }
  const T& at(size_t rank) const { return values_[end_ - 1 - rank]; }
  // Values the buffer has room for (its memory).
  size_t room() const { return values_.size(); }
  void remove(size_t rank) {
    const size_t at = end_ - 1 - rank;
    if (rank <= at - begin_) {
      std::memmove(values_.data() + at, values_.data() + at + 1, rank * sizeof(T));
      --end_;
    } else {
      std::memmove(values_.data() + begin_ + 1, values_.data() + begin_, (at - begin_) * sizeof(T));
      ++begin_;
    }
  }

 private:
  std::vector<T> values_;
  size_t begin_ = 0, end_ = 0;  // the values, oldest first, are values_[begin_, end_)
};

// The releases of a chunk so far, by the size class of the block each released (when it
// is known): an allocator hands a block just given back to the next request of the same
// class (glibc's tcache and fastbins are LIFO per class). The last kMaxRank of each class
// are kept, the same way by the encoder and the decoder.
class ReleaseHistory {
 public:
  static constexpr unsigned kMaxRank = 64;
  void clear();
  void add(uint64_t address, uint64_t blockClass);
  // Rank of `address` among the latest releases of class `blockClass`, or -1.
  int rankOf(uint64_t address, uint64_t blockClass) const;
  // The address at `rank` among the latest releases of class `blockClass`, 0 if none.
  uint64_t at(unsigned rank, uint64_t blockClass) const;
  // Coding 1: the release at `rank` of class `blockClass` was handed out again.
  void remove(unsigned rank, uint64_t blockClass);

 private:
  struct Class {
    RecentList<uint64_t> addresses;  // up to kMaxRank, oldest dropped
  };
  // Open addressing from class to index into classes_; an entry of an earlier chunk's
  // generation is empty, so that clear() (once per chunk) touches nothing.
  struct Entry {
    uint64_t blockClass = 0;
    uint32_t index = 0;
    uint32_t generation = 0;
  };
  const Class* find(uint64_t blockClass) const;
  Class* find(uint64_t blockClass) { return const_cast<Class*>(std::as_const(*this).find(blockClass)); }
  size_t home(uint64_t blockClass) const {
    return static_cast<size_t>((blockClass * 0x9E3779B97F4A7C15ull) >> 32) & (table_.size() - 1);
  }
  void grow();
  std::vector<Entry> table_;
  // The chunk's classes are [0, used_); those after keep their buffers for later chunks.
  std::vector<Class> classes_;
  size_t used_ = 0;
  uint32_t generation_ = 1;
};

// Coding 1: a block numbered in this chunk that a thread state has not released yet.
struct RecentBlock {
  uint64_t serial = 0;
  uint64_t address = 0;
};
// Coding 1: the thread state's recent blocks, by rank, and where `serial` is among them
// (they are in the order of their numbers), or -1.
int rankOfSerial(const RecentList<RecentBlock>& blocks, uint64_t serial);

// What the address coding predicts from, per thread of a chunk (allocators keep per-thread
// caches and arenas): the first kThreadStates threads of a chunk have their own, the
// others share the last.
struct ThreadCoding {
  static constexpr unsigned kThreadStates = 64;
  uint64_t previousAllocation = 0, previousSize = 0, previousLiteral = 0, previousRelease = 0;
  unsigned index = 0;  // which state: releases of a class are kept per state too
  RecentList<RecentBlock> recent;  // coding 1
  // Coding 1's encoder: the previous release's number as coding 0 would have it (every
  // numbered release), for the address stream without ranks.
  uint64_t previousReleaseWithoutRanks = 0;
};

// Encodes events one at a time as they are added (a chunk holds its encoded streams, a
// few bytes per event, not the events), remembering across chunks only a bounded table
// of recent allocations.
class EventEncoder {
 public:
  explicit EventEncoder(EncodingOptions options = {});
  void add(const EventRecord& event);
  size_t count() const { return count_; }
  // Writes the chunk's packed events, starts the next chunk; returns Chunk.baseTimeNs.
  uint64_t finish(PackedEvents::Builder out);
  const EncodingOptions& options() const { return options_; }
  // Bytes of memory the encoder holds (bounded by the options and the chunk's events).
  size_t memoryBytes() const;

 private:
  struct InfoKey {
    EventKind kind;
    uint16_t function;
    uint32_t stackId;
    uint64_t size;
    bool operator==(const InfoKey&) const = default;
  };
  struct InfoHash {
    size_t operator()(const InfoKey& k) const;
  };
  struct Live {
    uint64_t address = 0;
    uint64_t serial : 56 = 0;
    uint64_t state : 8 = 0;  // the thread state that allocated it (coding 1's recent blocks)
    uint64_t size = 0;
  };
  uint32_t infoId(const InfoKey& key);
  Live* findLive(uint64_t address);
  void addLive(uint64_t address, uint64_t serial, uint64_t size, unsigned state);
  void addRelease(const EventRecord& event, ThreadCoding& tc);
  uint64_t quantize(uint64_t timeNs) const;
  void beginChunk();

  EncodingOptions options_;
  std::vector<Live> live_;  // 4-way sets of recent allocations (across chunks)
  uint64_t nextSerial_ = 0;
  // This chunk's state.
  std::unordered_map<InfoKey, uint32_t, InfoHash> infoIds_;
  std::vector<InfoKey> infoById_;  // index id - 1
  uint64_t definitions_ = 0;       // the next id is definitions_ % maxInfos + 1
  std::vector<uint8_t> infoDefinitions_, infoBytes_, timeBytes_, threadBytes_, addressBytes_;
  // Coding 1: the definitions' columns, and the address stream as it would be without
  // release ranks (finish() writes the shorter).
  std::vector<uint8_t> infoKinds_, infoSizes_, infoStacks_, infoFunctions_, addressBytesWithoutRanks_;
  std::vector<std::pair<uint32_t, uint32_t>> threads_;
  std::unordered_map<uint64_t, uint32_t> threadIndex_;
  ReleaseHistory releases_;
  ThreadCoding coding_[ThreadCoding::kThreadStates];
  size_t count_ = 0;
  uint64_t base_ = 0, previousTime_ = 0;
  uint64_t firstAllocation_ = 0;
};

// Reads varints from one stream; a stream that ends early is damage. One- and two-byte
// varints are read inline in the decoder's loop; longer ones, and a stream's last byte,
// take a call.
class VarintReader {
 public:
  VarintReader() = default;
  explicit VarintReader(capnp::Data::Reader data) : p_(data.begin()), end_(data.end()) {}
  [[gnu::always_inline]] uint64_t next() {
    if (end_ - p_ >= 2) [[likely]] {
      if (p_[0] < 0x80) return *p_++;
      if (p_[1] < 0x80) {
        const uint64_t v = (p_[0] & 0x7fu) | uint64_t{p_[1]} << 7;
        p_ += 2;
        return v;
      }
    }
    return nextLong();
  }

 private:
  [[gnu::noinline]] uint64_t nextLong();

  const uint8_t* p_ = nullptr;
  const uint8_t* end_ = nullptr;
};

class EventDecoder {
 public:
  // Decodes `packed` into `out` (replacing its content). Throws kj::Exception when the
  // streams are malformed.
  void decode(PackedEvents::Reader packed, uint64_t baseTimeNs, uint64_t timeResolutionNs, DecodedEvents& out);
  // The same in batches, so that a reader can use each batch while it is still in the
  // cache: begin() checks the chunk's tables, next() decodes the following `count` events
  // (at most remaining()) into out's elements [at, at + count). Each throws
  // kj::Exception on damage, after which remaining() is 0. A chunk's events must all be
  // decoded before the next chunk begins (later chunks refer to its allocations).
  void begin(PackedEvents::Reader packed, uint64_t baseTimeNs, uint64_t timeResolutionNs);
  void next(DecodedEvents& out, size_t at, uint32_t count);
  uint32_t remaining() const { return remaining_; }
  // Version 1's columns.
  static void decodeV1(Events::Reader events, uint64_t baseTimeNs, DecodedEvents& out);

 private:
  struct Info {
    EventKind kind = EventKind::MALLOC;
    uint16_t function = 0;
    uint32_t stackId = 0;
    uint64_t size = 0;
    bool allocates = false;
    bool defined = false;
  };
  struct Slot {
    uint64_t serial : 56 = (uint64_t{1} << 56) - 1;
    uint64_t state : 8 = 0;  // the thread state that allocated it
    uint64_t address = 0;
    uint64_t size = 0;
  };
  void define(Info& info);
  std::vector<Info> infos_;  // by id
  std::vector<Slot> ring_;   // recent allocations by serial
  ReleaseHistory releases_;
  ThreadCoding coding_[ThreadCoding::kThreadStates];
  std::vector<std::pair<uint32_t, uint32_t>> threadTable_;  // this chunk's (pid, tid)
  // Where decoding of the current chunk stands.
  VarintReader definitions_, info_, time_, thread_, address_;
  VarintReader kinds_, sizes_, stacks_, functions_;  // coding 1's definitions
  uint32_t chunkCoding_ = 0, ranks_ = 0;
  uint32_t remaining_ = 0, tableSize_ = 1, window_ = 1, nextInfoId_ = 1;
  bool oneThread_ = true;
  uint64_t resolution_ = 1, timeNs_ = 0, nextSerial_ = 0, firstAllocation_ = 0;
};

// Appends `v` as a LEB128 varint.
inline void putVarint(std::vector<uint8_t>& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<uint8_t>(v));
}
inline uint64_t zigzag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }
inline int64_t unzigzag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

// glibc's chunk for a request of `size` bytes: where the next block carved from the top
// of the same heap starts, relative to this one.
inline uint64_t predictedNextBlockOffset(uint64_t size) {
  const uint64_t chunk = (size + 8 + 15) & ~uint64_t{15};
  return chunk < 32 ? 32 : chunk;
}

}  // namespace heaptrail::schema
