#include "analyzer/kernel_heap.h"

#include <algorithm>
#include <iterator>

namespace heaptrail::analyzer {

void KernelHeap::configure(uint64_t pageSize, uint64_t pageStructBytes) {
  if (pageSize > 0) pageSize_ = pageSize;
  // Without the size, 64 bytes: struct page on every 64-bit kernel without debug options.
  if (pageStructBytes > 0) pageStructBytes_ = pageStructBytes;
}

KernelHeap::Effect KernelHeap::apply(const schema::EventKindInfo& info, uint32_t pid, uint64_t address,
                                     uint64_t size, uint64_t timeNs, uint32_t stackId) {
  const schema::Family family = info.family;
  const schema::EventRole role = info.role;
  Effect e;
  if (address == 0) return e;
  if (family == schema::Family::Page) {
    if (role == schema::EventRole::Map) return allocatePages(pid, address, size, timeNs, stackId);
    e.release = true;
    const uint64_t first = pageIndex(address);
    const uint64_t pages = std::max<uint64_t>(1, pageCount(size));
    const uint64_t live = releasePages(first, first + pages);
    e.removed = live * pageSize_;
    e.unknownRelease = live == 0;
    return e;
  }
  const auto space = static_cast<uint32_t>(family);
  if (role == schema::EventRole::Allocate) {
    e.allocation = true;
    bool inserted = false;
    Object& o = objects_.insert(space, address, inserted);
    if (!inserted) {
      e.replacedLive = true;
      e.removed = o.size;
    }
    o = Object{size, timeNs, stackId, pid, info.kind};
    e.added = size;
    return e;
  }
  e.release = true;
  Object released;
  if (objects_.erase(space, address, released))
    e.removed = released.size;
  else
    e.unknownRelease = true;
  return e;
}

KernelHeap::Effect KernelHeap::allocatePages(uint32_t pid, uint64_t address, uint64_t size, uint64_t timeNs,
                                             uint32_t stackId) {
  Effect e;
  e.allocation = true;
  const uint64_t first = pageIndex(address);
  const uint64_t pages = std::max<uint64_t>(1, pageCount(size));
  // Pages still live here mean their release was not recorded.
  if (const uint64_t stale = releasePages(first, first + pages); stale > 0) {
    e.replacedLive = true;
    e.removed = stale * pageSize_;
  }
  const uint64_t id = nextRun_++;
  runs_.emplace(id, PageRun{pid, address, pages, timeNs, stackId, 1});
  pieces_.emplace(first, PagePiece{first + pages, id});
  e.added = pages * pageSize_;
  return e;
}

uint64_t KernelHeap::releasePages(uint64_t first, uint64_t end) {
  uint64_t released = 0;
  auto it = pieces_.lower_bound(first);
  if (it != pieces_.begin() && std::prev(it)->second.end > first) it = std::prev(it);
  while (it != pieces_.end() && it->first < end) {
    const uint64_t pieceStart = it->first;
    const PagePiece piece = it->second;
    PageRun& run = runs_.at(piece.run);
    const uint64_t removed = std::min(piece.end, end) - std::max(pieceStart, first);
    run.pages -= removed;
    released += removed;
    it = pieces_.erase(it);
    --run.pieces;
    if (pieceStart < first) {
      pieces_.emplace(pieceStart, PagePiece{first, piece.run});
      ++run.pieces;
    }
    if (end < piece.end) {
      pieces_.emplace(end, PagePiece{piece.end, piece.run});
      ++run.pieces;
    }
    if (run.pieces == 0) runs_.erase(piece.run);
    if (end < piece.end) break;
  }
  return released;
}

}  // namespace heaptrail::analyzer
