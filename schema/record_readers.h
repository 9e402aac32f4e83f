#pragma once

#include "schema/chunk_builder.h"
#include "schema/trace.capnp.h"

namespace heaptrail::schema {

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
