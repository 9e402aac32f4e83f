// What each event kind means, defined once: the BPF programs (bpf/heaptrail_event.h),
// the schema (EventKind in trace.capnp) and every C++ user agree through this table.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "bpf/heaptrail_event.h"
#include "schema/trace.capnp.h"

namespace heaptrail::schema {

// What an event does to the set of live blocks.
enum class EventRole : uint8_t {
  Allocate,        // a new block at `address` (0: the call failed)
  Reallocate,      // realloc's return: a new block replacing the one released at its entry
  ReallocRelease,  // realloc's entry: the old block is released unless the call fails
  Release,         // the block at `address` is released
  ReleaseIfLive,   // the allocator's own library releases it: applied to a live block only
  Map,             // an anonymous mapping
  Unmap,           // (part of) a mapping is removed
};

// Which allocator family a block comes from and a release belongs to: memory must go
// back to the family it came from (malloc -> free, new -> delete, new[] -> delete[]).
// Kernel memory has three families, each its own address space: slab objects (kmalloc
// and kmem_cache, either released by kfree), pages (by `struct page`, released in parts
// of any order) and per-CPU areas.
enum class Family : uint8_t { Malloc, New, NewArray, Slab, Page, Percpu };

constexpr bool isKernelFamily(Family family) {
  return family == Family::Slab || family == Family::Page || family == Family::Percpu;
}

struct EventKindInfo {
  EventKind kind;
  std::string_view name;  // as users know the function
  EventRole role;
  Family family;          // Malloc for mappings
};

inline constexpr size_t kEventKindCount = HT_KIND_COUNT;

inline constexpr std::array<EventKindInfo, kEventKindCount> kEventKinds = {{
    {EventKind::MALLOC, "malloc", EventRole::Allocate, Family::Malloc},
    {EventKind::CALLOC, "calloc", EventRole::Allocate, Family::Malloc},
    {EventKind::REALLOC, "realloc", EventRole::Reallocate, Family::Malloc},
    {EventKind::REALLOCARRAY, "reallocarray", EventRole::Reallocate, Family::Malloc},
    {EventKind::POSIX_MEMALIGN, "posix_memalign", EventRole::Allocate, Family::Malloc},
    {EventKind::ALIGNED_ALLOC, "aligned_alloc", EventRole::Allocate, Family::Malloc},
    {EventKind::MEMALIGN, "memalign", EventRole::Allocate, Family::Malloc},
    {EventKind::VALLOC, "valloc", EventRole::Allocate, Family::Malloc},
    {EventKind::PVALLOC, "pvalloc", EventRole::Allocate, Family::Malloc},
    {EventKind::FREE, "free", EventRole::Release, Family::Malloc},
    {EventKind::REALLOC_RELEASE, "realloc (release)", EventRole::ReallocRelease, Family::Malloc},
    {EventKind::MMAP, "mmap", EventRole::Map, Family::Malloc},
    {EventKind::MUNMAP, "munmap", EventRole::Unmap, Family::Malloc},
    {EventKind::OPERATOR_NEW, "operator new", EventRole::Allocate, Family::New},
    {EventKind::OPERATOR_NEW_ARRAY, "operator new[]", EventRole::Allocate, Family::NewArray},
    {EventKind::OPERATOR_DELETE, "operator delete", EventRole::Release, Family::New},
    {EventKind::OPERATOR_DELETE_ARRAY, "operator delete[]", EventRole::Release, Family::NewArray},
    {EventKind::KMALLOC, "kmalloc", EventRole::Allocate, Family::Slab},
    {EventKind::KMEM_CACHE_ALLOC, "kmem_cache_alloc", EventRole::Allocate, Family::Slab},
    {EventKind::KFREE, "kfree", EventRole::Release, Family::Slab},
    {EventKind::KMEM_CACHE_FREE, "kmem_cache_free", EventRole::Release, Family::Slab},
    {EventKind::PAGE_ALLOC, "mm_page_alloc", EventRole::Map, Family::Page},
    {EventKind::PAGE_FREE, "mm_page_free", EventRole::Unmap, Family::Page},
    {EventKind::PERCPU_ALLOC, "percpu_alloc", EventRole::Allocate, Family::Percpu},
    {EventKind::PERCPU_FREE, "percpu_free", EventRole::Release, Family::Percpu},
    {EventKind::LIBC_FREE, "free (by libc)", EventRole::ReleaseIfLive, Family::Malloc},
}};

// The table is indexed by kind.
consteval bool tableIsIndexedByKind() {
  for (size_t i = 0; i < kEventKinds.size(); ++i)
    if (static_cast<size_t>(kEventKinds[i].kind) != i) return false;
  return true;
}
static_assert(tableIsIndexedByKind());

// The BPF programs' kinds are the schema's.
#define HEAPTRAIL_SAME_KIND(bpf, schemaKind) \
  static_assert(bpf == static_cast<int>(EventKind::schemaKind), #bpf " differs from EventKind::" #schemaKind)
HEAPTRAIL_SAME_KIND(HT_MALLOC, MALLOC);
HEAPTRAIL_SAME_KIND(HT_CALLOC, CALLOC);
HEAPTRAIL_SAME_KIND(HT_REALLOC, REALLOC);
HEAPTRAIL_SAME_KIND(HT_REALLOCARRAY, REALLOCARRAY);
HEAPTRAIL_SAME_KIND(HT_POSIX_MEMALIGN, POSIX_MEMALIGN);
HEAPTRAIL_SAME_KIND(HT_ALIGNED_ALLOC, ALIGNED_ALLOC);
HEAPTRAIL_SAME_KIND(HT_MEMALIGN, MEMALIGN);
HEAPTRAIL_SAME_KIND(HT_VALLOC, VALLOC);
HEAPTRAIL_SAME_KIND(HT_PVALLOC, PVALLOC);
HEAPTRAIL_SAME_KIND(HT_FREE, FREE);
HEAPTRAIL_SAME_KIND(HT_REALLOC_RELEASE, REALLOC_RELEASE);
HEAPTRAIL_SAME_KIND(HT_MMAP, MMAP);
HEAPTRAIL_SAME_KIND(HT_MUNMAP, MUNMAP);
HEAPTRAIL_SAME_KIND(HT_OPERATOR_NEW, OPERATOR_NEW);
HEAPTRAIL_SAME_KIND(HT_OPERATOR_NEW_ARRAY, OPERATOR_NEW_ARRAY);
HEAPTRAIL_SAME_KIND(HT_OPERATOR_DELETE, OPERATOR_DELETE);
HEAPTRAIL_SAME_KIND(HT_OPERATOR_DELETE_ARRAY, OPERATOR_DELETE_ARRAY);
HEAPTRAIL_SAME_KIND(HT_KMALLOC, KMALLOC);
HEAPTRAIL_SAME_KIND(HT_KMEM_CACHE_ALLOC, KMEM_CACHE_ALLOC);
HEAPTRAIL_SAME_KIND(HT_KFREE, KFREE);
HEAPTRAIL_SAME_KIND(HT_KMEM_CACHE_FREE, KMEM_CACHE_FREE);
HEAPTRAIL_SAME_KIND(HT_PAGE_ALLOC, PAGE_ALLOC);
HEAPTRAIL_SAME_KIND(HT_PAGE_FREE, PAGE_FREE);
HEAPTRAIL_SAME_KIND(HT_PERCPU_ALLOC, PERCPU_ALLOC);
HEAPTRAIL_SAME_KIND(HT_PERCPU_FREE, PERCPU_FREE);
HEAPTRAIL_SAME_KIND(HT_LIBC_FREE, LIBC_FREE);
#undef HEAPTRAIL_SAME_KIND

// nullptr for a kind newer than this build (a trace from a later recorder).
constexpr const EventKindInfo* eventKindInfo(EventKind kind) {
  const auto index = static_cast<size_t>(kind);
  return index < kEventKinds.size() ? &kEventKinds[index] : nullptr;
}

constexpr std::string_view eventKindName(EventKind kind) {
  const EventKindInfo* info = eventKindInfo(kind);
  return info ? info->name : std::string_view("unknown");
}

// Calls that hand out memory (allocations, reallocations, mappings), as opposed to
// releases; the recorder's summary counts these two.
constexpr bool isAllocation(EventKind kind) {
  const EventKindInfo* info = eventKindInfo(kind);
  return info && (info->role == EventRole::Allocate || info->role == EventRole::Reallocate ||
                  info->role == EventRole::Map);
}

constexpr std::string_view familyAllocName(Family family) {
  switch (family) {
    case Family::Malloc: return "malloc";
    case Family::New: return "new";
    case Family::NewArray: return "new[]";
    case Family::Slab: return "kmalloc";
    case Family::Page: return "alloc_pages";
    case Family::Percpu: return "alloc_percpu";
  }
  return "?";
}

constexpr std::string_view familyReleaseName(Family family) {
  switch (family) {
    case Family::Malloc: return "free";
    case Family::New: return "delete";
    case Family::NewArray: return "delete[]";
    case Family::Slab: return "kfree";
    case Family::Page: return "free_pages";
    case Family::Percpu: return "free_percpu";
  }
  return "?";
}

}  // namespace heaptrail::schema
