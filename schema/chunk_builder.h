#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include <capnp/message.h>

#include "schema/event_codec.h"
#include "schema/records.h"
#include "schema/trace.capnp.h"

namespace heaptrail::schema {

// Accumulates one chunk's worth of events, new stacks, mappings, process events and
// lost counts, then turns them into a `Chunk` message.
class ChunkBuilder {
 public:
  void addEvent(const EventRecord& event);
  void addStack(uint32_t id, std::span<const uint64_t> frames, bool incomplete = false);
  void addMapping(MappingRecord mapping);
  void addProcessEvent(ProcessRecord process);
  void addLost(EventKind kind, uint64_t count);
  void addFunction(FunctionRecord function);
  void addThreadName(ThreadNameRecord name);

  size_t eventCount() const { return encoder_.count(); }
  size_t stackCount() const { return stackIds_.size(); }
  bool empty() const;

  // How events are encoded: TraceWriter::encoding() of the trace, set after its header
  // and before the first event (the default: exact times). Events are encoded as they
  // are added, so a chunk holds a few bytes per event; the encoder remembers what later
  // chunks refer to, so one builder serves one trace.
  void setEncoding(const EncodingOptions& options) { encoder_ = EventEncoder(options); }
  const EncodingOptions& encoding() const { return encoder_.options(); }

  // Fills `chunk` with everything added since the last clear(), and clears the events.
  void build(schema::Chunk::Builder chunk, uint64_t sequence);
  void clear();

 private:
  EventEncoder encoder_;

  std::vector<uint32_t> stackIds_;
  std::vector<bool> stackIncomplete_;
  std::vector<uint64_t> stackFrames_;      // all frames of all new stacks, concatenated
  std::vector<uint32_t> stackFrameStart_;  // index into stackFrames_ per stack, plus end

  std::vector<MappingRecord> mappings_;
  std::vector<ProcessRecord> processes_;
  std::vector<std::pair<EventKind, uint64_t>> lost_;
  std::vector<FunctionRecord> functions_;
  std::vector<ThreadNameRecord> threadNames_;
};

}  // namespace heaptrail::schema
