#pragma once

#include "schema/chunk_builder.h"
#include "schema/trace.capnp.h"

namespace heaptrail::schema {

// The event columns of a chunk, each list fetched once: Cap'n Proto counts every getter
// against the reader's traversal limit. Throws kj::Exception when the columns that must
// have one value per event differ in length. `function` may be shorter (0: unknown).
struct EventColumns {
  explicit EventColumns(schema::Chunk::Reader chunk);
  unsigned size() const { return kind.size(); }
  uint16_t functionAt(unsigned i) const { return i < function.size() ? function[i] : uint16_t{0}; }

  capnp::List<schema::EventKind>::Reader kind;
  capnp::List<int64_t>::Reader timeDeltaNs;
  capnp::List<uint32_t>::Reader pid;
  capnp::List<uint32_t>::Reader tid;
  capnp::List<uint64_t>::Reader address;
  capnp::List<uint64_t>::Reader sizeBytes;
  capnp::List<uint32_t>::Reader stackId;
  capnp::List<uint16_t>::Reader function;
};

// Longest text taken from a trace (a path, an argument, a symbol): far above PATH_MAX and
// any real command-line argument, small enough that a crafted trace cannot make the
// analyzer copy, escape and print hundreds of megabytes. Longer texts are cut there and
// marked "...[N bytes cut]".
inline constexpr size_t kMaxTextBytes = 64 * 1024;
std::string boundedText(capnp::Text::Reader text);

// The plain-struct form of records read from a trace (the inverse of ChunkBuilder).
MappingRecord readMapping(schema::Mapping::Reader mapping);
ProcessRecord readProcess(schema::ProcessEvent::Reader process);
FunctionRecord readFunction(schema::AllocatorFunction::Reader function);
ThreadNameRecord readThreadName(schema::ThreadName::Reader name);

}  // namespace heaptrail::schema
