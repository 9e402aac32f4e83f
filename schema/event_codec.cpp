#include "schema/event_codec.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include <kj/debug.h>

#include "schema/event_kinds.h"

namespace heaptrail::schema {
namespace {

constexpr uint64_t kAllocationPredicted = 1;
constexpr uint64_t kAllocationReused = 2;  // 2 + rank, rank < ReleaseHistory::kMaxRank
constexpr uint64_t kAllocationDelta = kAllocationReused + ReleaseHistory::kMaxRank;
constexpr unsigned kWays = 4;
constexpr uint32_t kMaxAllocationWindow = 1u << 24;

bool allocates(EventKind kind) {
  const EventKindInfo* info = eventKindInfo(kind);
  return info && (info->role == EventRole::Allocate || info->role == EventRole::Reallocate ||
                  info->role == EventRole::Map);
}

capnp::Data::Reader bytes(const std::vector<uint8_t>& v) { return {v.data(), v.size()}; }

// Releases are kept per (size class, thread state).
uint64_t classKey(uint64_t blockClass, const ThreadCoding& tc) {
  return blockClass * ThreadCoding::kThreadStates + tc.index;
}

void resetCoding(ThreadCoding (&coding)[ThreadCoding::kThreadStates], uint64_t firstAllocation) {
  for (unsigned i = 0; i < ThreadCoding::kThreadStates; ++i) {
    ThreadCoding& tc = coding[i];
    tc.previousAllocation = tc.previousSize = tc.previousLiteral = 0;
    tc.index = i;
    tc.previousRelease = tc.previousReleaseWithoutRanks = firstAllocation - 1;
    tc.recent.clear();
  }
}

}  // namespace

void ReleaseHistory::clear() {
  used_ = 0;
  if (++generation_ == 0) {
    table_.assign(table_.size(), Entry{});
    generation_ = 1;
  }
}

const ReleaseHistory::Class* ReleaseHistory::find(uint64_t blockClass) const {
  if (table_.empty()) return nullptr;
  for (size_t i = home(blockClass);; i = (i + 1) & (table_.size() - 1)) {
    const Entry& e = table_[i];
    if (e.generation != generation_) return nullptr;
    if (e.blockClass == blockClass) return &classes_[e.index];
  }
}

void ReleaseHistory::grow() {
  std::vector<Entry> old(std::max<size_t>(table_.size() * 2, 256));
  old.swap(table_);
  for (const Entry& e : old) {
    if (e.generation != generation_) continue;
    size_t i = home(e.blockClass);
    while (table_[i].generation == generation_) i = (i + 1) & (table_.size() - 1);
    table_[i] = e;
  }
}

void ReleaseHistory::add(uint64_t address, uint64_t blockClass) {
  if (blockClass == 0) return;  // unknown: never reused by rank
  if ((used_ + 1) * 2 > table_.size()) grow();
  size_t i = home(blockClass);
  while (table_[i].generation == generation_ && table_[i].blockClass != blockClass) i = (i + 1) & (table_.size() - 1);
  Entry& e = table_[i];
  if (e.generation != generation_) {
    e = {blockClass, static_cast<uint32_t>(used_), generation_};
    if (used_ == classes_.size()) classes_.emplace_back();
    classes_[used_].addresses.clear();
    ++used_;
  }
  classes_[e.index].addresses.add(address, kMaxRank);
}

int ReleaseHistory::rankOf(uint64_t address, uint64_t blockClass) const {
  const Class* c = find(blockClass);
  if (!c) return -1;
  const size_t n = c->addresses.size();
  for (size_t rank = 0; rank < n; ++rank)
    if (c->addresses.at(rank) == address) return static_cast<int>(rank);
  return -1;
}

uint64_t ReleaseHistory::at(unsigned rank, uint64_t blockClass) const {
  const Class* c = find(blockClass);
  if (!c || rank >= c->addresses.size()) return 0;
  return c->addresses.at(rank);
}

void ReleaseHistory::remove(unsigned rank, uint64_t blockClass) {
  Class* c = find(blockClass);
  if (c && rank < c->addresses.size()) c->addresses.remove(rank);
}

int rankOfSerial(const RecentList<RecentBlock>& blocks, uint64_t serial) {
  // Ranks count from the newest, whose number is the largest: binary search by rank.
  size_t low = 0, high = blocks.size();
  while (low < high) {
    const size_t mid = low + (high - low) / 2;
    const uint64_t s = blocks.at(mid).serial;
    if (s == serial) return static_cast<int>(mid);
    if (s > serial)
      low = mid + 1;
    else
      high = mid;
  }
  return -1;
}


void DecodedEvents::resize(size_t n) {
  kind.resize(n);
  timeNs.resize(n);
  pid.resize(n);
  tid.resize(n);
  address.resize(n);
  size.resize(n);
  stackId.resize(n);
  function.resize(n);
}

size_t EventEncoder::InfoHash::operator()(const InfoKey& k) const {
  uint64_t h = k.size * 0x9E3779B97F4A7C15ull;
  h ^= (static_cast<uint64_t>(k.stackId) << 24 | static_cast<uint64_t>(k.function) << 8 |
        static_cast<uint64_t>(k.kind)) * 0xC2B2AE3D27D4EB4Full;
  return static_cast<size_t>(h ^ (h >> 29));
}

EventEncoder::EventEncoder(EncodingOptions options) : options_(options) {
  options_.timeResolutionNs = std::max<uint64_t>(options_.timeResolutionNs, 1);
  options_.allocationWindow = std::clamp<uint32_t>(std::bit_ceil(options_.allocationWindow), kWays, kMaxAllocationWindow);
  options_.maxInfos = std::clamp<uint32_t>(options_.maxInfos, 1, kMaxInfoId);
  options_.coding = std::min(options_.coding, kCurrentCoding);
  options_.releaseRanks = options_.coding >= 1 ? std::min(options_.releaseRanks, kMaxReleaseRanks) : 0;
  live_.resize(options_.allocationWindow * 2);
  beginChunk();
}

size_t EventEncoder::memoryBytes() const {
  return live_.capacity() * sizeof(Live) + infoById_.capacity() * sizeof(InfoKey) +
         infoIds_.size() * (sizeof(InfoKey) + sizeof(uint32_t) + 2 * sizeof(void*)) +
         infoIds_.bucket_count() * sizeof(void*) + infoBytes_.capacity() + timeBytes_.capacity() +
         threadBytes_.capacity() + addressBytes_.capacity() + infoKinds_.capacity() + infoSizes_.capacity() +
         infoStacks_.capacity() + infoFunctions_.capacity() + addressBytesWithoutRanks_.capacity() +
         ThreadCoding::kThreadStates * options_.releaseRanks * sizeof(RecentBlock);
}

uint32_t EventEncoder::infoId(const InfoKey& key) {
  if (const auto it = infoIds_.find(key); it != infoIds_.end()) return it->second;
  // Ids are given in order, and reused oldest first once the table is full.
  const auto id = static_cast<uint32_t>(definitions_ % options_.maxInfos) + 1;
  ++definitions_;
  if (infoById_.size() < id) {
    infoById_.push_back(key);
  } else {
    infoIds_.erase(infoById_[id - 1]);
    infoById_[id - 1] = key;
  }
  infoIds_.emplace(key, id);
  if (options_.coding >= 1) {
    // Columns: each compresses well on its own (kinds and functions repeat, sizes do not).
    putVarint(infoKinds_, static_cast<uint64_t>(key.kind) * 2 + (allocates(key.kind) ? 1 : 0));
    putVarint(infoSizes_, key.size);
    putVarint(infoStacks_, key.stackId);
    putVarint(infoFunctions_, key.function);
  } else {
    putVarint(infoDefinitions_, static_cast<uint64_t>(key.kind));
    putVarint(infoDefinitions_, key.size);
    putVarint(infoDefinitions_, key.stackId);
    putVarint(infoDefinitions_, key.function);
    putVarint(infoDefinitions_, allocates(key.kind) ? 1 : 0);
  }
  return 0;  // "the next definition"
}

EventEncoder::Live* EventEncoder::findLive(uint64_t address) {
  const size_t sets = live_.size() / kWays;
  const size_t set = static_cast<size_t>(((address >> 4) * 0x9E3779B97F4A7C15ull) >> 40) & (sets - 1);
  for (unsigned w = 0; w < kWays; ++w) {
    Live& e = live_[set * kWays + w];
    if (e.address == address && nextSerial_ - e.serial <= options_.allocationWindow) return &e;
  }
  return nullptr;
}

void EventEncoder::addLive(uint64_t address, uint64_t serial, uint64_t size, unsigned state) {
  const size_t sets = live_.size() / kWays;
  const size_t set = static_cast<size_t>(((address >> 4) * 0x9E3779B97F4A7C15ull) >> 40) & (sets - 1);
  Live* victim = &live_[set * kWays];
  for (unsigned w = 0; w < kWays; ++w) {
    Live& e = live_[set * kWays + w];
    if (e.address == address || e.address == 0) {
      victim = &e;
      break;
    }
    if (e.serial < victim->serial) victim = &e;
  }
  *victim = Live{address, serial, state, size};
}

uint64_t EventEncoder::quantize(uint64_t t) const {
  // Rounded down to a tick counted from the origin (wrapping arithmetic: an event before
  // the origin, which should not happen, still lands on a tick boundary).
  const auto resolution = static_cast<int64_t>(options_.timeResolutionNs);
  const auto offset = static_cast<int64_t>(t - options_.timeOriginNs);
  int64_t ticks = offset / resolution;
  if (offset < 0 && ticks * resolution != offset) --ticks;
  return options_.timeOriginNs + static_cast<uint64_t>(ticks * resolution);
}

void EventEncoder::beginChunk() {
  // Infos belong to their chunk: a chunk reads without the ones before it.
  infoIds_.clear();
  infoById_.clear();
  definitions_ = 0;
  infoDefinitions_.clear();
  infoKinds_.clear();
  infoSizes_.clear();
  infoStacks_.clear();
  infoFunctions_.clear();
  addressBytesWithoutRanks_.clear();
  infoBytes_.clear();
  timeBytes_.clear();
  threadBytes_.clear();
  addressBytes_.clear();
  threads_.clear();
  threadIndex_.clear();
  releases_.clear();
  count_ = 0;
  base_ = previousTime_ = 0;
  firstAllocation_ = nextSerial_;
  resetCoding(coding_, firstAllocation_);
}

void EventEncoder::add(const EventRecord& e) {
  const uint64_t t = quantize(e.timeNs);
  if (count_++ == 0) base_ = previousTime_ = t;
  putVarint(infoBytes_, infoId({e.kind, e.function, e.stackId, e.size}));
  putVarint(timeBytes_, zigzag(static_cast<int64_t>(t - previousTime_) / static_cast<int64_t>(options_.timeResolutionNs)));
  previousTime_ = t;
  const uint64_t threadKey = static_cast<uint64_t>(e.pid) << 32 | e.tid;
  auto [it, isNew] = threadIndex_.try_emplace(threadKey, static_cast<uint32_t>(threads_.size()));
  if (isNew) threads_.emplace_back(e.pid, e.tid);
  putVarint(threadBytes_, it->second);
  ThreadCoding& tc = coding_[std::min<uint32_t>(it->second, ThreadCoding::kThreadStates - 1)];

  const uint64_t a = e.address;
  const bool ranks = options_.releaseRanks > 0;
  if (a == 0) {
    putVarint(addressBytes_, 0);
    if (ranks) putVarint(addressBytesWithoutRanks_, 0);
  } else if (allocates(e.kind)) {
    uint64_t code = 0;
    if (options_.allocationPrediction) {
      const uint64_t blockClass = classKey(predictedNextBlockOffset(e.size), tc);
      if (tc.previousAllocation != 0 && a == tc.previousAllocation + predictedNextBlockOffset(tc.previousSize)) {
        code = kAllocationPredicted;
      } else if (const int rank = releases_.rankOf(a, blockClass); rank >= 0) {
        code = kAllocationReused + static_cast<uint64_t>(rank);
        if (options_.coding >= 1) releases_.remove(static_cast<unsigned>(rank), blockClass);
      }
    }
    if (code == 0) code = kAllocationDelta + zigzag(static_cast<int64_t>(a - tc.previousAllocation));
    putVarint(addressBytes_, code);
    if (ranks) {
      putVarint(addressBytesWithoutRanks_, code);
      tc.recent.add({nextSerial_, a}, options_.releaseRanks);
    }
    tc.previousAllocation = a;
    tc.previousSize = e.size;
    addLive(a, nextSerial_++, e.size, tc.index);
  } else {
    addRelease(e, tc);
  }
}

void EventEncoder::addRelease(const EventRecord& e, ThreadCoding& tc) {
  const uint64_t a = e.address;
  const uint64_t shift = options_.releaseRanks;  // the codes below R are ranks
  Live* live = options_.releaseReferences ? findLive(a) : nullptr;
  uint64_t blockClass = 0;
  if (live) {
    const uint64_t serial = live->serial;
    int rank = -1;
    if (shift > 0) {
      if (serial >= firstAllocation_) {
        // Taken out of its thread state's recent blocks, whichever way it is named.
        ThreadCoding& owner = coding_[live->state];
        if (const int at = rankOfSerial(owner.recent, serial); at >= 0) {
          if (&owner == &tc) rank = at;
          owner.recent.remove(static_cast<size_t>(at));
        }
      }
      putVarint(addressBytesWithoutRanks_, 2 * zigzag(static_cast<int64_t>(serial - tc.previousReleaseWithoutRanks)) + 1);
      tc.previousReleaseWithoutRanks = serial;
    }
    if (rank >= 0) {
      putVarint(addressBytes_, 1 + static_cast<uint64_t>(rank));
    } else {
      putVarint(addressBytes_, shift + 2 * zigzag(static_cast<int64_t>(serial - tc.previousRelease)) + 1);
      tc.previousRelease = serial;
    }
    // Only a block of this chunk has a known class: the chunk must decode alone.
    if (serial >= firstAllocation_) blockClass = predictedNextBlockOffset(live->size);
    live->address = 0;
  } else {
    const uint64_t zz = zigzag(static_cast<int64_t>(a - tc.previousLiteral));
    putVarint(addressBytes_, shift + 2 + 2 * zz);
    if (shift > 0) putVarint(addressBytesWithoutRanks_, 2 + 2 * zz);
    tc.previousLiteral = a;
  }
  releases_.add(a, blockClass ? classKey(blockClass, tc) : 0);
}

uint64_t EventEncoder::finish(PackedEvents::Builder out) {
  out.setCount(static_cast<uint32_t>(count_));
  out.setFirstAllocation(firstAllocation_);
  out.setAllocationWindow(options_.allocationWindow);
  out.setInfoTableSize(options_.maxInfos);
  // Coding 1: the release ranks only where they shorten the stream (a chunk of releases
  // in random order, perl's at exit, names few recent blocks and its numbers get longer).
  const bool ranks = options_.releaseRanks > 0 && addressBytes_.size() <= addressBytesWithoutRanks_.size();
  if (options_.coding >= 1) {
    out.setCoding(options_.coding);
    out.setInfoKinds(bytes(infoKinds_));
    out.setInfoSizes(bytes(infoSizes_));
    out.setInfoStacks(bytes(infoStacks_));
    out.setInfoFunctions(bytes(infoFunctions_));
    out.setReleaseRanks(ranks ? options_.releaseRanks : 0);
  } else {
    out.setInfos(bytes(infoDefinitions_));
  }
  auto list = out.initThreads(static_cast<unsigned>(threads_.size()));
  for (unsigned i = 0; i < threads_.size(); ++i) {
    list[i].setPid(threads_[i].first);
    list[i].setTid(threads_[i].second);
  }
  out.setInfo(bytes(infoBytes_));
  out.setTime(bytes(timeBytes_));
  if (threads_.size() > 1) out.setThread(bytes(threadBytes_));
  out.setAddress(bytes(ranks || options_.releaseRanks == 0 ? addressBytes_ : addressBytesWithoutRanks_));
  const uint64_t base = base_;
  beginChunk();
  return base;
}

void EventDecoder::decodeV1(Events::Reader events, uint64_t baseTimeNs, DecodedEvents& out) {
  const auto kind = events.getKind();
  const auto delta = events.getTimeDeltaNs();
  const auto pid = events.getPid();
  const auto tid = events.getTid();
  const auto address = events.getAddress();
  const auto size = events.getSize();
  const auto stack = events.getStackId();
  const auto function = events.getFunction();
  const unsigned n = kind.size();
  KJ_REQUIRE(delta.size() == n && pid.size() == n && tid.size() == n && address.size() == n && size.size() == n &&
                 stack.size() == n,
             "event columns have different lengths");
  out.resize(n);
  uint64_t t = baseTimeNs;
  for (unsigned i = 0; i < n; ++i) {
    out.kind[i] = kind[i];
    t += static_cast<uint64_t>(delta[i]);
    out.timeNs[i] = t;
    out.pid[i] = pid[i];
    out.tid[i] = tid[i];
    out.address[i] = address[i];
    out.size[i] = size[i];
    out.stackId[i] = stack[i];
    out.function[i] = i < function.size() ? function[i] : uint16_t{0};
  }
}

uint64_t VarintReader::nextLong() {
  if (end_ - p_ >= 8) {
    // Up to 8 bytes without a branch per byte (addresses take 3-7): the first byte
    // without its continuation bit ends the varint; the 7-bit groups before it are
    // gathered by shifts.
    uint64_t w = 0;
    std::memcpy(&w, p_, sizeof w);
    if (const uint64_t stops = ~w & 0x8080808080808080ull; stops != 0) {
      const unsigned bits = static_cast<unsigned>(std::countr_zero(stops)) + 1;  // 8 x length
      if (bits < 64) w &= (uint64_t{1} << bits) - 1;
      p_ += bits / 8;
      return (w & 0x7full) | (w >> 1 & 0x7full << 7) | (w >> 2 & 0x7full << 14) | (w >> 3 & 0x7full << 21) |
             (w >> 4 & 0x7full << 28) | (w >> 5 & 0x7full << 35) | (w >> 6 & 0x7full << 42) |
             (w >> 7 & 0x7full << 49);
    }
  }
  if (end_ - p_ >= 10) {
    // Room for the longest varint: no bounds check per byte.
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 70; shift += 7) {
      const uint8_t b = *p_++;
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    KJ_FAIL_REQUIRE("malformed varint in a packed event stream");
  }
  uint64_t v = 0;
  for (unsigned shift = 0; shift < 64; shift += 7) {
    KJ_REQUIRE(p_ != end_, "packed event stream ends early");
    const uint8_t b = *p_++;
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
  KJ_FAIL_REQUIRE("malformed varint in a packed event stream");
}

void EventDecoder::decode(PackedEvents::Reader packed, uint64_t baseTimeNs, uint64_t timeResolutionNs,
                          DecodedEvents& out) {
  begin(packed, baseTimeNs, timeResolutionNs);
  out.resize(remaining_);
  next(out, 0, remaining_);
}

void EventDecoder::begin(PackedEvents::Reader packed, uint64_t baseTimeNs, uint64_t timeResolutionNs) {
  remaining_ = 0;
  resolution_ = std::max<uint64_t>(timeResolutionNs, 1);
  const uint32_t n = packed.getCount();
  chunkCoding_ = packed.getCoding();
  KJ_REQUIRE(chunkCoding_ <= kCurrentCoding, "events coded by a newer heaptrail (PackedEvents.coding)");
  ranks_ = chunkCoding_ >= 1 ? packed.getReleaseRanks() : 0;
  KJ_REQUIRE(ranks_ <= kMaxReleaseRanks, "implausible release ranks");
  definitions_ = VarintReader(packed.getInfos());
  kinds_ = VarintReader(packed.getInfoKinds());
  sizes_ = VarintReader(packed.getInfoSizes());
  stacks_ = VarintReader(packed.getInfoStacks());
  functions_ = VarintReader(packed.getInfoFunctions());
  tableSize_ = packed.getInfoTableSize();
  KJ_REQUIRE(tableSize_ >= 1 && tableSize_ <= kMaxInfoId, "implausible info table");
  // Infos belong to their chunk.
  infos_.assign(std::min<size_t>(tableSize_, n) + 1, Info{});
  const auto threads = packed.getThreads();
  window_ = packed.getAllocationWindow();
  KJ_REQUIRE(window_ >= 1 && window_ <= kMaxAllocationWindow && (window_ & (window_ - 1)) == 0,
             "implausible allocation window");
  KJ_REQUIRE(n == 0 || threads.size() > 0, "packed events without threads");
  KJ_REQUIRE(n <= kMaxChunkEvents, "more events in a chunk than a reader accepts");
  const auto infoData = packed.getInfo();
  // Every event takes at least one byte of each stream: a count larger than the streams
  // is damage, not a reason to allocate.
  KJ_REQUIRE(infoData.size() >= n && packed.getTime().size() >= n && packed.getAddress().size() >= n,
             "packed event streams shorter than their count");
  if (ring_.size() != window_) ring_.assign(window_, Slot{});
  info_ = VarintReader(infoData);
  time_ = VarintReader(packed.getTime());
  thread_ = VarintReader(packed.getThread());
  address_ = VarintReader(packed.getAddress());
  oneThread_ = packed.getThread().size() == 0;
  nextInfoId_ = 1;
  timeNs_ = baseTimeNs;
  releases_.clear();
  firstAllocation_ = packed.getFirstAllocation();
  nextSerial_ = firstAllocation_;
  resetCoding(coding_, firstAllocation_);
  const uint32_t threadCount = threads.size();
  threadTable_.resize(threadCount);
  for (uint32_t t = 0; t < threadCount; ++t) threadTable_[t] = {threads[t].getPid(), threads[t].getTid()};
  remaining_ = n;
}

void EventDecoder::define(Info& d) {
  uint64_t kind = 0, stack = 0, function = 0;
  if (chunkCoding_ >= 1) {
    kind = kinds_.next();
    d.allocates = kind & 1;
    kind >>= 1;
    d.size = sizes_.next();
    stack = stacks_.next();
    function = functions_.next();
  } else {
    kind = definitions_.next();
    d.size = definitions_.next();
    stack = definitions_.next();
    function = definitions_.next();
    d.allocates = definitions_.next() != 0;
  }
  KJ_REQUIRE(kind <= 0xffff, "implausible event kind");
  KJ_REQUIRE(stack <= UINT32_MAX && function <= UINT16_MAX, "implausible info");
  d.kind = static_cast<EventKind>(kind);
  d.stackId = static_cast<uint32_t>(stack);
  d.function = static_cast<uint16_t>(function);
  d.defined = true;
}

void EventDecoder::next(DecodedEvents& out, size_t at, uint32_t count) {
  KJ_REQUIRE(count <= remaining_);
  // A damaged stream ends the chunk: nothing more is decoded from it.
  const uint32_t left = remaining_ - count;
  remaining_ = 0;
  // The streams and counters in locals (registers) for the loop, stored back after it.
  VarintReader info = info_, timeStream = time_, thread = thread_, address = address_;
  const uint64_t resolution = resolution_;
  const uint32_t tableSize = tableSize_, window = window_;
  const bool oneThread = oneThread_;
  uint32_t nextInfoId = nextInfoId_;
  uint64_t time = timeNs_, nextSerial = nextSerial_;
  const uint64_t firstAllocation = firstAllocation_;
  const uint32_t chunkCoding = chunkCoding_;
  const uint64_t ranks = ranks_;
  ReleaseHistory& releases = releases_;
  const auto threadCount = static_cast<uint32_t>(threadTable_.size());
  const size_t end = at + count;
  for (size_t i = at; i < end; ++i) {
    uint64_t id = info.next();
    if (id == 0) {
      // Ids are given in order, 1 to tableSize and round again.
      id = nextInfoId;
      nextInfoId = nextInfoId == tableSize ? 1 : nextInfoId + 1;
      if (id >= infos_.size()) infos_.resize(id + 1);
      define(infos_[id]);
    }
    KJ_REQUIRE(id < infos_.size() && infos_[id].defined, "event refers to an undefined info (a damaged chunk before?)");
    const Info& in = infos_[id];
    out.kind[i] = in.kind;
    out.size[i] = in.size;
    out.stackId[i] = in.stackId;
    out.function[i] = in.function;
    time += static_cast<uint64_t>(unzigzag(timeStream.next())) * resolution;
    out.timeNs[i] = time;
    const uint64_t t = oneThread ? 0 : thread.next();
    KJ_REQUIRE(t < threadCount, "thread index out of range");
    out.pid[i] = threadTable_[t].first;
    out.tid[i] = threadTable_[t].second;
    ThreadCoding& tc = coding_[std::min<uint64_t>(t, ThreadCoding::kThreadStates - 1)];

    const uint64_t code = address.next();
    uint64_t a = 0;
    if (code == 0) {
      a = 0;
    } else if (in.allocates) {
      if (code == kAllocationPredicted) {
        a = tc.previousAllocation + predictedNextBlockOffset(tc.previousSize);
      } else if (code < kAllocationDelta) {
        const auto rank = static_cast<unsigned>(code - kAllocationReused);
        const uint64_t blockClass = classKey(predictedNextBlockOffset(in.size), tc);
        a = releases.at(rank, blockClass);
        KJ_REQUIRE(a != 0, "allocation refers to a release that is not there");
        if (chunkCoding >= 1) releases.remove(rank, blockClass);
      } else {
        a = tc.previousAllocation + static_cast<uint64_t>(unzigzag(code - kAllocationDelta));
      }
      tc.previousAllocation = a;
      tc.previousSize = in.size;
      if (a != 0) {
        ring_[nextSerial & (window - 1)] = Slot{nextSerial, tc.index, a, in.size};
        if (ranks) tc.recent.add({nextSerial, a}, ranks);
        ++nextSerial;
      }
    } else {
      uint64_t blockClass = 0;
      if (code - 1 < ranks) {
        // Coding 1: a recent block of this thread state, by rank.
        KJ_REQUIRE(code - 1 < tc.recent.size(), "release refers to a recent block that is not there");
        const RecentBlock b = tc.recent.at(code - 1);
        tc.recent.remove(code - 1);
        a = b.address;
        const Slot& s = ring_[b.serial & (window - 1)];
        blockClass = s.serial == b.serial ? predictedNextBlockOffset(s.size) : 0;
      } else if ((code - ranks) & 1) {
        const uint64_t serial = tc.previousRelease + static_cast<uint64_t>(unzigzag((code - ranks) >> 1));
        tc.previousRelease = serial;
        const Slot& s = ring_[serial & (window - 1)];
        if (serial < nextSerial && nextSerial - serial <= window && s.serial == serial) {
          a = s.address;
          if (serial >= firstAllocation) {
            blockClass = predictedNextBlockOffset(s.size);
            if (ranks) {
              // Taken out of its thread state's recent blocks.
              ThreadCoding& owner = coding_[s.state];
              if (const int at = rankOfSerial(owner.recent, serial); at >= 0) owner.recent.remove(static_cast<size_t>(at));
            }
          }
        } else {
          a = kUnresolvedAddress;
        }
      } else {
        a = tc.previousLiteral + static_cast<uint64_t>(unzigzag((code - ranks - 2) >> 1));
        tc.previousLiteral = a;
      }
      releases.add(a, blockClass ? classKey(blockClass, tc) : 0);
    }
    out.address[i] = a;
  }
  info_ = info;
  time_ = timeStream;
  thread_ = thread;
  address_ = address;
  nextInfoId_ = nextInfoId;
  timeNs_ = time;
  nextSerial_ = nextSerial;
  remaining_ = left;
}

}  // namespace heaptrail::schema
