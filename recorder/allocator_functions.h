#pragma once

#include <optional>
#include <string>
#include <vector>

#include "bpf/heaptrail_event.h"
#include "schema/trace.capnp.h"

namespace heaptrail::recorder {

// How a function passes what we record; the BPF entry program has one branch per
// shape (enum ht_call_shape, same values), chosen by the probe's cookie.
enum class CallShape {
  Size1 = HT_SHAPE_SIZE1,                  // size first, returns the pointer (malloc, new)
  Size2 = HT_SHAPE_SIZE2,                  // (alignment, size) (memalign, aligned_alloc)
  Calloc = HT_SHAPE_CALLOC,                // (nmemb, size)
  Realloc = HT_SHAPE_REALLOC,              // (ptr, size)
  ReallocArray = HT_SHAPE_REALLOCARRAY,    // (ptr, nmemb, size)
  PosixMemalign = HT_SHAPE_POSIX_MEMALIGN, // (memptr, alignment, size), pointer stored through memptr
  Mmap = HT_SHAPE_MMAP,
  Munmap = HT_SHAPE_MUNMAP,
  Free = HT_SHAPE_FREE,                    // (ptr): the end of a release chain (libc free)
  Release = HT_SHAPE_RELEASE,              // (ptr) that ends in free(): operator delete, custom frees
  // (ptr) released by an allocator library of its own (jemalloc, tcmalloc, mimalloc):
  // free and delete there end nowhere else and may call each other, so their returns
  // are probed too and a release they make inside one another is part of the outer one.
  AllocatorFree = HT_SHAPE_ALLOCATOR_FREE,
};

struct FunctionSpec {
  std::string symbol;
  schema::EventKind kind;
  CallShape shape;
  bool custom = false;
  std::string argument = {};  // --alloc-fn text it came from
};

// The standard allocator functions of C and C++ (glibc, musl, libstdc++, libc++, and
// allocators exporting the same names), then the families of the allocator libraries
// programs call directly (jemalloc's *allocx, tcmalloc's tc_*, mimalloc's mi_*). Where
// two names share an address the first one listed is the name kept.
const std::vector<FunctionSpec>& standardFunctions();

// Parses `--alloc-fn SYMBOL=KIND`, KIND one of malloc, calloc, realloc, free, memalign,
// aligned_alloc, posix_memalign, new, new[], delete, delete[]. nullopt if malformed.
std::optional<FunctionSpec> parseCustomFunction(const std::string& argument);
// The KIND names accepted by parseCustomFunction, for help and errors.
std::string customKindNames();

}  // namespace heaptrail::recorder
