// Open-addressing hash map keyed by (pid, 64-bit key), for the replay's hot path:
// one flat array, linear probing, backward-shift deletion (no tombstones), so inserts
// and erases never allocate except when the table grows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "analyzer/huge_page_allocator.h"

namespace heaptrail::analyzer {

// Key 0 is reserved for empty slots: callers never store key 0 (a null pointer is not
// an allocation, a tid is never 0).
template <typename Value>
class FlatMap {
 public:
  struct Slot {
    uint64_t key = 0;
    uint32_t pid = 0;
    Value value{};
  };

  FlatMap() { slots_.resize(kInitialCapacity); }

  size_t size() const { return size_; }

  // Brings the home slot of (pid, key) towards the cache: the replay calls it a few
  // events ahead, as the table of live blocks is much larger than the caches.
  void prefetch(uint32_t pid, uint64_t key) const {
    size_t i = home(pid, key);
    // GCC 12 silently drops this prefetch when it sees through the hash into the index
    // (the replay ran without it): the empty asm hides where the index comes from.
    asm volatile("" : "+r"(i));
    const char* s = reinterpret_cast<const char*>(&slots_[i]);
    __builtin_prefetch(s);
    __builtin_prefetch(s + 2 * sizeof(Slot) - 1);  // the rest of the slot and the next one
  }

  Value* find(uint32_t pid, uint64_t key) {
    for (size_t i = home(pid, key);; i = (i + 1) & mask()) {
      Slot& s = slots_[i];
      if (s.key == 0) return nullptr;
      if (s.key == key && s.pid == pid) return &s.value;
    }
  }

  // The value for (pid, key), default-constructed if new; `inserted` says which.
  Value& insert(uint32_t pid, uint64_t key, bool& inserted) {
    if ((size_ + 1) * 4 > slots_.size() * 3) grow();
    for (size_t i = home(pid, key);; i = (i + 1) & mask()) {
      Slot& s = slots_[i];
      if (s.key == 0) {
        s.key = key;
        s.pid = pid;
        s.value = Value{};
        ++size_;
        inserted = true;
        return s.value;
      }
      if (s.key == key && s.pid == pid) {
        inserted = false;
        return s.value;
      }
    }
  }

  // Removes (pid, key), moving its value to `out`; false if absent.
  bool erase(uint32_t pid, uint64_t key, Value& out) {
    size_t i = home(pid, key);
    for (;; i = (i + 1) & mask()) {
      const Slot& s = slots_[i];
      if (s.key == 0) return false;
      if (s.key == key && s.pid == pid) break;
    }
    out = slots_[i].value;
    eraseSlot(i);
    return true;
  }

  bool erase(uint32_t pid, uint64_t key) {
    Value ignored;
    return erase(pid, key, ignored);
  }

  template <typename F>
  void forEach(F&& f) const {
    for (const Slot& s : slots_)
      if (s.key != 0) f(s.pid, s.key, s.value);
  }

  // Removes every entry for which keep(pid, key, value) is false, in place.
  template <typename P>
  void retainIf(P&& keep) {
    // Start after an empty slot so that no probe run wraps around the starting point;
    // an erase shifts a later entry into the current slot, which is then checked again.
    size_t start = 0;
    while (slots_[start].key != 0) ++start;
    for (size_t visited = 0; visited < slots_.size();) {
      const size_t i = (start + 1 + visited) & mask();
      Slot& s = slots_[i];
      if (s.key == 0 || keep(s.pid, s.key, s.value))
        ++visited;
      else
        eraseSlot(i);
    }
  }

  void clear() {
    slots_.assign(kInitialCapacity, Slot{});
    size_ = 0;
  }

 private:
  static constexpr size_t kInitialCapacity = 1024;

  size_t mask() const { return slots_.size() - 1; }

  size_t home(uint32_t pid, uint64_t key) const {
    // Allocator addresses share low bits (alignment) and high bits: mix everything.
    uint64_t h = key ^ (static_cast<uint64_t>(pid) << 40);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return static_cast<size_t>(h) & mask();
  }

  void eraseSlot(size_t hole) {
    // Backward shift: move later entries of the probe run into the hole when their
    // home position allows it, so lookups never need tombstones.
    size_t i = hole;
    for (;;) {
      i = (i + 1) & mask();
      Slot& s = slots_[i];
      if (s.key == 0) break;
      const size_t h = home(s.pid, s.key);
      const bool movable = (hole <= i) ? (h <= hole || h > i) : (h <= hole && h > i);
      if (movable) {
        slots_[hole] = s;
        hole = i;
      }
    }
    slots_[hole] = Slot{};
    --size_;
  }

  void grow() {
    std::vector<Slot, HugePageAllocator<Slot>> old(slots_.size() * 2);
    old.swap(slots_);
    size_ = 0;
    for (const Slot& s : old) {
      if (s.key == 0) continue;
      bool inserted = false;
      insert(s.pid, s.key, inserted) = s.value;
    }
  }

  std::vector<Slot, HugePageAllocator<Slot>> slots_;
  size_t size_ = 0;
};

}  // namespace heaptrail::analyzer
