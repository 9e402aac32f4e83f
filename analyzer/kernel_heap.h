// The kernel's live memory during a replay (kernel event kinds: slab objects, pages,
// per-CPU areas). Unlike a process heap, a kernel object is released by whichever task
// runs at the time (an RCU callback, a worker, another process), so blocks are keyed by
// address alone and remember the pid that allocated them. Pages are ranges: a block of
// 2^order pages may be released page by page (split_page) or in other orders.
#pragma once

#include <cstdint>
#include <map>
#include <unordered_map>

#include "analyzer/flat_map.h"
#include "schema/event_kinds.h"

namespace heaptrail::analyzer {

class KernelHeap {
 public:
  // `pageStructBytes`: sizeof(struct page) on the recorded machine (KernelInfo), 0 if unknown.
  void configure(uint64_t pageSize, uint64_t pageStructBytes);

  // What applying one event did, for the replay's counters.
  struct Effect {
    uint64_t added = 0;      // bytes that became live
    uint64_t removed = 0;    // bytes that stopped being live
    bool allocation = false;
    bool release = false;
    bool unknownRelease = false;  // nothing live at that address (allocated before the recording)
    bool replacedLive = false;    // an allocation at a still-live address: its release was lost
  };
  Effect apply(const schema::EventKindInfo& info, uint32_t pid, uint64_t address, uint64_t size,
               uint64_t timeNs, uint32_t stackId);

  // f(pid, address, bytes, timeNs, stackId, kind of the allocation) for every live block.
  template <typename F>
  void forEachLive(F&& f) const;

 private:
  struct Object {
    uint64_t size = 0;
    uint64_t timeNs = 0;
    uint32_t stackId = 0;
    uint32_t pid = 0;
    schema::EventKind kind = schema::EventKind::KMALLOC;
  };
  struct PageRun {  // a live allocation of pages, possibly in several pieces
    uint32_t pid = 0;
    uint64_t address = 0;  // struct page of its first page, as recorded
    uint64_t pages = 0;    // still live
    uint64_t timeNs = 0;
    uint32_t stackId = 0;
    uint32_t pieces = 0;
  };
  struct PagePiece {
    uint64_t end = 0;  // page index one past the piece
    uint64_t run = 0;
  };

  Effect allocatePages(uint32_t pid, uint64_t address, uint64_t size, uint64_t timeNs, uint32_t stackId);
  // Removes pages [first, end); returns how many were live.
  uint64_t releasePages(uint64_t first, uint64_t end);
  uint64_t pageIndex(uint64_t address) const { return address / pageStructBytes_; }
  uint64_t pageCount(uint64_t bytes) const { return bytes / pageSize_ + (bytes % pageSize_ != 0); }

  uint64_t pageSize_ = 4096;
  uint64_t pageStructBytes_ = 64;
  FlatMap<Object> objects_;  // keyed by (family, address): slab and per-CPU are separate spaces
  std::map<uint64_t, PagePiece> pieces_;  // by first page index
  std::unordered_map<uint64_t, PageRun> runs_;
  uint64_t nextRun_ = 1;
};

template <typename F>
void KernelHeap::forEachLive(F&& f) const {
  objects_.forEach([&](uint32_t, uint64_t address, const Object& o) {
    f(o.pid, address, o.size, o.timeNs, o.stackId, o.kind);
  });
  for (const auto& [id, r] : runs_)
    f(r.pid, r.address, r.pages * pageSize_, r.timeNs, r.stackId, schema::EventKind::PAGE_ALLOC);
}

}  // namespace heaptrail::analyzer
