// Executable file mappings of every process over time, to find which file (and file
// offset) an address belonged to when a stack was captured.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "schema/chunk_builder.h"
#include "schema/trace.capnp.h"

namespace heaptrail::analyzer {

using MappingEntry = schema::MappingRecord;

class MapHistory {
 public:
  void add(MappingEntry mapping);
  void add(schema::Mapping::Reader mapping);
  // A forked child starts with its parent's mappings.
  void addFork(uint32_t child, uint32_t parent);

  // The mapping of `pid` holding `address` at `timeNs`: among those containing the
  // address, the newest seen at or before timeNs (later in the trace wins a tie); if
  // none is that old, the oldest one after it (the address was captured, so something
  // was mapped there; its record may just carry a later time). nullptr if none.
  const MappingEntry* find(uint32_t pid, uint64_t address, uint64_t timeNs) const;

  const std::vector<MappingEntry>& all() const { return mappings_; }

 private:
  std::vector<MappingEntry> mappings_;  // in trace order
  std::unordered_map<uint32_t, std::vector<size_t>> byPid_;
  std::unordered_map<uint32_t, uint32_t> parent_;
};

}  // namespace heaptrail::analyzer
