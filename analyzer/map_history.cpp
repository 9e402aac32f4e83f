#include "analyzer/map_history.h"

#include "schema/record_readers.h"

#include <unordered_set>

namespace heaptrail::analyzer {

void MapHistory::add(MappingEntry mapping) {
  byPid_[mapping.pid].push_back(mappings_.size());
  mappings_.push_back(std::move(mapping));
}

void MapHistory::add(schema::Mapping::Reader m) { add(schema::readMapping(m)); }

void MapHistory::addFork(uint32_t child, uint32_t parent) {
  if (child != parent) parent_.emplace(child, parent);
}

const MappingEntry* MapHistory::find(uint32_t pid, uint64_t address, uint64_t timeNs) const {
  std::unordered_set<uint32_t> visited;
  for (uint32_t p = pid; visited.insert(p).second;) {
    const MappingEntry* before = nullptr;
    const MappingEntry* after = nullptr;
    if (const auto it = byPid_.find(p); it != byPid_.end()) {
      for (const size_t index : it->second) {
        const MappingEntry& m = mappings_[index];
        if (address < m.start || address >= m.end) continue;
        if (m.timeNs <= timeNs) {
          if (!before || m.timeNs >= before->timeNs) before = &m;
        } else if (!after || m.timeNs < after->timeNs) {
          after = &m;
        }
      }
    }
    if (before) return before;
    if (after) return after;
    const auto parent = parent_.find(p);
    if (parent == parent_.end()) break;
    p = parent->second;
  }
  return nullptr;
}

}  // namespace heaptrail::analyzer
