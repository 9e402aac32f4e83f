#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include <capnp/message.h>

#include "schema/records.h"
#include "schema/trace.capnp.h"

namespace heaptrail::schema {

// Accumulates one chunk's worth of events, new stacks, mappings, process events and
// lost counts, then turns them into a `Chunk` message.
class ChunkBuilder {
 public:
  void addEvent(const EventRecord& event);
  void addStack(uint32_t id, std::span<const uint64_t> frames);
  void addMapping(MappingRecord mapping);
  void addProcessEvent(ProcessRecord process);
  void addLost(EventKind kind, uint64_t count);
  void addFunction(FunctionRecord function);
  void addThreadName(ThreadNameRecord name);

  size_t eventCount() const { return kinds_.size(); }
  size_t stackCount() const { return stackIds_.size(); }
  bool empty() const;

  // Fills `chunk` with everything added since the last clear().
  void build(schema::Chunk::Builder chunk, uint64_t sequence) const;
  void clear();

 private:
  std::vector<EventKind> kinds_;
  std::vector<uint64_t> times_;
  std::vector<uint32_t> pids_;
  std::vector<uint32_t> tids_;
  std::vector<uint64_t> addresses_;
  std::vector<uint64_t> sizes_;
  std::vector<uint32_t> stackRefs_;
  std::vector<uint16_t> functionRefs_;

  std::vector<uint32_t> stackIds_;
  std::vector<uint64_t> stackFrames_;      // all frames of all new stacks, concatenated
  std::vector<uint32_t> stackFrameStart_;  // index into stackFrames_ per stack, plus end

  std::vector<MappingRecord> mappings_;
  std::vector<ProcessRecord> processes_;
  std::vector<std::pair<EventKind, uint64_t>> lost_;
  std::vector<FunctionRecord> functions_;
  std::vector<ThreadNameRecord> threadNames_;
};

}  // namespace heaptrail::schema
