#pragma once

#include <optional>
#include <string>
#include <vector>

#include "schema/trace.capnp.h"

namespace heaptrail::recorder {

// How a function passes what we record; each shape is one BPF program.
enum class CallShape {
  Size1,          // size in the first argument, returns the pointer (malloc, new)
  Size2,          // (alignment, size) (memalign, aligned_alloc)
  Calloc,         // (nmemb, size)
  Realloc,        // (ptr, size)
  ReallocArray,   // (ptr, nmemb, size)
  PosixMemalign,  // (memptr, alignment, size), pointer stored through memptr
  Mmap,
  Munmap,
  Free,           // (ptr): the end of a release chain (libc free)
  Release,        // (ptr) that ends in free(): operator delete, custom frees
};

struct FunctionSpec {
  std::string symbol;
  schema::EventKind kind;
  CallShape shape;
  bool custom = false;
  std::string argument = {};  // --alloc-fn text it came from
};

// The standard allocator functions of C and C++ (glibc, musl, libstdc++, libc++, and
// allocators exporting the same names). Where two names share an address the first
// one listed is the name kept.
const std::vector<FunctionSpec>& standardFunctions();

// Parses `--alloc-fn SYMBOL=KIND`, KIND one of malloc, calloc, realloc, free, memalign,
// aligned_alloc, posix_memalign, new, new[], delete, delete[]. nullopt if malformed.
std::optional<FunctionSpec> parseCustomFunction(const std::string& argument);
// The KIND names accepted by parseCustomFunction, for help and errors.
std::string customKindNames();

}  // namespace heaptrail::recorder
