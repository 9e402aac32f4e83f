#pragma once

#include "schema/chunk_builder.h"
#include "schema/trace.capnp.h"

namespace heaptrail::trace {

// The plain-struct form of records read from a trace (the inverse of ChunkBuilder).
MappingRecord readMapping(schema::Mapping::Reader mapping);
ProcessRecord readProcess(schema::ProcessEvent::Reader process);
FunctionRecord readFunction(schema::AllocatorFunction::Reader function);

}  // namespace heaptrail::trace
